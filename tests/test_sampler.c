/* test_sampler.c: the sampler's contract, on the dataset in argv[1] (random tokens, several
   shards; tests/test_sampler.sh builds it and runs this under 1, 2 and 4 ranks).
   On one rank it also checks: the permutation is a bijection; every window comes once per
   epoch; the unshuffled order; seeds differ; a resumed cursor gives the same next batches;
   column reads.
   All ranks: for every (dp, cp) layout of the world, each rank reads only its rows and columns
   and together they give exactly rank 0's serial global batch. The hash of the global batches is
   printed ("# batch-hash ...") so the script can compare runs with different numbers of ranks.
   With --short it asks for a window longer than the dataset, which must stop with exit 2. With
   --blend DIR2 the same layout checks read the blend 3:1 of both datasets, and one rank checks the
   blend's schedule and samples. */
#include "data/blend.h"
#include "data/dataset.h"
#include "data/perm.h"
#include "data/sampler.h"
#include "base/util.h"
#include "tests/tap.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { B = 8, L = 64, STEPS = 6 }; /* global batch rows, window length - 1, steps compared */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void test_perm(void)
{
    static const uint64_t sizes[] = {1, 2, 3, 4, 5, 7, 16, 17, 100, 1000, 4097, 65537};
    int bijective = 1, moved = 1;
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
        uint64_t n = sizes[s], fixed = 0;
        char *seen = xcalloc(n, 1);
        for (uint64_t i = 0; i < n; i++) {
            uint64_t j = perm_apply(rng_key(s, "perm"), n, i);
            bijective = bijective && j < n && !seen[j];
            if (j < n)
                seen[j] = 1;
            fixed += j == i;
        }
        if (n >= 100) /* a random permutation has about one fixed point */
            moved = moved && fixed < n / 20;
        free(seen);
    }
    tap_check(bijective, "perm: a bijection of [0, n) for n = 1 .. 65537");
    tap_check(moved, "perm: it does move the elements (few fixed points)");
    int differ = 0;
    for (uint64_t i = 0; i < 1000; i++)
        differ += perm_apply(rng_key(1, "a"), 1000, i) != perm_apply(rng_key(2, "a"), 1000, i);
    tap_check(differ > 900, "perm: another key gives another permutation (%d of 1000 differ)", differ);
    uint64_t big = 1000000007ULL, a = perm_apply(99, big, 123456789), b = perm_apply(99, big, 123456789);
    tap_check(a < big && a == b, "perm: O(1) memory and deterministic on n = 1e9 + 7");
}

/* FNV-1a of each window, sorted: a window's identity when tokens are random. */
static uint64_t window_hash(const int32_t *t, int n) { return util_fnv1a(t, n * sizeof *t, UTIL_FNV_INIT); }

