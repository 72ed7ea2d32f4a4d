/* The af_xdp backend's own AF_XDP socket (libxdp's xsk API), in place of DPDK's net_af_xdp
 * PMD: the same XDP steering program and the same mbuf pool as its packet memory, but
 * rings as deep as we ask.
 *
 * Why: the PMD (22.11) registers its packet memory with a fill ring of 4,096 entries and
 * keeps 2,048 buffers in it whatever nb_rx_desc says, so a receiver that is off the CPU
 * for longer than 2,048 frames take to arrive loses frames at the ring (20 ms at 100,000
 * datagrams/s), where the kernel's socket buffers hold thousands per socket.  Here the
 * fill ring and the rx ring hold the config's rx_ring buffers (16,384 by default), taken
 * from the pool, which nic.c grows by as many.
 *
 * Packet memory: the whole mbuf pool is the umem (one virtually contiguous chunk, as the
 * PMD also requires), in unaligned-chunk mode: a fill address is the pool object of an
 * mbuf, the kernel writes the frame after our headroom, and an rx descriptor names the
 * object back (its mbuf) and the data's offset in it.  A transmitted mbuf of the pool goes
 * out without a copy and is freed when its completion comes back.
 *
 * State: struct xsk_state lives in DPDK memory (rte_zmalloc), shared with forked children
 * as the pool is, so that any member of the family can run the rings (the rings
 * themselves are shared mappings of the socket).  Every burst runs under the stack lock. */
#include <errno.h>
#include <time.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <linux/if_link.h>
#include <linux/if_xdp.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <xdp/libxdp.h>
#include <xdp/xsk.h>

#include <rte_malloc.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_prefetch.h>

#include "backend.h"
#include "log.h"

#ifndef SOL_XDP
#define SOL_XDP 283
#endif

#define TX_RING 4096
#define COMP_RING 4096
#define BATCH 64

struct xsk_state {
    struct xsk_ring_cons rx;
    struct xsk_ring_prod fq;
    struct xsk_ring_prod tx;
    struct xsk_ring_cons cq;
    struct xsk_umem *umem;          /* libxdp handles: used at open and close only */
    struct xsk_socket *xsk;
    struct bpf_object *obj;         /* kept open: steer.c finds the maps among our fds */
    uint32_t prog_id;
    int fd;
    char *base;                     /* start of the umem (the pool's memory, page aligned) */
    uint32_t hdr;                   /* the pool's object header size */
    uint32_t fill;                  /* buffers the fill ring should hold */
    uint32_t fill_short;            /* buffers it lacks (the pool was empty) */
    uint32_t tx_out;                /* frames handed to the kernel, not yet completed */
    /* Buffers a refill took from the pool and has not yet submitted to the fill ring: a
     * member killed in between (holding the stack lock) leaves them here for the repair. */
    struct rte_mbuf *refill_bufs[BATCH];
    uint32_t refill_held;
    uint64_t ipackets, ibytes, opackets, obytes, oerrors;
};

unsigned byp_xsk_fill_depth(const struct byp_nic_conf *conf)
{
    unsigned v = conf->rx_ring != 0 ? conf->rx_ring : 16384, p = 512;
    while (p < v && p < 65536)
        p <<= 1;
    return p;
}

static inline uint64_t obj_addr(const struct xsk_state *s, const struct rte_mbuf *m)
{
    return (uint64_t)((const char *)m - s->base) - s->hdr;
}

static inline struct rte_mbuf *addr_mbuf(const struct xsk_state *s, uint64_t addr)
{
    return (struct rte_mbuf *)(s->base + xsk_umem__extract_addr(addr) + s->hdr);
}

/* Put up to @want fresh buffers of the pool in the fill ring; returns how many. */
static uint32_t refill(struct byp_nic *nic, struct xsk_state *s, uint32_t want)
{
    struct rte_mbuf **bufs = s->refill_bufs;
    uint32_t done = 0;
    while (done < want) {
        uint32_t k = want - done < BATCH ? want - done : BATCH, idx;
        /* The pool's own get, then the count, then the resets: a member killed during the
         * resets (the long part) leaves the count for the repair. */
        if (rte_mempool_get_bulk(nic->pool, (void **)bufs, k) != 0)
            break;      /* the frames the kernel then cannot place count as rx_dropped */
        s->refill_held = k;
        for (uint32_t i = 0; i < k; i++)
            rte_pktmbuf_reset(bufs[i]);
        if (xsk_ring_prod__reserve(&s->fq, k, &idx) != k) {
            s->fq.cached_prod = *s->fq.producer;
            s->refill_held = 0;
            rte_pktmbuf_free_bulk(bufs, k);
            break;
        }
        for (uint32_t i = 0; i < k; i++)
            *xsk_ring_prod__fill_addr(&s->fq, idx + i) = obj_addr(s, bufs[i]);
        /* Not ours once submitted: a death between the two leaks them, never frees
         * buffers the kernel may fill. */
        __atomic_store_n(&s->refill_held, 0, __ATOMIC_RELAXED);
        __atomic_signal_fence(__ATOMIC_SEQ_CST);
        xsk_ring_prod__submit(&s->fq, k);
        done += k;
    }
    return done;
}

