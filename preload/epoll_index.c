/* Which members of an epoll set a wait looks at.  A scan over every member reads each one's
 * socket (a cache miss or two): with 10,000 idle connections in redis' set, every
 * epoll_wait took a third of the server's CPU.  The kernel's epoll keeps a ready list; here
 * the engine logs which socket each readiness change was about (struct byp_engine changes),
 * and a wait looks only at the members of the sockets logged since its last scan, found by
 * object in an index, plus a short pend list (level-triggered members it reported, ready
 * ones a full result left out, members just added or modified).  A full scan remains for
 * what the log cannot say: an overrun log, a change it does not name, members whose
 * readiness moves without engine events (nested sets), or one object under two fds. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fd_epoll_priv.h"

/* ---- the index: members by object ---- */

static unsigned slot_of(const void *obj, unsigned mask)
{
    uint64_t x = (uint64_t)(uintptr_t)obj;
    x ^= x >> 29;
    x *= 0x9E3779B97F4A7C15ull;
    return (unsigned)(x >> 32) & mask;
}

static void index_off(struct byp_epoll *ep)
{
    free(ep->map);
    ep->map = NULL;
    ep->map_cap = 0;
    ep->map_off = 1;
}

/* Place member @i; the table has room. */
static void place(struct byp_epoll *ep, int i)
{
    unsigned mask = ep->map_cap - 1;
    unsigned s = slot_of(ep->m[i].obj, mask);
    while (ep->map[s] != 0)
        s = (s + 1) & mask;
    ep->map[s] = i + 1;
}

/* Room for @n members at most half full; the table rebuilt with every member but the
 * last (just appended: the caller places it). */
static int grow(struct byp_epoll *ep, int n)
{
    if ((unsigned)n * 2 <= ep->map_cap)
        return 0;
    unsigned cap = ep->map_cap ? ep->map_cap : 64;
    while ((unsigned)n * 2 > cap)
        cap *= 2;
    int *map = calloc(cap, sizeof *map);
    if (map == NULL)
        return -1;
    free(ep->map);
    ep->map = map;
    ep->map_cap = cap;
    for (int i = 0; i < ep->n - 1; i++)
        place(ep, i);
    return 0;
}

int byp_epoll_index_find(const struct byp_epoll *ep, const void *obj)
{
    if (ep->map == NULL)
        return -1;
    unsigned mask = ep->map_cap - 1;
    for (unsigned s = slot_of(obj, mask);; s = (s + 1) & mask) {
        int v = ep->map[s];
        if (v == 0)
            return -1;
        if (ep->m[v - 1].obj == obj)
            return v - 1;
    }
}

void byp_epoll_index_add(struct byp_epoll *ep, int i)
{
    if (ep->map_off)
        return;
    /* Two fds of one object (dup): an object no longer names one member. */
    if (byp_epoll_index_find(ep, ep->m[i].obj) >= 0 || grow(ep, i + 1) != 0) {
        index_off(ep);
        return;
    }
    place(ep, i);
}

/* The table slot holding member @i. */
static unsigned slot_holding(const struct byp_epoll *ep, int i)
{
    unsigned mask = ep->map_cap - 1;
    unsigned s = slot_of(ep->m[i].obj, mask);
    while (ep->map[s] != i + 1)
        s = (s + 1) & mask;
    return s;
}

void byp_epoll_index_remove(struct byp_epoll *ep, int i)
{
    int last = ep->n - 1;
    /* The pend list follows the move of the last member into @i. */
    for (int k = 0; k < ep->npend; k++) {
        if (ep->pend[k] == i)
            ep->pend[k--] = ep->pend[--ep->npend];
    }
    for (int k = 0; k < ep->npend; k++)
        if (ep->pend[k] == last)
            ep->pend[k] = i;
    if (ep->map == NULL)
        return;
    /* Delete @i's slot, shifting back the entries that probed past it. */
    unsigned mask = ep->map_cap - 1;
    unsigned hole = slot_holding(ep, i);
    ep->map[hole] = 0;
    for (unsigned s = (hole + 1) & mask; ep->map[s] != 0; s = (s + 1) & mask) {
        unsigned home = slot_of(ep->m[ep->map[s] - 1].obj, mask);
        /* Movable into the hole unless its home lies cyclically in (hole, s]. */
        if (((s - home) & mask) >= ((s - hole) & mask)) {
            ep->map[hole] = ep->map[s];
            ep->map[s] = 0;
            hole = s;
        }
    }
    if (last != i)
        ep->map[slot_holding(ep, last)] = i + 1;
}