static void test_serial(Dataset *ds)
{
    Sampler *s = sampler_create(ds, 42, L, 1), *u = sampler_create(ds, 42, L, 0);
    int64_t W = sampler_windows(s), n = dataset_ntokens(ds);
    tap_check(W == (n - 1) / L && sampler_windows(u) == W, "sampler: %lld windows of %d tokens at stride %d",
              (long long)W, L + 1, L);
    int32_t *row = xmalloc((L + 1) * sizeof *row), *direct = xmalloc((L + 1) * sizeof *direct);
    uint64_t *drawn = xmalloc(W * sizeof *drawn), *all = xmalloc(W * sizeof *all), *next = xmalloc(W * sizeof *next);
    int in_order = 1;
    for (int64_t w = 0; w < W; w++) {
        dataset_read(ds, w * L, L + 1, direct);
        all[w] = window_hash(direct, L + 1);
        sampler_read(u, W + w, 0, 1, 0, L, row); /* second epoch: unshuffled repeats the order */
        in_order = in_order && memcmp(row, direct, (L + 1) * sizeof *row) == 0;
        sampler_read(s, w, 0, 1, 0, L, row);
        drawn[w] = window_hash(row, L + 1);
        sampler_read(s, W + w, 0, 1, 0, L, row);
        next[w] = window_hash(row, L + 1);
    }
    tap_check(in_order, "unshuffled: sample k is window k mod W");
    int same_order = memcmp(drawn, next, W * sizeof *drawn) == 0;
    qsort(all, W, sizeof *all, cmp_u64);
    qsort(drawn, W, sizeof *drawn, cmp_u64);
    qsort(next, W, sizeof *next, cmp_u64);
    tap_check(memcmp(all, drawn, W * sizeof *all) == 0 && memcmp(all, next, W * sizeof *all) == 0,
              "shuffled: epochs 0 and 1 each visit every window exactly once");
    tap_check(!same_order, "shuffled: epoch 1 visits them in another order");

    /* a run that restarts from its cursor sees the same next batches */
    int32_t *run = xmalloc((int64_t)STEPS * B * (L + 1) * sizeof *run),
            *resumed = xmalloc(B * (L + 1) * sizeof *resumed);
    for (int step = 0; step < STEPS; step++)
        sampler_read(s, (int64_t)step * B, 0, B, 0, L, run + (int64_t)step * B * (L + 1));
    Sampler *again = sampler_create(ds, 42, L, 1);
    int ok = 1;
    for (int step = 3; step < STEPS; step++) {
        sampler_read(again, (int64_t)step * B, 0, B, 0, L, resumed);
        ok = ok && memcmp(resumed, run + (int64_t)step * B * (L + 1), B * (L + 1) * sizeof *run) == 0;
    }
    tap_check(ok, "resume: a new sampler from cursor 3B gives the batches of steps 3..%d", STEPS - 1);

    Sampler *other = sampler_create(ds, 43, L, 1);
    sampler_read(other, 0, 0, B, 0, L, resumed);
    tap_check(memcmp(resumed, run, B * (L + 1) * sizeof *run) != 0, "seeds 42 and 43 give different batches");

    /* columns [c0, c0 + nc] of rows [r0, r0 + nr) are that part of the full rows */
    ok = 1;
    for (int t = 0; t < 20; t++) {
        int c0 = t % 7 * 9, nc = 1 + t * 5 % (L - c0), r0 = t % 3, nr = 1 + t % (B - r0);
        int32_t part[B * (L + 1)];
        sampler_read(s, 5 * B, r0, nr, c0, nc, part);
        for (int r = 0; r < nr; r++)
            ok = ok && memcmp(part + r * (nc + 1), run + (5 * B + r0 + r) * (L + 1) + c0, (nc + 1) * sizeof *part) == 0;
    }
    tap_check(ok, "column reads: any block of rows and columns equals that part of the full batch");

    Sampler *one = sampler_create(ds, 1, (int)(n - 1), 1);
    tap_check(sampler_windows(one) == 1, "a dataset of exactly L + 1 tokens has one window");
    sampler_free(one);
    sampler_free(other);
    sampler_free(again);
    sampler_free(u);
    sampler_free(s);
    free(run);
    free(resumed);
    free(row);
    free(direct);
    free(drawn);
    free(all);
    free(next);
}

/* The blend schedule keeps every dataset within one sample of its quota's share at every sample,
   over several periods. */
static void test_schedule(void)
{
    static const double weights[][3] = {{1, 1, 0}, {3, 1, 0}, {1, 2, 7}, {0.001, 1, 0}, {1, 0, 0}};
    int ok = 1, sums = 1;
    for (size_t w = 0; w < sizeof weights / sizeof *weights; w++) {
        int n = weights[w][2] > 0 ? 3 : weights[w][1] > 0 ? 2 : 1;
        BlendSchedule bs;
        blend_schedule_init(&bs, weights[w], n);
        int64_t total = 0, counts[3];
        for (int i = 0; i < n; i++)
            total += bs.quota[i];
        sums = sums && total == BLEND_PERIOD;
        for (uint64_t k = 0; k <= 3 * BLEND_PERIOD; k += k < 2 * BLEND_PERIOD ? 1 : 997) {
            blend_counts(&bs, k, counts);
            for (int i = 0; i < n; i++)
                ok = ok && fabs((double)counts[i] - (double)k * (double)bs.quota[i] / BLEND_PERIOD) < 1;
        }
        blend_schedule_free(&bs);
    }
    tap_check(sums, "blend: the quotas of a period add up to %d samples", BLEND_PERIOD);
    tap_check(ok, "blend: at every sample each dataset's count is within one of its share (weights 1:1, 3:1, "
                  "1:2:7, 0.001:1, one dataset)");
}