static void pull_completions(struct xsk_state *s);

static uint16_t xsk_rx(struct byp_nic *nic, struct rte_mbuf **pkts, uint16_t n)
{
    struct xsk_state *s = nic->priv;
    uint32_t idx;
    uint32_t got = xsk_ring_cons__peek(&s->rx, n, &idx);
    if (got == 0) {
        /* A quiet round also takes back what the last sends left in the completion ring:
         * otherwise those buffers stay out of the pool until the next send. */
        if (s->tx_out != 0)
            pull_completions(s);
        if (s->fill_short != 0)
            s->fill_short -= refill(nic, s, s->fill_short);
        if (xsk_ring_prod__needs_wakeup(&s->fq))
            (void)recvfrom(s->fd, NULL, 0, MSG_DONTWAIT, NULL, NULL);
        return 0;
    }
    uint64_t bytes = 0;
    uint16_t room = (uint16_t)(sizeof(struct rte_mbuf) + rte_pktmbuf_priv_size(nic->pool) + s->hdr);
    /* The mbufs and their frames are cold here (the kernel wrote the frame on another
     * CPU; the mbuf was set up when it went into the fill ring): ask for all of them first,
     * so that the misses overlap each other and the refill below. */
    for (uint32_t i = 0; i < got; i++) {
        uint64_t a = xsk_ring_cons__rx_desc(&s->rx, idx + i)->addr;
        struct rte_mbuf *m = addr_mbuf(s, a);
        rte_prefetch0(m);
        rte_prefetch0(RTE_PTR_ADD(m, RTE_CACHE_LINE_SIZE * 2));   /* the private area */
        rte_prefetch0(s->base + xsk_umem__add_offset_to_addr(a));
    }
    for (uint32_t i = 0; i < got; i++) {
        const struct xdp_desc *d = xsk_ring_cons__rx_desc(&s->rx, idx + i);
        struct rte_mbuf *m = addr_mbuf(s, d->addr);
        m->data_off = (uint16_t)(xsk_umem__extract_offset(d->addr) - room);
        m->port = nic->port_id;
        rte_pktmbuf_pkt_len(m) = d->len;
        rte_pktmbuf_data_len(m) = (uint16_t)d->len;
        bytes += d->len;
        pkts[i] = m;
    }
    s->ipackets += got;
    s->ibytes += bytes;
    uint32_t want = got + s->fill_short;
    s->fill_short = want - refill(nic, s, want);
    /* Last: until this release the frames are still the ring's (a death before it has
     * them read again, xsk_repair); after it they are the caller's burst. */
    xsk_ring_cons__release(&s->rx, got);
    return (uint16_t)got;
}

/* Free the mbufs of completed transmissions.  Each entry is released before its mbuf is
 * freed: a member killed in between (xsk_repair) leaks that one mbuf, never frees one
 * twice, and the entries it had not reached are read again. */
static void pull_completions(struct xsk_state *s)
{
    uint32_t idx;
    uint32_t k = xsk_ring_cons__peek(&s->cq, COMP_RING, &idx);
    for (uint32_t i = 0; i < k; i++) {
        struct rte_mbuf *m = addr_mbuf(s, *xsk_ring_cons__comp_addr(&s->cq, idx + i));
        xsk_ring_cons__release(&s->cq, 1);
        s->tx_out--;
        rte_pktmbuf_free_seg(m);
    }
}

/* A member died holding the stack lock (kill -9), perhaps inside one of the above: put
 * the rings' cached indices back where the shared ones say, so that what it reserved and
 * never submitted is not submitted later with stale contents, and what it peeked and
 * never released is read again (received frames, completions). */
static void xsk_repair(struct byp_nic *nic)
{
    struct xsk_state *s = nic->priv;
    s->rx.cached_cons = *s->rx.consumer;
    s->fq.cached_prod = *s->fq.producer;
    s->tx.cached_prod = *s->tx.producer;
    s->cq.cached_cons = *s->cq.consumer;
    s->tx_out = *s->tx.producer - *s->cq.consumer;
    if (s->refill_held != 0 && s->refill_held <= BATCH)
        rte_pktmbuf_free_bulk(s->refill_bufs, s->refill_held);
    s->refill_held = 0;
}

