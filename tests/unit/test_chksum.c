/* The Internet checksum lwIP uses (stack/chksum.c) against RFC 1071's definition, byte pair
 * by byte pair: every length 0..2100 at every start offset 0..7, random and extreme data
 * (all zero, all 0xff, sums that wrap many times); the copying variant also copies exactly
 * @len bytes, whatever the source's and the destination's alignment. */
#include <arpa/inet.h>
#include <stdint.h>

#include "lwip/arch.h"
#include "unit.h"

u16_t byp_chksum(const void *dataptr, int len);
u16_t byp_chksum_copy(void *dst, const void *src, u16_t len);

/* RFC 1071: the pairs as big-endian words, summed with end-around carry; returned as
 * lwIP's checksum routines return it (the host's reading of the sum, lwip_htons). */
static uint16_t reference(const uint8_t *p, int len)
{
    uint32_t acc = 0;
    for (int i = 0; i + 1 < len; i += 2) {
        acc += (uint32_t)(p[i] << 8 | p[i + 1]);
        acc = (acc & 0xffff) + (acc >> 16);
    }
    if (len & 1) {
        acc += (uint32_t)p[len - 1] << 8;
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc = (acc & 0xffff) + (acc >> 16);
    return htons((uint16_t)acc);
}

static uint64_t rng = 88172645463325252ull;

static uint8_t next_byte(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint8_t)rng;
}

static void check_all(uint8_t fill, int random)
{
    static uint8_t buf[2200 + 16];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = random ? next_byte() : fill;
    for (int off = 0; off < 8; off++)
        for (int len = 0; len <= 2100; len++) {
            uint16_t want = reference(buf + off, len), got = byp_chksum(buf + off, len);
            if (want != got) {
                fprintf(stderr, "    off %d len %d fill %d random %d\n", off, len, fill, random);
                CHECK_INT(got, ==, want);
            }
        }
}

UNIT_TEST(random_data)
{
    for (int round = 0; round < 4; round++)
        check_all(0, 1);
}

UNIT_TEST(zeros_and_ones)
{
    check_all(0x00, 0);
    check_all(0xff, 0);
    check_all(0x80, 0);
    check_all(0x01, 0);
}

UNIT_TEST(copy_and_sum)
{
    static uint8_t src[2200 + 16], dst[2200 + 32];
    for (size_t i = 0; i < sizeof src; i++)
        src[i] = next_byte();
    for (int so = 0; so < 4; so++)
        for (int doff = 0; doff < 4; doff++)
            for (int len = 0; len <= 2100; len += 1 + (len > 64) * 13) {
                memset(dst, 0xee, sizeof dst);
                uint16_t got = byp_chksum_copy(dst + 8 + doff, src + so, (u16_t)len);
                CHECK_INT(got, ==, reference(src + so, len));
                CHECK(memcmp(dst + 8 + doff, src + so, (size_t)len) == 0);
                for (int i = 0; i < 8 + doff; i++)          /* nothing written before */
                    CHECK_INT(dst[i], ==, 0xee);
                for (size_t i = 8 + (size_t)doff + (size_t)len; i < sizeof dst; i++)   /* nor after */
                    CHECK_INT(dst[i], ==, 0xee);
            }
}

UNIT_TEST(large_buffer)
{
    /* A 64 KB datagram of 0xff words: many carries out of every accumulator. */
    static uint8_t big[65536 + 8];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (uint8_t)(0xff - (i % 3 == 0));
    for (int off = 0; off < 8; off++)
        CHECK_INT(byp_chksum(big + off, 65535), ==, reference(big + off, 65535));
}

int main(int argc, char **argv)
{
    static const struct unit_test tests[] = {UNIT(random_data), UNIT(zeros_and_ones),
                                             UNIT(copy_and_sum), UNIT(large_buffer)};
    return unit_run(tests, UNIT_COUNT(tests), argc, argv);
}
