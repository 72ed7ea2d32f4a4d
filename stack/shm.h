/* Memory shared by the process that started the engine and every child it forks after.
 *
 * The stack's long-lived objects (lwIP's heap, the socket objects, the engine's tables) come
 * from one arena mapped MAP_SHARED at engine start, before any fork: a child inherits it at
 * the same address, so pointers inside it mean the same thing in every process of the family.
 * What a single process owns (its fd table, its threads, libnl caches) stays in its own heap.
 *
 * The allocator has its own process-shared robust lock, so it may be called with or without
 * the stack lock.  Before byp_shm_setup (and if it failed) it falls back to malloc, and
 * byp_shm_free tells the two apart by address. */
#ifndef BYP_SHM_H
#define BYP_SHM_H

#include <stddef.h>

/* Map the arena (@bytes of address space; pages are used as they are touched).  0 or -errno. */
int byp_shm_setup(size_t bytes);

/* Nonzero once the arena exists: objects are then shared with forked children. */
int byp_shm_ready(void);

/* Allocate @size bytes (16-byte aligned), NULL when out of memory. */
void *byp_shm_alloc(size_t size);
/* Allocate @n * @size zeroed bytes, NULL when out of memory or on overflow. */
void *byp_shm_calloc(size_t n, size_t size);
/* Give back what byp_shm_alloc/calloc returned (NULL is ignored). */
void byp_shm_free(void *p);

/* Bytes handed out and not yet given back, for the stats. */
size_t byp_shm_in_use(void);

#endif