/* Frames in the tx ring wait for xsk_tx_kick; threads in it, and the port closing: the
 * closer waits for the kickers, which run without the stack lock (engine data: shared by
 * the family, as the socket is). */
static int kick_due, kickers, closing;

/* Make the kernel send what the tx ring holds (copy mode sends 32 frames a call and says
 * EAGAIN while more are left).  Stack lock held. */
static void kick(struct xsk_state *s)
{
    if (!xsk_ring_prod__needs_wakeup(&s->tx))
        return;
    for (int i = 0; i < 64; i++) {
        if (sendto(s->fd, NULL, 0, MSG_DONTWAIT, NULL, 0) >= 0)
            return;
        if (errno != EAGAIN && errno != EBUSY && errno != EINTR)
            return;
        pull_completions(s);
    }
}

/* A frame the kernel can take as it is: one segment of our pool, not shared (its buffer
 * is handed over until its completion).  Others are copied into a fresh mbuf. */
static struct rte_mbuf *tx_frame(struct byp_nic *nic, struct rte_mbuf *m)
{
    if (m->pool == nic->pool && m->nb_segs == 1 && rte_mbuf_refcnt_read(m) == 1 &&
        RTE_MBUF_DIRECT(m))
        return m;
    struct rte_mbuf *c = rte_pktmbuf_alloc(nic->pool);
    if (c == NULL || rte_pktmbuf_pkt_len(m) > rte_pktmbuf_tailroom(c)) {
        rte_pktmbuf_free(c);
        return NULL;
    }
    char *dst = rte_pktmbuf_append(c, (uint16_t)rte_pktmbuf_pkt_len(m));
    for (struct rte_mbuf *seg = m; seg != NULL; seg = seg->next) {
        memcpy(dst, rte_pktmbuf_mtod(seg, void *), seg->data_len);
        dst += seg->data_len;
    }
    rte_pktmbuf_free(m);
    return c;
}

static uint16_t xsk_tx(struct byp_nic *nic, struct rte_mbuf **pkts, uint16_t n)
{
    struct xsk_state *s = nic->priv;
    uint32_t idx;
    pull_completions(s);
    uint32_t room = COMP_RING - s->tx_out;
    if (n > room)
        n = (uint16_t)room;
    n = (uint16_t)xsk_ring_prod__reserve(&s->tx, n, &idx);
    uint16_t sent = 0;
    uint64_t bytes = 0;
    for (uint16_t i = 0; i < n; i++) {
        struct rte_mbuf *m = tx_frame(nic, pkts[i]);
        if (m == NULL) {
            /* No buffer for the copy: the frame is dropped (taken, as a full NIC would). */
            rte_pktmbuf_free(pkts[i]);
            s->oerrors++;
            continue;
        }
        struct xdp_desc *d = xsk_ring_prod__tx_desc(&s->tx, idx + sent);
        uint64_t off = (uint64_t)(rte_pktmbuf_mtod(m, char *) - (char *)m) + s->hdr;
        d->addr = obj_addr(s, m) | (off << XSK_UNALIGNED_BUF_OFFSET_SHIFT);
        d->len = rte_pktmbuf_data_len(m);
        bytes += d->len;
        sent++;
    }
    s->tx.cached_prod -= n - sent;   /* slots reserved for frames dropped above */
    if (sent != 0) {
        xsk_ring_prod__submit(&s->tx, sent);
        s->tx_out += sent;
        s->opackets += sent;
        s->obytes += bytes;
    }
    /* The send itself waits until the lock is released (xsk_tx_kick), unless the ring
     * fills: completions come only after the kernel sent. */
    if (s->tx_out > COMP_RING / 2)
        kick(s);
    else if (sent != 0)
        __atomic_store_n(&kick_due, 1, __ATOMIC_RELEASE);
    return n;
}

/* What xsk_tx left in the ring, sent after the stack lock was released: on veth the
 * sendto runs the peer's receive path too (tens of microseconds that the family's other
 * threads and processes waited out for the lock).  Completions are taken by the next
 * xsk_tx, under the lock. */
