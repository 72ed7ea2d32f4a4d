/* The shared arena (stack/shm.c): blocks of every class, reuse after free, exhaustion, the
 * malloc fallback before setup, and what a forked child writes seen by its parent. */
#include <stdint.h>
#include <sys/mman.h>

#include "shm.h"
#include "unit.h"

UNIT_TEST(fallback_before_setup)
{
    CHECK(!byp_shm_ready());
    char *p = byp_shm_alloc(100);
    CHECK(p != NULL);
    memset(p, 1, 100);
    byp_shm_free(p);            /* goes back to malloc's free: must not crash */
    byp_shm_free(NULL);
}

UNIT_TEST(classes_align_and_reuse)
{
    CHECK(byp_shm_setup(64 << 20) == 0);
    CHECK(byp_shm_ready());
    size_t sizes[] = {1, 16, 17, 100, 1000, 4096, 65536, 70000, (1 << 20) - 16, 3 << 20};
    void *ptrs[10];
    for (int i = 0; i < 10; i++) {
        ptrs[i] = byp_shm_alloc(sizes[i]);
        CHECK(ptrs[i] != NULL);
        CHECK(((uintptr_t)ptrs[i] & 15) == 0);
        memset(ptrs[i], 0xa5, sizes[i]);
    }
    for (int i = 0; i < 10; i++)      /* no overlap: each still holds its own pattern */
        for (size_t j = 0; j < sizes[i]; j += 97)
            CHECK(((unsigned char *)ptrs[i])[j] == 0xa5);
    size_t used = byp_shm_in_use();
    CHECK(used >= (3u << 20) + (1u << 20));
    void *again = ptrs[4];
    byp_shm_free(ptrs[4]);
    CHECK(byp_shm_in_use() < used);
    CHECK(byp_shm_alloc(900) == again);          /* same class: the freed block comes back */
    void *big = ptrs[9];
    byp_shm_free(ptrs[9]);
    CHECK(byp_shm_alloc(2 << 20) == big);        /* first fit among large blocks */
    int *z = byp_shm_calloc(1000, sizeof *z);
    CHECK(z != NULL);
    for (int i = 0; i < 1000; i++)
        CHECK(z[i] == 0);
    CHECK(byp_shm_calloc(SIZE_MAX / 2, 4) == NULL);   /* overflow */
}

UNIT_TEST(exhaustion_returns_null)
{
    CHECK(byp_shm_setup(4 << 20) == 0);
    int n = 0;
    while (byp_shm_alloc(512 << 10) != NULL)
        n++;
    CHECK(n == 3);   /* 512 KiB + header is a 1 MiB block; the header of the arena takes the 4th */
    CHECK(byp_shm_alloc(1 << 30) == NULL);
}

UNIT_TEST(forked_child_writes_are_shared)
{
    CHECK(byp_shm_setup(16 << 20) == 0);
    volatile int *v = byp_shm_calloc(16, sizeof *v);
    CHECK(v != NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        v[3] = 42;
        int *child_block = byp_shm_alloc(64);   /* the allocator's state is shared too */
        v[4] = child_block != NULL && child_block != (int *)v;
        _exit(0);
    }
    int st;
    CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    CHECK(v[3] == 42);
    CHECK(v[4] == 1);
    void *mine = byp_shm_alloc(64);             /* not the block the child took */
    CHECK(mine != NULL);
}

static const struct unit_test tests[] = {
    UNIT(fallback_before_setup),
    UNIT(classes_align_and_reuse),
    UNIT(exhaustion_returns_null),
    UNIT(forked_child_writes_are_shared),
};

int main(int argc, char **argv)
{
    return unit_run(tests, UNIT_COUNT(tests), argc, argv);
}
