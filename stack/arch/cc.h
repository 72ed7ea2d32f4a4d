/* lwIP platform definitions for bypass (Linux, GCC/Clang, x86-64 or arm64, user space).
 *
 * lwIP's arch.h includes this first.  The integer types come from <stdint.h> (lwIP's
 * default); here are only what lwIP cannot guess: structure packing, the diagnostic and
 * assertion sinks (never printf, never abort: we live inside someone else's program),
 * byte swapping and the random number source. */
#ifndef BYP_LWIP_ARCH_CC_H
#define BYP_LWIP_ARCH_CC_H

#include <stdint.h>
#include <stddef.h>
#include <endian.h>

#ifndef BYTE_ORDER
#error "<endian.h> did not define BYTE_ORDER"
#endif

/* Packed protocol headers. */
#define PACK_STRUCT_BEGIN
#define PACK_STRUCT_END
#define PACK_STRUCT_STRUCT __attribute__((packed))
#define PACK_STRUCT_FIELD(x) x

/* Byte swapping through the compiler (one instruction). */
#if BYTE_ORDER == LITTLE_ENDIAN
#define lwip_htons(x) ((u16_t)__builtin_bswap16((u16_t)(x)))
#define lwip_htonl(x) ((u32_t)__builtin_bswap32((u32_t)(x)))
#endif

/* Diagnostics (only lwIP's statistics display and debug messages use it; both are
 * compiled out) and assertions go to the bypass log.  An lwIP assertion is logged as an
 * error and execution continues: the library never aborts the host program. */
void byp_lwip_diag(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void byp_lwip_assert(const char *msg, const char *file, int line);
#define LWIP_PLATFORM_DIAG(x) do { byp_lwip_diag x; } while (0)
#define LWIP_PLATFORM_ASSERT(x) byp_lwip_assert((x), __FILE__, __LINE__)

/* Random numbers for lwIP (local port choice, IGMP report delays). */
uint32_t byp_lwip_rand(void);
#define LWIP_RAND() byp_lwip_rand()

/* Our hooks (TCP initial sequence numbers) are declared there. */
#define LWIP_HOOK_FILENAME "byp_lwip_hooks.h"

#endif /* BYP_LWIP_ARCH_CC_H */