static void xsk_tx_kick(struct byp_nic *nic)
{
    if (!__atomic_load_n(&kick_due, __ATOMIC_ACQUIRE))
        return;   /* the usual case: one load */
    __atomic_add_fetch(&kickers, 1, __ATOMIC_SEQ_CST);
    struct xsk_state *s = __atomic_load_n(&closing, __ATOMIC_SEQ_CST) ? NULL : nic->priv;
    if (s != NULL && __atomic_exchange_n(&kick_due, 0, __ATOMIC_ACQ_REL) &&
        xsk_ring_prod__needs_wakeup(&s->tx)) {
        int saved = errno;
        for (int i = 0; i < 64; i++)
            if (sendto(s->fd, NULL, 0, MSG_DONTWAIT, NULL, 0) >= 0 ||
                (errno != EAGAIN && errno != EBUSY && errno != EINTR))
                break;
        errno = saved;
    }
    __atomic_sub_fetch(&kickers, 1, __ATOMIC_RELEASE);
}

/* Frames in the rx ring (or buffers to put back in the fill ring), read without the
 * stack lock: two loads of the ring's indices, no system call. */
static int xsk_rx_pending(const struct byp_nic *nic)
{
    const struct xsk_state *s = nic->priv;
    return s->fill_short != 0 || __atomic_load_n(s->rx.producer, __ATOMIC_ACQUIRE) !=
                                     __atomic_load_n(s->rx.consumer, __ATOMIC_RELAXED);
}

const struct byp_nic_burst_ops byp_xsk_burst = {
    .rx_burst = xsk_rx,
    .tx_burst = xsk_tx,
    .rx_pending = xsk_rx_pending,
    .tx_kick = xsk_tx_kick,
    .repair = xsk_repair,
};

/* libxdp prints to stderr by default: route it to our log, as af_xdp.c does libbpf's. */
static int libxdp_print(enum libxdp_print_level level, const char *fmt, va_list ap)
{
    int lvl = level == LIBXDP_WARN ? BYP_LOG_WARN :
              level == LIBXDP_INFO ? BYP_LOG_INFO : BYP_LOG_DEBUG;
    char msg[512];
    if (lvl > byp_log_level)
        return 0;
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n > 0 && msg[n - 1] == '\n')
        msg[--n] = '\0';
    byp_log(lvl, "libxdp: %s", msg);
    return 0;
}

/* Load the steering program, attach it to the interface and return its xsks_map fd. */
static int load_prog(struct byp_nic *nic, struct xsk_state *s, const char *path)
{
    s->obj = bpf_object__open_file(path, NULL);
    if (s->obj == NULL || libbpf_get_error(s->obj)) {
        s->obj = NULL;
        byp_err("af_xdp: cannot open the steering program %s", path);
        return -ENOENT;
    }
    int rc = bpf_object__load(s->obj);
    if (rc != 0) {
        byp_err("af_xdp: the kernel refused the steering program %s: %s", path, strerror(-rc));
        return rc < 0 ? rc : -EINVAL;
    }
    struct bpf_program *prog = bpf_object__next_program(s->obj, NULL);
    int map = bpf_object__find_map_fd_by_name(s->obj, "xsks_map");
    if (prog == NULL || map < 0) {
        byp_err("af_xdp: %s has no XDP program or no xsks_map", path);
        return -ENOENT;
    }
    rc = bpf_xdp_attach((int)nic->ifindex, bpf_program__fd(prog), XDP_FLAGS_UPDATE_IF_NOEXIST,
                        NULL);
    if (rc != 0) {
        byp_err("af_xdp: cannot attach the steering program to %s: %s", nic->ifname,
                strerror(-rc));
        return rc;
    }
    struct bpf_prog_info info;
    uint32_t len = sizeof info;
    memset(&info, 0, sizeof info);
    if (bpf_obj_get_info_by_fd(bpf_program__fd(prog), &info, &len) == 0)
        s->prog_id = info.id;
    return map;
}

static void detach_prog(struct byp_nic *nic, struct xsk_state *s)
{
    uint32_t id = 0;
    if (s->prog_id != 0 && bpf_xdp_query_id((int)nic->ifindex, 0, &id) == 0 && id == s->prog_id)
        bpf_xdp_detach((int)nic->ifindex, 0, NULL);
    s->prog_id = 0;
}

void byp_xsk_close(struct byp_nic *nic)
{
    struct xsk_state *s = nic->priv;
    if (s == NULL)
        return;
    __atomic_store_n(&closing, 1, __ATOMIC_SEQ_CST);
    for (int i = 0; i < 2000 && __atomic_load_n(&kickers, __ATOMIC_SEQ_CST) != 0; i++) {
        struct timespec us = {0, 50000};
        nanosleep(&us, NULL);
    }
    detach_prog(nic, s);
    if (s->xsk != NULL)
        xsk_socket__delete(s->xsk);
    if (s->umem != NULL)
        xsk_umem__delete(s->umem);
    if (s->obj != NULL)
        bpf_object__close(s->obj);
    rte_free(s);
    nic->priv = NULL;
}

