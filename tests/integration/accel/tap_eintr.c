/* A program that installs no signal handler cannot see EINTR: the kernel gives it none.
 *
 *   tap_eintr SERVER_IP PORT SECONDS
 *
 * A thread sends redis PINGs and reads the replies over a connection the library
 * accelerates (frames come in all the time), while the main thread sleeps in poll() on an
 * empty pipe, 20 ms at a time.  Prints "eintr N polls M pongs P". */
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int fd;
static volatile int done;
static long pongs;
static double secs;

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static void *traffic(void *arg)
{
    (void)arg;
    char buf[64];
    double end = now() + secs;
    while (now() < end) {
        if (send(fd, "PING\r\n", 6, 0) != 6 || recv(fd, buf, sizeof buf, 0) <= 0)
            break;
        pongs++;
    }
    done = 1;
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 4)
        return 2;
    secs = atof(argv[3]);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[2]))};
    inet_pton(AF_INET, argv[1], &a.sin_addr);
    fd = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        perror("connect");
        return 1;
    }
    int p[2];
    if (pipe(p) != 0)
        return 1;
    pthread_t t;
    pthread_create(&t, NULL, traffic, NULL);
    long eintr = 0, polls = 0;
    while (!done) {
        struct pollfd pf = {.fd = p[0], .events = POLLIN};
        if (poll(&pf, 1, 20) < 0 && errno == EINTR)
            eintr++;
        polls++;
    }
    pthread_join(t, NULL);
    printf("eintr %ld polls %ld pongs %ld\n", eintr, polls, pongs);
    return 0;
}
