/* The shared arena (see shm.h): power-of-two size classes from 32 bytes to 1 MiB, each with
 * a free list, carved from one MAP_SHARED | MAP_ANONYMOUS mapping by a bump pointer; larger
 * blocks come in whole pages from the same bump pointer and go back to a first-fit list.
 * Every block starts with a 16-byte header naming its class (or its page count). */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "shm.h"

#define MIN_SHIFT 5             /* 32 bytes */
#define MAX_SHIFT 20            /* 1 MiB */
#define NCLASS (MAX_SHIFT - MIN_SHIFT + 1)
#define HDR 16
#define PAGE 4096

struct block {
    size_t cls;                 /* class index, or NCLASS + bytes for a large block */
    struct block *next;         /* while free */
};

struct arena {
    pthread_mutex_t lock;       /* process-shared and robust: a member may die holding it */
    size_t size, used, in_use;
    struct block *free[NCLASS];
    struct block *large;        /* free large blocks, first fit */
};

static struct arena *A;         /* the arena's header sits at its start */
static char *base, *end;

static void lock(void)
{
    if (pthread_mutex_lock(&A->lock) == EOWNERDEAD)
        pthread_mutex_consistent(&A->lock);
}

static void unlock(void)
{
    pthread_mutex_unlock(&A->lock);
}

int byp_shm_setup(size_t bytes)
{
    if (A != NULL)
        return 0;
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
    if (p == MAP_FAILED)
        return -errno;
    base = p;
    end = base + bytes;
    struct arena *a = p;
    pthread_mutexattr_t ma;
    pthread_mutexattr_init(&ma);
    pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&ma, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(&a->lock, &ma);
    pthread_mutexattr_destroy(&ma);
    a->size = bytes;
    a->used = (sizeof *a + 63) & ~(size_t)63;
    __atomic_store_n(&A, a, __ATOMIC_RELEASE);
    return 0;
}

int byp_shm_ready(void)
{
    return __atomic_load_n(&A, __ATOMIC_ACQUIRE) != NULL;
}

/* Carve @bytes from the bump pointer (lock held); NULL when the arena is full. */
static struct block *carve(size_t bytes)
{
    if (A->used + bytes > A->size)
        return NULL;
    struct block *b = (struct block *)(base + A->used);
    A->used += bytes;
    return b;
}

void *byp_shm_alloc(size_t size)
{
    if (!byp_shm_ready())
        return malloc(size);
    if (size > ((size_t)1 << 40))
        return NULL;
    size_t need = size + HDR;
    struct block *b = NULL;
    lock();
    if (need <= ((size_t)1 << MAX_SHIFT)) {
        unsigned shift = MIN_SHIFT;
        while (((size_t)1 << shift) < need)
            shift++;
        size_t c = shift - MIN_SHIFT;
        b = A->free[c];
        if (b != NULL)
            A->free[c] = b->next;
        else
            b = carve((size_t)1 << shift);
        if (b != NULL) {
            b->cls = c;
            A->in_use += (size_t)1 << shift;
        }
    } else {
        size_t bytes = (need + PAGE - 1) & ~(size_t)(PAGE - 1);
        for (struct block **bp = &A->large; *bp != NULL; bp = &(*bp)->next)
            if ((*bp)->cls - NCLASS >= bytes) {
                b = *bp;
                *bp = b->next;
                bytes = b->cls - NCLASS;
                break;
            }
        if (b == NULL)
            b = carve(bytes);
        if (b != NULL) {
            b->cls = NCLASS + bytes;
            A->in_use += bytes;
        }
    }
    unlock();
    return b != NULL ? (char *)b + HDR : NULL;
}

void *byp_shm_calloc(size_t n, size_t size)
{
    if (size != 0 && n > SIZE_MAX / size)
        return NULL;
    void *p = byp_shm_alloc(n * size);
    if (p != NULL)
        memset(p, 0, n * size);
    return p;
}

void byp_shm_free(void *p)
{
    if (p == NULL)
        return;
    if (A == NULL || (char *)p < base || (char *)p >= end) {
        free(p);
        return;
    }
    struct block *b = (struct block *)((char *)p - HDR);
    lock();
    if (b->cls < NCLASS) {
        A->in_use -= (size_t)1 << (b->cls + MIN_SHIFT);
        b->next = A->free[b->cls];
        A->free[b->cls] = b;
    } else {
        A->in_use -= b->cls - NCLASS;
        b->next = A->large;
        A->large = b;
    }
    unlock();
}

size_t byp_shm_in_use(void)
{
    return A != NULL ? __atomic_load_n(&A->in_use, __ATOMIC_RELAXED) : 0;
}
