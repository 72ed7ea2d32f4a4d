/* A server whose last words leave at exit: it registers an exit handler before it opens any
 * socket (so before the library's engine starts), accepts connections and, for each, reads
 * one line (and, for a line that starts with "eof", waits for the client's end of file),
 * answers through stdio (fdopen, a 64 KB buffer never flushed by hand) and calls
 * exit(0).  What reaches the client is written by the exit handler (send) and by libc's
 * flush of the stdio buffer, which runs after every exit handler.  With "_exit", the same
 * bytes are sent by hand (the handler's line, then the buffer with send()) and the server
 * ends with _exit(0): no exit handler runs, what send() accepted must still arrive.
 *
 *     exit_writer PORT single 1 exit|_exit   one connection, then exit
 *     exit_writer PORT fork N exit|_exit     N connections, each in a forked child; the
 *                                            parent closes its copy at once
 *                                            (fork-per-connection) and exits after N
 *     exit_writer PORT client HOST exit|_exit  the other way round: connects to HOST:PORT,
 *                                            reads the peer's line and answers the same way
 *
 * Prints "ready" once listening. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define BODY 60000

static int conn = -1;
static int raw_exit;   /* "_exit" */

static void bye(void)
{
    static const char msg[] = "bye from the exit handler\n";
    if (conn >= 0 && send(conn, msg, sizeof msg - 1, 0) != (ssize_t)(sizeof msg - 1))
        perror("exit handler send");
}

static void serve(int c)
{
    char line[256];
    size_t n = 0;
    while (n < sizeof line - 1) {
        ssize_t r = recv(c, line + n, 1, 0);
        if (r <= 0 || line[n++] == '\n')
            break;
    }
    if (strncmp(line, "eof", 3) == 0)   /* the client has shut its side: wait for its FIN */
        while (recv(c, line + n, 1, 0) > 0)
            ;
    conn = c;
    FILE *f = fdopen(c, "w");
    static char buf[1 << 16];
    setvbuf(f, buf, _IOFBF, sizeof buf);
    if (raw_exit) {
        bye();
        f = fmemopen(buf, sizeof buf, "w");   /* the same bytes, sent by hand below */
        setvbuf(f, NULL, _IONBF, 0);
    }
    fprintf(f, "stdio answer to %.*s", (int)n, line);
    for (int i = 0; i < BODY; i++)
        fputc('a' + i % 26, f);
    fputc('\n', f);
    if (raw_exit) {
        long len = ftell(f);
        for (long off = 0; off < len;) {
            ssize_t w = send(c, buf + off, (size_t)(len - off), 0);
            if (w <= 0) {
                perror("send");
                _exit(1);
            }
            off += w;
        }
        _exit(0);
    }
    exit(0);
}

int main(int argc, char **argv)
{
    if (argc < 5)
        return 2;
    atexit(bye);
    int port = atoi(argv[1]);
    int forking = strcmp(argv[2], "fork") == 0;
    int count = atoi(argv[3]);
    raw_exit = strcmp(argv[4], "_exit") == 0;
    if (strcmp(argv[2], "client") == 0) {
        int c = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(port)};
        if (inet_pton(AF_INET, argv[3], &to.sin_addr) != 1 ||
            connect(c, (struct sockaddr *)&to, sizeof to) < 0) {
            perror("connect");
            return 1;
        }
        serve(c);
    }
    int l = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    if (bind(l, (struct sockaddr *)&a, sizeof a) < 0 || listen(l, 64) < 0) {
        perror("listen");
        return 1;
    }
    printf("ready\n");
    fflush(stdout);
    for (int i = 0; i < count; i++) {
        int c = accept(l, NULL, NULL);
        if (c < 0) {
            perror("accept");
            return 1;
        }
        if (!forking)
            serve(c);
        pid_t pid = fork();
        if (pid == 0) {
            close(l);
            serve(c);
        }
        close(c);
    }
    while (wait(NULL) > 0)
        ;
    return 0;
}