void byp_epoll_index_reset(struct byp_epoll *ep)
{
    if (ep->map != NULL)
        memset(ep->map, 0, ep->map_cap * sizeof *ep->map);
    ep->map_off = 0;
    ep->npend = 0;
    ep->nunsure = 0;
    ep->rescan = 1;
}

/* ---- the pend list ---- */

void byp_epoll_pend(struct byp_epoll *ep, int i)
{
    if (ep->m[i].pending)
        return;
    if (ep->npend == ep->pend_cap) {
        int cap = ep->pend_cap ? ep->pend_cap * 2 : 64;
        int *a = realloc(ep->pend, (size_t)cap * sizeof *a);
        if (a == NULL) {
            ep->rescan = 1;   /* it holds what it holds; the next scan looks at all */
            return;
        }
        ep->pend = a;
        ep->pend_cap = cap;
    }
    ep->m[i].pending = 1;
    ep->pend[ep->npend++] = i;
}

void byp_epoll_pend_clear(struct byp_epoll *ep)
{
    for (int k = 0; k < ep->npend; k++)
        ep->m[ep->pend[k]].pending = 0;
    ep->npend = 0;
}

/* ---- the scan of what changed ---- */

/* Candidates of one scan: the logged members, then the pend list (kept in @ep->pend's
 * order).  A scratch list per thread would do as well; one per set is simpler. */
static int take_candidate(struct byp_epoll *ep, int i, int **c, int *nc, int *cap)
{
    if (ep->m[i].stamp == ep->stamp)
        return 0;
    ep->m[i].stamp = ep->stamp;
    if (*nc == *cap) {
        int ncap = *cap ? *cap * 2 : 64;
        int *a = realloc(*c, (size_t)ncap * sizeof *a);
        if (a == NULL)
            return -1;
        *c = a;
        *cap = ncap;
    }
    (*c)[(*nc)++] = i;
    return 0;
}

int byp_epoll_scan_changed(struct byp_epoll *ep, const void *const *log, const uint64_t *evp,
                           uint64_t ev_now, struct epoll_event *out, int max, int *stale)
{
    static __thread int *cand;
    static __thread int cand_cap;
    uint64_t from = ep->seen_events;
    if (ev_now - from > BYP_CHANGE_LOG)
        return -1;
    if (++ep->stamp == 0)
        ++ep->stamp;   /* 0 is every new member's */
    int nc = 0;
    for (uint64_t e = from; e != ev_now; e++) {
        const void *obj = __atomic_load_n(&log[e & (BYP_CHANGE_LOG - 1)], __ATOMIC_RELAXED);
        if (obj == NULL)
            return -1;
        int i = byp_epoll_index_find(ep, obj);
        if (i >= 0 && take_candidate(ep, i, &cand, &nc, &cand_cap) < 0)
            return -1;
    }
    /* Entries rewritten while read (the log went round): they cannot be trusted. */
    if (__atomic_load_n(evp, __ATOMIC_ACQUIRE) - from > BYP_CHANGE_LOG)
        return -1;
    for (int k = 0; k < ep->npend; k++)
        if (take_candidate(ep, ep->pend[k], &cand, &nc, &cand_cap) < 0)
            return -1;
    byp_epoll_pend_clear(ep);
    int got = 0, r = -1;
    for (int k = 0; k < nc; k++) {
        int i = cand[k];
        struct member *m = &ep->m[i];
        if (got == max) {
            if (r < 0)
                r = ep->npend;   /* the reported ones so far */
            byp_epoll_pend(ep, i);   /* not looked at: next time */
            continue;
        }
        int64_t rev = byp_epoll_member_check(m, 1);
        if (rev < 0) {
            m->ops = NULL;    /* marks it for removal */
            (*stale)++;
        } else if (rev > 0) {
            out[got].events = (uint32_t)rev;
            out[got].data = m->data;
            got++;
            if (!(m->events & EPOLLET) && m->armed)
                byp_epoll_pend(ep, i);   /* level-triggered: still ready until drained */
        }
    }
    /* The pend list holds the reported level-triggered members, then those not looked at:
     * those go first next time, the reported ones after them (as the kernel puts a
     * reported level-triggered item at the tail of its ready list), or a small maxevents
     * would see the same members again and again. */
    if (r > 0 && r < ep->npend) {
        memcpy(cand, ep->pend, (size_t)r * sizeof *cand);   /* cand holds >= npend */
        memmove(ep->pend, ep->pend + r, (size_t)(ep->npend - r) * sizeof *ep->pend);
        memcpy(ep->pend + ep->npend - r, cand, (size_t)r * sizeof *cand);
    }
    return got;
}
