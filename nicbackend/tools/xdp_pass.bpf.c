/* A program that passes every packet.  Attached to the far end of a veth pair in tests:
 * frames redirected or transmitted over XDP into a veth are only received when the peer
 * has an XDP program (which turns on the peer's NAPI). */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int byp_pass(struct xdp_md *ctx)
{
    (void)ctx;
    return XDP_PASS;
}

char _license[] SEC("license") = "Dual BSD/GPL";