/* A blend of a and b weighted 3:1 (its text in spec): every window it draws is a window of a or
   of b, as many of each as sampler_counts says (3 in 4); each dataset's samples go through its
   windows once per epoch; unshuffled, in order; a resumed sampler continues exactly. */
static void test_blend(Dataset *blend, Dataset *a, Dataset *b)
{
    Dataset *parts[2] = {a, b};
    int64_t W[2], total = 0, counts[2], from[2] = {0, 0};
    uint64_t *windows[2];
    int32_t *row = xmalloc((L + 1) * sizeof *row);
    for (int d = 0; d < 2; d++) {
        W[d] = (dataset_ntokens(parts[d]) - 1) / L;
        windows[d] = xmalloc(W[d] * sizeof *windows[d]);
        for (int64_t w = 0; w < W[d]; w++) {
            dataset_read(parts[d], w * L, L + 1, row);
            windows[d][w] = window_hash(row, L + 1);
        }
        qsort(windows[d], W[d], sizeof *windows[d], cmp_u64);
        total += W[d];
    }
    Sampler *s = sampler_create(blend, 5, L, 1), *u = sampler_create(blend, 5, L, 0);
    tap_check(sampler_datasets(s) == 2 && sampler_windows(s) == total, "blend: 2 datasets, %lld windows",
              (long long)total);
    const int64_t K = 4 * (W[0] > W[1] ? W[0] : W[1]);
    uint64_t *seen[2] = {xmalloc(K * sizeof **seen), xmalloc(K * sizeof **seen)};
    int known = 1, ordered = 1;
    int64_t next_u[2] = {0, 0};
    for (int64_t k = 0; k < K; k++) {
        sampler_read(s, k, 0, 1, 0, L, row);
        uint64_t h = window_hash(row, L + 1);
        int d = bsearch(&h, windows[0], W[0], sizeof h, cmp_u64) ? 0 : 1;
        known = known && (d == 0 || bsearch(&h, windows[1], W[1], sizeof h, cmp_u64));
        seen[d][from[d]++] = h;
        sampler_read(u, k, 0, 1, 0, L, row);
        h = window_hash(row, L + 1);
        d = bsearch(&h, windows[0], W[0], sizeof h, cmp_u64) ? 0 : 1;
        int64_t w = next_u[d]++ % W[d];
        dataset_read(parts[d], w * L, L + 1, row);
        ordered = ordered && window_hash(row, L + 1) == h;
    }
    sampler_counts(s, K, counts);
    tap_check(known, "blend: every sample is a window of one of its datasets");
    tap_check(counts[0] == from[0] && counts[1] == from[1] && labs(4 * from[0] - 3 * K) <= 4,
              "blend: %lld and %lld samples of %lld (weights 3:1), as sampler_counts says", (long long)from[0],
              (long long)from[1], (long long)K);
    int epochs = 1;
    for (int d = 0; d < 2; d++) {
        qsort(seen[d], W[d], sizeof **seen, cmp_u64);
        epochs = epochs && from[d] >= W[d] && memcmp(seen[d], windows[d], W[d] * sizeof **seen) == 0;
    }
    tap_check(epochs, "blend: each dataset's first epoch visits its windows once each");
    tap_check(ordered, "blend, unshuffled: each dataset's samples are its windows in order");
    Sampler *again = sampler_create(blend, 5, L, 1);
    int32_t *x = xmalloc(B * (L + 1) * sizeof *x), *y = xmalloc(B * (L + 1) * sizeof *y);
    int same = 1;
    for (int step = 3; step < STEPS; step++) {
        sampler_read(s, (int64_t)step * B, 0, B, 0, L, x);
        sampler_read(again, (int64_t)step * B, 0, B, 0, L, y);
        same = same && memcmp(x, y, B * (L + 1) * sizeof *x) == 0;
    }
    tap_check(same, "blend: a new sampler from cursor 3B gives the batches of steps 3..%d", STEPS - 1);
    sampler_free(again);
    sampler_free(s);
    sampler_free(u);
    for (int d = 0; d < 2; d++) {
        free(windows[d]);
        free(seen[d]);
    }
    free(row);
    free(x);
    free(y);
}

