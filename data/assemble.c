/* assemble.c: the second phase of a build (see build_internal.h). Each split is one stream: the
   tokens of its documents in input order. Shard k of a split holds its tokens [k S, (k + 1) S)
   (S = shard_tokens), so what a shard holds depends on the inputs alone; the shards of both
   splits, train first, are dealt to the ranks in contiguous runs, and each rank reads what its
   shards hold from the token files of the parts. A resumed build keeps the shards it finds
   (written whole, under a temporary name, by the interrupted one). */
#include "data/build_internal.h"

#include "data/h5_check.h"
#include "data/progress.h"
#include "data/shard.h"
#include "data/spill.h"
#include "base/util.h"

#include <mpi.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ASSEMBLE_BLOCK (1 << 16) /* ids read from a token file at a time */

static const char *split_names[2] = {"train", "val"};

typedef struct {
    Build *b;
    int64_t *start[2]; /* (nparts + 1) part p's tokens of split s are [start[s][p], start[s][p + 1]) of its stream */
    Progress pg;
    uint32_t *ids; /* (ASSEMBLE_BLOCK) */
} Assemble;

/* Where document g's tokens split: [0, cut) go to train, the rest to val. */
static int64_t doc_cut(const Build *b, int64_t g, int64_t n)
{
    if (b->cut >= 0)
        return b->cut;
    return b->val[g / 8] >> (g % 8) & 1 ? 0 : n;
}

/* Tokens [a, e) of split s from part p into w: each document's tokens of the split in turn, and a
   document start where one falls inside. */
static void copy_part(Assemble *as, int s, int p, int64_t a, int64_t e, ShardWriter *w)
{
    const Build *b = as->b;
    char *path = build_spill_path(b, p);
    Spill sp;
    spill_open(&sp, path);
    int64_t pos = as->start[s][p], at = 0; /* in the split's stream; in the part's tokens */
    for (int64_t d = 0; d < sp.h.ndocs && pos < e; d++) {
        int64_t n = sp.doc_tokens[d], cut = doc_cut(b, b->parts[p].doc0 + d, n);
        int64_t lo = s == 0 ? 0 : cut, hi = s == 0 ? cut : n; /* the document's tokens in split s */
        int starts = s == 0 ? cut > 0 : cut == 0;            /* its first token is in split s */
        if (hi > lo && pos + hi - lo > a) {
            int64_t from = a > pos ? a - pos : 0, to = e - pos < hi - lo ? e - pos : hi - lo;
            if (starts && from == 0 && b->o->kind == BUILD_TEXT)
                shard_writer_doc(w);
            for (int64_t i = from; i < to; i += ASSEMBLE_BLOCK) {
                int64_t m = to - i < ASSEMBLE_BLOCK ? to - i : ASSEMBLE_BLOCK;
                spill_read(&sp, at + lo + i, m, as->ids);
                shard_writer_append(w, as->ids, m);
                progress_add(&as->pg, m, 0, 0);
                build_test_kill("assemble");
            }
        }
        pos += hi - lo;
        at += n;
    }
    spill_close(&sp);
    free(path);
}

/* Shard k of split s: its tokens from the parts that hold them. */
static void write_shard(Assemble *as, int s, int64_t k, ShardSums **sums, int *nsums)
{
    const Build *b = as->b;
    const int64_t S = b->o->shard_tokens, *start = as->start[s], a = k * S;
    const int64_t e = a + S < start[b->corpus.nparts] ? a + S : start[b->corpus.nparts];
    ShardWriter *w = shard_writer_open(b->o->out_dir, split_names[s], b->first[s] + (int)k, S, &b->fmt);
    if (b->o->kind == BUILD_TEXT)
        shard_writer_track_docs(w);
    int p = 0;
    while (start[p + 1] <= a) /* the first part with tokens past a */
        p++;
    for (; p < b->corpus.nparts && start[p] < e; p++)
        if (start[p + 1] > start[p])
            copy_part(as, s, p, a, e, w);
    shard_writer_close(w, sums, nsums);
}

/* Rank 0 gets every rank's shard checksums: per shard its split, number, chunk count and chunk
   checksums, packed into one array of uint64. */
