/* Defences against hostile input that lwIP lacks (tcp_guard.c, issue 12). */
#ifndef BYP_TCP_GUARD_H
#define BYP_TCP_GUARD_H

#include <stddef.h>
#include <stdint.h>

/* An Ethernet frame about to be sent (netif.c): a zero-window probe that lwIP made with one
 * byte of new data is rewritten in place into the kernel's probe (old sequence number, no
 * data).  Returns 1 when the frame lost its last byte (the caller trims it), else 0. */
int byp_guard_tx(uint8_t *frame, size_t len);

/* SYNs that evicted an older half-open connection since start (SYN flood). */
uint64_t byp_guard_syn_evictions(void);

#endif
