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

/* After each frame given to lwIP (netif.c): rebuilds a connection whose half-open state
 * was evicted during a SYN flood and whose handshake ACK just arrived. */
struct netif;
void byp_guard_after_input(struct netif *ni);

/* The ISN hook asks first: 1 and *isn while a connection is being rebuilt. */
int byp_guard_isn(uint32_t *isn);

#endif