static void gather_sums(const Build *b, ShardSums **sums, int *nsums)
{
    int64_t cap = 0, n = 0;
    uint64_t *pack = NULL;
    for (int i = 0; i < *nsums; i++) {
        const ShardSums *ss = &(*sums)[i];
        ShardName name;
        shard_name_parse(ss->name, &name);
        pack = data_grow(pack, &cap, n + 3 + ss->n, sizeof *pack);
        pack[n++] = strcmp(name.split, split_names[1]) == 0;
        pack[n++] = (uint64_t)name.number;
        pack[n++] = (uint64_t)ss->n;
        shard_names_free(&name, 1);
        memcpy(pack + n, ss->sums, (size_t)ss->n * sizeof *pack);
        n += ss->n;
    }
    int mine = (int)n, *counts = NULL, *displs = NULL, total = 0;
    if (b->rank == 0) {
        counts = xmalloc((size_t)b->world * sizeof *counts);
        displs = xmalloc((size_t)b->world * sizeof *displs);
    }
    MPI_Gather(&mine, 1, MPI_INT, counts, 1, MPI_INT, 0, MPI_COMM_WORLD);
    for (int r = 0; b->rank == 0 && r < b->world; r++) {
        displs[r] = total;
        total += counts[r];
    }
    uint64_t *all = b->rank == 0 ? xmalloc((size_t)total * sizeof *all) : NULL;
    MPI_Gatherv(pack, mine, MPI_UINT64_T, all, counts, displs, MPI_UINT64_T, 0, MPI_COMM_WORLD);
    shard_sums_free(*sums, *nsums);
    *sums = NULL;
    *nsums = 0;
    int64_t sums_cap = 0;
    for (int64_t i = 0; i < total; i += 3 + (int64_t)all[i + 2]) {
        *sums = data_grow(*sums, &sums_cap, *nsums + 1, sizeof **sums);
        ShardSums *ss = &(*sums)[(*nsums)++];
        ss->name = xasprintf("%s-%05d.h5", split_names[all[i]], (int)all[i + 1]);
        ss->n = (int64_t)all[i + 2];
        ss->sums = xmalloc((size_t)ss->n * sizeof *ss->sums);
        memcpy(ss->sums, all + i + 3, (size_t)ss->n * sizeof *ss->sums);
    }
    free(all);
    free(pack);
    free(counts);
    free(displs);
}

void build_assemble(Build *b, ShardSums **written, int *nwritten)
{
    const int P = b->corpus.nparts;
    const int64_t S = b->o->shard_tokens;
    Assemble as = {.b = b, .ids = xmalloc(ASSEMBLE_BLOCK * sizeof *as.ids)};
    int64_t nshards[2], todo = 0;
    for (int s = 0; s < 2; s++) {
        as.start[s] = xmalloc((size_t)(P + 1) * sizeof *as.start[s]);
        as.start[s][0] = 0;
        for (int p = 0; p < P; p++)
            as.start[s][p + 1] = as.start[s][p] + b->parts[p].tokens[s];
        nshards[s] = (as.start[s][P] + S - 1) / S;
        b->stats[s].tokens = as.start[s][P];
        b->stats[s].shards = (int)nshards[s];
        todo += as.start[s][P];
    }
    /* this rank's run of the shards, train's then val's */
    const int64_t all = nshards[0] + nshards[1], j0 = all * b->rank / b->world, j1 = all * (b->rank + 1) / b->world;
    progress_start(&as.pg, "writing shards", "tokens", todo, b->rank, b->world);
    *written = NULL;
    *nwritten = 0;
    for (int64_t j = j0; j < j1; j++) {
        int s = j >= nshards[0];
        int64_t k = j - s * nshards[0];
        char *path = xasprintf("%s/%s-%05d.h5", b->o->out_dir, split_names[s], b->first[s] + (int)k);
        if (b->o->resume && access(path, F_OK) == 0) /* whole: shards are renamed into place */
            progress_add(&as.pg, (k + 1) * S < as.start[s][P] ? S : as.start[s][P] - k * S, 0, 0);
        else
            write_shard(&as, s, k, written, nwritten);
        free(path);
    }
    int64_t sum[PROGRESS_NCOUNTS];
    progress_finish(&as.pg, sum);
    if (b->world > 1)
        gather_sums(b, written, nwritten);
    for (int s = 0; s < 2; s++)
        free(as.start[s]);
    free(as.ids);
}
