/* XDP steering program: accelerated flows to the AF_XDP socket, everything else to the
 * kernel.  See steer.h for the maps.  Loaded by DPDK's af_xdp PMD (xdp_prog=), which puts
 * its socket into xsks_map at the index of its queue. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "steer.h"

struct {
    __uint(type, BPF_MAP_TYPE_XSKMAP);
    __uint(max_entries, BYP_STEER_MAX_QUEUES);
    __type(key, __u32);
    __type(value, __u32);
} xsks_map SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, BYP_STEER_MAX_FLOWS);
    __type(key, struct byp_flow_key);
    __type(value, struct byp_flow_val);
} byp_flows SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, BYP_STEER_MAX_KPASS);
    __type(key, struct byp_conn_key);
    __type(value, __u32);
} byp_kpass SEC(".maps");

/* The ports sit at the same offset in TCP and UDP. */
struct l4_ports {
    __be16 source;
    __be16 dest;
};

SEC("xdp")
int byp_steer(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    struct iphdr *ip;
    struct l4_ports *l4;
    struct byp_flow_key key = {0};
    struct byp_flow_val *val;

    if ((void *)(eth + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
        return XDP_PASS;
    ip = (void *)(eth + 1);
    if ((void *)(ip + 1) > data_end || ip->ihl < 5)
        return XDP_PASS;
    if (ip->protocol != IPPROTO_TCP && ip->protocol != IPPROTO_UDP)
        return XDP_PASS;
    /* Fragments go to the kernel: only the first one carries the ports. */
    if (ip->frag_off & bpf_htons(0x3fff))
        return XDP_PASS;
    l4 = (void *)ip + ip->ihl * 4;
    if ((void *)(l4 + 1) > data_end)
        return XDP_PASS;

    key.proto = ip->protocol;
    key.port = l4->dest;
    key.addr = ip->daddr;
    val = bpf_map_lookup_elem(&byp_flows, &key);
    if (!val) {
        /* The wildcard (a socket bound to INADDR_ANY) is for unicast only: a multicast
         * group is steered by its own entry, added when an accelerated socket joins it, so
         * groups only kernel sockets joined stay the kernel's. */
        if ((ip->daddr & bpf_htonl(0xf0000000)) == bpf_htonl(0xe0000000) ||
            ip->daddr == bpf_htonl(0xffffffff))
            return XDP_PASS;
        key.addr = 0;
        val = bpf_map_lookup_elem(&byp_flows, &key);
        if (!val)
            return XDP_PASS;
    }
    if (val->flags & (BYP_FLOW_F_PASS | BYP_FLOW_F_HANDED)) {
        /* A UDP socket handed to a process without the stack: its port is the kernel's. */
        if ((val->flags & BYP_FLOW_F_HANDED) && ip->protocol == IPPROTO_UDP)
            return XDP_PASS;
        struct byp_conn_key ck = {0};
        ck.saddr = ip->saddr;
        ck.daddr = ip->daddr;
        ck.sport = l4->source;
        ck.dport = l4->dest;
        ck.proto = ip->protocol;
        if (bpf_map_lookup_elem(&byp_kpass, &ck))
            return XDP_PASS;
        if (val->flags & BYP_FLOW_F_HANDED) {
            /* A listener handed over: a new connection (a SYN without ACK) is the
             * kernel's, and so is the rest of it, remembered by its four-tuple. */
            __u8 *tcp_flags = (__u8 *)l4 + 13;
            if ((void *)(tcp_flags + 1) > data_end)
                return XDP_PASS;
            if ((*tcp_flags & 0x12) == 0x02) {
                __u32 one = 1;
                bpf_map_update_elem(&byp_kpass, &ck, &one, BPF_ANY);
                return XDP_PASS;
            }
        }
    }
    __sync_fetch_and_add(&val->packets, 1);
    /* No socket on this queue (the process died, or not yet bound): kernel. */
    return bpf_redirect_map(&xsks_map, ctx->rx_queue_index, XDP_PASS);
}

char _license[] SEC("license") = "Dual BSD/GPL";
