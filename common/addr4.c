#include "addr4.h"

#include <string.h>

void byp_addr4_put(const struct sockaddr_in *sin, int v6, struct sockaddr *addr, socklen_t *len)
{
    struct sockaddr_in6 s6;
    const void *src = sin;
    socklen_t size = sizeof *sin;
    if (v6) {
        memset(&s6, 0, sizeof s6);
        s6.sin6_family = AF_INET6;
        s6.sin6_port = sin->sin_port;
        if (sin->sin_addr.s_addr != INADDR_ANY) {   /* else "::" */
            s6.sin6_addr.s6_addr[10] = s6.sin6_addr.s6_addr[11] = 0xff;
            memcpy(&s6.sin6_addr.s6_addr[12], &sin->sin_addr, 4);
        }
        src = &s6;
        size = sizeof s6;
    }
    memcpy(addr, src, *len < size ? *len : size);
    *len = size;
}

int byp_addr4_get(const struct sockaddr *sa, socklen_t len, struct sockaddr_in *out)
{
    if (sa == NULL)
        return -1;
    if (sa->sa_family == AF_INET && len >= sizeof *out) {
        *out = *(const struct sockaddr_in *)sa;
        return 0;
    }
    if (sa->sa_family != AF_INET6 || len < sizeof(struct sockaddr_in6))
        return -1;
    const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
    *out = (struct sockaddr_in){.sin_family = AF_INET, .sin_port = s6->sin6_port};
    if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr))
        memcpy(&out->sin_addr, &s6->sin6_addr.s6_addr[12], 4);
    else if (!IN6_IS_ADDR_UNSPECIFIED(&s6->sin6_addr))
        return -1;
    return 1;
}
