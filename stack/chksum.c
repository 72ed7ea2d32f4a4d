/* The Internet checksum for lwIP (LWIP_CHKSUM and LWIP_CHKSUM_COPY, lwipopts.h): what
 * lwIP's own loop does two bytes at a time, here sixteen at a time, and for tcp_write's
 * copy in the same pass as the copy.  Every received segment's TCP and UDP checksum is
 * checked over its whole payload, and every byte tcp_write copies is summed (checksum on
 * copy): lwIP's loop was 12-13 % of the server's CPU in an iperf3 stream (docs/architecture.md,
 * "Deployment performance").
 *
 * Same contract as lwip_standard_chksum: the ones' complement sum of @len bytes at
 * @dataptr (any alignment, any length), not inverted, folded to 16 bits, as the host reads
 * 16-bit words (RFC 1071: the sum commutes with byte order, so the caller's lwip_htons and
 * final inversion apply unchanged).  Never 0 for data that is not all zero. */
#include <stdint.h>
#include <string.h>

#include "lwip/arch.h"

/* Fold a 64-bit ones' complement sum to 16 bits. */
static inline uint16_t fold64(uint64_t s)
{
    s = (s >> 32) + (s & 0xffffffffu);
    s = (s >> 32) + (s & 0xffffffffu);
    s = (s >> 16) + (s & 0xffffu);
    s = (s >> 16) + (s & 0xffffu);
    return (uint16_t)s;
}

/* The sum of @len bytes at @p, words read as the host reads them from @p on (unaligned
 * loads: x86 and arm64 take them), copied to @d on the way when @d is not NULL.  The sum
 * depends on the bytes' positions from @p only, so it is the same whatever the alignment
 * (lwIP's own loop aligns its reads and swaps the result back). */
static inline uint16_t sum_bytes(const uint8_t *p, uint8_t *d, int len)
{
    /* Two accumulators of 64-bit words, each with its carries counted apart: a carry out
     * of bit 63 is worth 1 in ones' complement (2^64 = 1 mod 2^16 - 1). */
    uint64_t s0 = 0, s1 = 0, c0 = 0, c1 = 0;
    while (len >= 16) {
        uint64_t a, b;
        memcpy(&a, p, 8);
        memcpy(&b, p + 8, 8);
        if (d != NULL) {
            memcpy(d, &a, 8);
            memcpy(d + 8, &b, 8);
            d += 16;
        }
        s0 += a;
        c0 += s0 < a;
        s1 += b;
        c1 += s1 < b;
        p += 16;
        len -= 16;
    }
    /* The last 0..15 bytes, as a zero-padded 16-byte block: a lone last byte is the low
     * half of its word, as the host reads it. */
    if (len > 0) {
        uint64_t w[2] = {0, 0};
        memcpy(w, p, (size_t)len);
        if (d != NULL)
            memcpy(d, w, (size_t)len);
        s0 += w[0];
        c0 += s0 < w[0];
        s1 += w[1];
        c1 += s1 < w[1];
    }
    uint64_t s = s0 + s1;
    uint64_t carry = c0 + c1 + (s < s0);   /* < 2^60: adding it wraps at most once */
    uint64_t t = s + carry;
    t += t < s;
    return fold64(t);
}

u16_t byp_chksum(const void *dataptr, int len)
{
    return sum_bytes(dataptr, NULL, len);
}

u16_t byp_chksum_copy(void *dst, const void *src, u16_t len)
{
    return sum_bytes(src, dst, len);
}