/* Each (dp, cp) layout of the world reads the global batches of a few steps (one crossing an
   epoch boundary); gathered on rank 0 they must equal the serial read. Returns their hash. */
static uint64_t test_layouts(Dataset *ds, MPI_Comm comm)
{
    int rank, world;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &world);
    Sampler *s = sampler_create(ds, 7, L, 1);
    int64_t W = sampler_windows(s), cursors[STEPS + 1];
    for (int step = 0; step < STEPS; step++)
        cursors[step] = (int64_t)step * B;
    cursors[STEPS] = 2 * W - 3; /* rows from epochs 1 and 2 */
    int32_t *serial = xmalloc(B * (L + 1) * sizeof *serial), *global = xmalloc(B * (L + 1) * sizeof *global);
    uint64_t hash = UTIL_FNV_INIT;
    for (int cp = 1; cp <= world; cp *= 2) {
        int dp = world / cp, dp_rank = rank / cp, cp_rank = rank % cp, rows = B / dp, cols = L / cp;
        int32_t *mine = xmalloc(rows * (cols + 1) * sizeof *mine),
                *parts = xmalloc(world * rows * (cols + 1) * sizeof *parts);
        int ok = 1;
        for (int step = 0; step <= STEPS; step++) {
            sampler_read(s, cursors[step], dp_rank * rows, rows, cp_rank * cols, cols, mine);
            MPI_Gather(mine, rows * (cols + 1), MPI_INT32_T, parts, rows * (cols + 1), MPI_INT32_T, 0, comm);
            if (rank != 0)
                continue;
            for (int r = 0; r < world; r++) /* rank r's block goes to its rows and columns */
                for (int i = 0; i < rows; i++)
                    memcpy(global + ((r / cp) * rows + i) * (L + 1) + (r % cp) * cols,
                           parts + (r * rows + i) * (cols + 1), (cols + 1) * sizeof *parts);
            sampler_read(s, cursors[step], 0, B, 0, L, serial);
            ok = ok && memcmp(global, serial, B * (L + 1) * sizeof *serial) == 0;
            if (cp == 1)
                hash = util_fnv1a(global, B * (L + 1) * sizeof *global, hash);
        }
        tap_check_all(comm, ok,
                      "%d ranks as dp %d x cp %d: each reads its rows and columns; together the global "
                      "batch of %d steps",
                      world, dp, cp, STEPS + 1);
        free(mine);
        free(parts);
    }
    sampler_free(s);
    free(serial);
    free(global);
    return hash;
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    int rank;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    tap_quiet = rank != 0;
    if (argc < 2)
        fail_input("usage: test_sampler DATASET_DIR [--short | --blend DATASET_DIR2]");
    Dataset *ds = dataset_open(argv[1], "train");
    if (argc > 2 && strcmp(argv[2], "--short") == 0)
        sampler_create(ds, 1, (int)dataset_ntokens(ds), 1); /* needs one token more than there is */
    int world;
    MPI_Comm_size(MPI_COMM_WORLD, &world);
    if (argc > 3 && strcmp(argv[2], "--blend") == 0) { /* from here on, the blend 3:1 of both */
        char *spec = xasprintf("3 %s 1 %s", argv[1], argv[3]);
        Dataset *blend = dataset_open_blend(spec, "train"), *b = dataset_open(argv[3], "train");
        if (world == 1) {
            test_schedule();
            test_blend(blend, ds, b);
        }
        dataset_close(ds);
        dataset_close(b);
        ds = blend;
        free(spec);
    } else if (world == 1) { /* the serial checks once, in the one-rank run */
        test_perm();
        test_serial(ds);
    }
    uint64_t hash = test_layouts(ds, MPI_COMM_WORLD);
    if (rank == 0)
        printf("# batch-hash %016llx\n", (unsigned long long)hash);
    dataset_close(ds);
    int status = tap_done();
    MPI_Finalize();
    return status;
}