int byp_xsk_open(struct byp_nic *nic, const struct byp_nic_conf *conf, const char *prog)
{
    struct rte_mempool *mp = nic->pool;
    if (mp->nb_mem_chunks != 1) {
        byp_err("af_xdp: the mbuf pool is in %u pieces; the umem needs one", mp->nb_mem_chunks);
        return -ENOMEM;
    }
    libxdp_set_print(libxdp_print);
    struct xsk_state *s = rte_zmalloc("byp_xsk", sizeof *s, RTE_CACHE_LINE_SIZE);
    if (s == NULL)
        return -ENOMEM;
    nic->priv = s;
    s->fd = -1;
    s->fill = byp_xsk_fill_depth(conf);
    s->hdr = mp->header_size;

    struct rte_mempool_memhdr *mh = STAILQ_FIRST(&mp->mem_list);
    uintptr_t start = (uintptr_t)mh->addr, page = (uintptr_t)getpagesize();
    s->base = (char *)(start & ~(page - 1));
    uint64_t size = (uint64_t)(start - (uintptr_t)s->base) + mh->len;
    struct xsk_umem_config ucfg = {
        .fill_size = s->fill,
        .comp_size = COMP_RING,
        .frame_size = (uint32_t)rte_mempool_calc_obj_size(mp->elt_size, mp->flags, NULL),
        .frame_headroom = (uint32_t)(mp->header_size + sizeof(struct rte_mbuf) +
                                     rte_pktmbuf_priv_size(mp) + RTE_PKTMBUF_HEADROOM),
        .flags = XDP_UMEM_UNALIGNED_CHUNK_FLAG,
    };
    int rc = xsk_umem__create(&s->umem, s->base, size, &s->fq, &s->cq, &ucfg);
    if (rc != 0) {
        s->umem = NULL;
        byp_err("af_xdp: cannot register the packet memory (%llu bytes): %s",
                (unsigned long long)size, strerror(-rc));
        goto fail;
    }
    int map = load_prog(nic, s, prog);
    if (map < 0) {
        rc = map;
        goto fail;
    }
    struct xsk_socket_config xcfg = {
        .rx_size = s->fill,
        .tx_size = conf->nb_txd && conf->nb_txd <= TX_RING ? conf->nb_txd : TX_RING,
        .libxdp_flags = XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD,
        .bind_flags = XDP_USE_NEED_WAKEUP,
    };
    /* the kernel wants powers of two */
    while (xcfg.tx_size & (xcfg.tx_size - 1))
        xcfg.tx_size &= xcfg.tx_size - 1;
    rc = xsk_socket__create(&s->xsk, nic->ifname, 0, s->umem, &s->rx, &s->tx, &xcfg);
    if (rc != 0) {
        s->xsk = NULL;
        byp_err("af_xdp: cannot open an AF_XDP socket on %s queue 0: %s", nic->ifname,
                strerror(-rc));
        goto fail;
    }
    s->fd = xsk_socket__fd(s->xsk);
    uint32_t key = 0;
    if (bpf_map_update_elem(map, &key, &s->fd, BPF_ANY) != 0) {
        rc = -errno;
        byp_err("af_xdp: cannot enter the socket in xsks_map: %s", strerror(errno));
        goto fail;
    }
    uint32_t put = refill(nic, s, s->fill);
    if (put < s->fill / 2) {
        byp_err("af_xdp: only %u of %u receive buffers from the pool", put, s->fill);
        rc = -ENOMEM;
        goto fail;
    }
    s->fill_short = s->fill - put;
    nic->burst = &byp_xsk_burst;
    byp_info("af_xdp: %s: own AF_XDP socket, %u receive buffers in the fill ring", nic->ifname,
             put);
    return 0;
fail:
    byp_xsk_close(nic);
    return rc < 0 ? rc : -EIO;
}

int byp_xsk_stats(struct byp_nic *nic, struct rte_eth_stats *st)
{
    struct xsk_state *s = nic->priv;
    memset(st, 0, sizeof *st);
    if (s == NULL)
        return -ENODEV;
    st->ipackets = s->ipackets;
    st->ibytes = s->ibytes;
    st->opackets = s->opackets;
    st->obytes = s->obytes;
    st->oerrors = s->oerrors;
    struct xdp_statistics xs;
    socklen_t len = sizeof xs;
    if (getsockopt(s->fd, SOL_XDP, XDP_STATISTICS, &xs, &len) == 0)
        st->imissed = xs.rx_dropped + xs.rx_ring_full;
    return 0;
}

