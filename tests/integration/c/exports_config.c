/* A program that exports functions named as libconfig's (built with -rdynamic, as lighttpd
 * exports its config_init and config_read to its modules).  Each aborts if anyone but the
 * program calls it.  The program echoes over loopback, then calls its own config_read. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int mine;

#define TRAP(name)                                                                          \
    int name(void *a, void *b)                                                              \
    {                                                                                       \
        (void)a, (void)b;                                                                   \
        if (!mine) {                                                                        \
            fprintf(stderr, "program's " #name " called from outside\n");                  \
            abort();                                                                        \
        }                                                                                   \
        return 42;                                                                          \
    }
TRAP(config_init)
TRAP(config_read)
TRAP(config_read_file)
TRAP(config_destroy)
TRAP(config_setting_length)
TRAP(config_setting_get_elem)
TRAP(config_setting_get_string)

int main(void)
{
    int l = socket(AF_INET, SOCK_STREAM, 0), c, s;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    char buf[64] = "echo:";
    if (bind(l, (struct sockaddr *)&a, sizeof a) || listen(l, 1) ||
        getsockname(l, (struct sockaddr *)&a, &len))
        return 2;
    c = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(c, (struct sockaddr *)&a, sizeof a) || (s = accept(l, NULL, NULL)) < 0)
        return 3;
    if (write(c, "hello", 5) != 5 || read(s, buf + 5, 5) != 5)
        return 4;
    mine = 1;
    printf("%s own config_read %d\n", buf, config_read(NULL, NULL));
    return 0;
}
