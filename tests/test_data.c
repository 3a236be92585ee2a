/* test_data.c: the token-shard format end to end. Building from text and from raw uint16/uint32
   tokens and reading back gives exactly the input tokens, across shard boundaries; the
   validation split holds whole documents; and every kind of broken shard (truncated, flipped
   bytes, missing or wrong attributes, ids >= vocab) is reported by file name with exit status 2
   -- never a crash, never HDF5's own error dump. Broken cases run in a child process. */
#include "data/build.h"
#include "data/dataset.h"
#include "data/h5_check.h"
#include "data/inspect.h"
#include "data/manifest.h"
#include "data/shard.h"
#include "base/util.h"
#include "tests/tap.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char tmp[256] = "tests/tmp/test_data.XXXXXX"; /* this run's folder, removed at the end */
static uint64_t key;                                 /* for the random inputs */

static char *in_tmp(const char *name) { return xasprintf("%s/%s", tmp, name); }

static void write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, n, f) != n || fclose(f) != 0)
        fail("cannot write %s", path);
}

static unsigned char *read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    struct stat st;
    if (!f || stat(path, &st) != 0)
        fail("cannot read %s", path);
    unsigned char *data = xmalloc(st.st_size);
    *n = fread(data, 1, st.st_size, f);
    fclose(f);
    return data;
}

static void copy_file(const char *from, const char *to)
{
    size_t n;
    unsigned char *data = read_file(from, &n);
    write_file(to, data, n);
    free(data);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) { return remove(path); }

static void rm_tree(const char *path) { nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS); }

static BuildOptions build_options(const char *out, char **inputs, int ninputs)
{
    return (BuildOptions){.out_dir = out,
                          .inputs = inputs,
                          .ninputs = ninputs,
                          .kind = BUILD_TEXT,
                          .eod = -1,
                          .val_fraction = 0,
                          .shard_tokens = 1 << 20,
                          .seed = 1};
}

/* The whole stream of a split; *n gets its length. */
static int32_t *read_split(const char *dir, const char *split, int64_t *n)
{
    Dataset *ds = dataset_open(dir, split);
    *n = dataset_ntokens(ds);
    int32_t *out = xmalloc((*n + 1) * sizeof *out);
    dataset_read(ds, 0, *n, out);
    dataset_close(ds);
    return out;
}

static int same_u32(const int32_t *got, const uint32_t *want, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        if ((uint32_t)got[i] != want[i])
            return 0;
    return 1;
}

static ShardMeta meta_of(const char *path, const char *split)
{
    ShardMeta m;
    hid_t f = shard_open(path);
    shard_meta(path, f, split, &m);
    H5_CHECK_AT(path, H5Fclose(f));
    return m;
}

/* ---- child processes: status and stderr of a call that may stop the process ---- */

typedef struct {
    int status; /* exit status, or 128 + signal number */
    char err[4096];
} Child;

static Child child_run(void (*fn)(const void *), const void *arg)
{
    Child c = {0};
    int fd[2];
    fflush(stdout);
    if (pipe(fd) != 0)
        fail("pipe: %s", strerror(errno));
    pid_t pid = fork();
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        dup2(fd[1], 2);
        close(fd[0]);
        alarm(60); /* a call that hangs (a FIFO opened as a shard) fails the check instead */
        fn(arg);
        exit(0);
    }
    close(fd[1]);
    size_t got = 0;
    ssize_t r;
    while ((r = read(fd[0], c.err + got, sizeof c.err - 1 - got)) > 0)
        got += (size_t)r;
    close(fd[0]);
    int st;
    waitpid(pid, &st, 0);
    c.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    return c;
}

static void child_read_train(const void *dir)
{
    int64_t n;
    free(read_split(dir, "train", &n));
}

static void child_verify(const void *dir) { exit(data_verify(dir, stdout, stderr) ? 2 : 0); }

static void child_manifest(const void *dir) { manifest_update(dir, NULL, 0); }

static void child_build(const void *options)
{
    BuildSplit st[2];
    data_build(options, st);
}

/* Exit status 2, one message naming `file` and containing `what`, and no HDF5 error dump. */
static void expect_bad(Child c, const char *file, const char *what, const char *label)
{
    int ok = c.status == 2 && strstr(c.err, file) && strstr(c.err, what) && !strstr(c.err, "HDF5-DIAG");
    if (!tap_check(ok, "%s", label))
        tap_diag("exit %d, stderr: %s", c.status, c.err);
}

/* ---- round trips ---- */

/* Text: nested folders walked in name order, dot-files skipped, any bytes, empty documents. */
static void test_text_round_trip(void)
{
    const char *files[] = {"text/a.txt", "text/b/x.txt", "text/b/y/z.txt", "text/b.txt", "text/c.txt"};
    int nfiles = 5;
    char *dirs[] = {in_tmp("text"), in_tmp("text/b"), in_tmp("text/b/y")};
    for (int i = 0; i < 3; i++)
        mkdir(dirs[i], 0777);
    uint32_t *want = xmalloc(8192 * sizeof *want);
    int64_t n = 0;
    for (int f = 0; f < nfiles; f++) {
        int len = f == 3 ? 0 : 1 + (int)(rng_u64(key, 100 + f) % 700); /* b.txt is empty */
        unsigned char *text = xmalloc(len + 1);
        for (int i = 0; i < len; i++) /* every byte value, NUL and 0xff included */
            text[i] = (unsigned char)rng_u64(key, 1000 * f + i);
        char *path = in_tmp(files[f]);
        write_file(path, text, len);
        for (int i = 0; i < len; i++)
            want[n++] = text[i];
        want[n++] = 256;
        free(path);
        free(text);
    }
    char *hidden = in_tmp("text/.hidden.txt");
    write_file(hidden, "skipped", 7);
    char *out = in_tmp("text-out");
    BuildOptions o = build_options(out, &dirs[0], 1);
    o.shard_tokens = 97; /* many shards: reads cross boundaries and outrun the open-file cache */
    BuildSplit st[2];
    data_build(&o, st);
    int64_t got_n;
    int32_t *got = read_split(out, "train", &got_n);
    tap_check(got_n == n && same_u32(got, want, n),
              "text: the stream is the bytes of each file in name order, "
              "each followed by EOD 256 (%lld tokens)",
              (long long)n);
    tap_check(st[0].docs == nfiles && st[0].shards == (int)((n + 96) / 97) && st[1].shards == 0,
              "text: %lld documents in %d shards of 97 tokens, no val shard", (long long)st[0].docs, st[0].shards);
    Dataset *ds = dataset_open(out, "train");
    tap_check(dataset_vocab(ds) == 257 && dataset_eod(ds) == 256 && strcmp(dataset_tokenizer(ds), "bytes") == 0,
              "text: vocab 257, eod 256, tokenizer 'bytes'");
    int ok = 1;
    int32_t *part = xmalloc(n * sizeof *part);
    for (int t = 0; t < 200; t++) { /* random ranges, most crossing shard boundaries */
        int64_t a = (int64_t)(rng_u64(key, 5000 + t) % n), len = (int64_t)(rng_u64(key, 6000 + t) % (n - a + 1));
        dataset_read(ds, a, len, part);
        ok = ok && same_u32(part, want + a, len);
    }
    tap_check(ok, "text: 200 random ranges read across shards equal the input");
    dataset_close(ds);

    /* doc_offsets: every shard's offsets, made global, are exactly the starts of documents */
    ShardName *names;
    int ns = shard_list(out, "train", &names);
    int64_t base = 0, ndocs = 0;
    ok = 1;
    for (int s = 0; s < ns; s++) {
        char *path = xasprintf("%s/%s", out, names[s].name);
        ShardMeta m = meta_of(path, "train");
        uint64_t docs[16];
        hid_t f = shard_open(path), d = H5_CHECK_AT(path, H5Dopen2(f, "doc_offsets", H5P_DEFAULT));
        ok = ok && m.ndocs >= 0 && m.ndocs <= 16;
        if (ok && m.ndocs)
            H5_CHECK_AT(path, H5Dread(d, H5T_NATIVE_UINT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, docs));
        H5_CHECK_AT(path, H5Fclose(f));
        for (int64_t k = 0; ok && k < m.ndocs; k++) {
            int64_t at = base + (int64_t)docs[k];
            ok = at == 0 || want[at - 1] == 256;
        }
        int64_t starts = 0; /* and none is missing */
        for (int64_t i = base; i < base + m.ntokens; i++)
            starts += i == 0 || want[i - 1] == 256;
        ok = ok && starts == m.ndocs;
        ndocs += m.ndocs;
        base += m.ntokens;
        free(path);
    }
    tap_check(ok && ndocs == nfiles, "text: doc_offsets of all shards mark the %lld document starts", (long long)ndocs);
    shard_names_free(names, ns);
    free(names);
    free(part);
    free(got);
    free(want);
    free(hidden);
    free(out);
    for (int i = 0; i < 3; i++)
        free(dirs[i]);
}

/* Raw tokens: random ids < vocab in three files; stored as uint16 up to vocab 65536, else uint32. */
static void test_raw_round_trip(BuildKind kind, int vocab, int want_width)
{
    int width = kind == BUILD_UINT16 ? 2 : 4;
    char *inputs[3];
    uint32_t *want = xmalloc(3 * 5000 * sizeof *want);
    int64_t n = 0;
    for (int f = 0; f < 3; f++) {
        int len = 1000 + (int)(rng_u64(key, 7000 + f + vocab) % 4000);
        unsigned char *bytes = xmalloc((size_t)len * width);
        for (int i = 0; i < len; i++) {
            uint32_t id = (uint32_t)(rng_u64(key, 10000 * f + i + vocab) % (uint64_t)vocab);
            if (i == 0)
                id = vocab - 1; /* the largest id is allowed */
            for (int b = 0; b < width; b++)
                bytes[(size_t)i * width + b] = (unsigned char)(id >> (8 * b));
            want[n++] = id;
        }
        inputs[f] = xasprintf("%s/raw-%d-%d.bin", tmp, vocab, f);
        write_file(inputs[f], bytes, (size_t)len * width);
        free(bytes);
    }
    char *out = xasprintf("%s/raw-out-%d", tmp, vocab);
    BuildOptions o = build_options(out, inputs, 3);
    o.kind = kind;
    o.vocab = vocab;
    o.shard_tokens = 3001;
    BuildSplit st[2];
    data_build(&o, st);
    int64_t got_n;
    int32_t *got = read_split(out, "train", &got_n);
    char *first = xasprintf("%s/train-00000.h5", out);
    ShardMeta m = meta_of(first, "train");
    tap_check(got_n == n && same_u32(got, want, n), "raw uint%d, vocab %d: the stream is the files' ids (%lld tokens)",
              8 * width, vocab, (long long)n);
    tap_check(m.width == want_width && m.vocab == vocab && m.eod == -1 && strcmp(m.tokenizer, "raw") == 0 &&
                  m.ndocs == -1,
              "raw vocab %d: stored as uint%d, eod -1, tokenizer 'raw', no doc_offsets", vocab, 8 * m.width);
    free(first);
    free(got);
    free(want);
    free(out);
    for (int f = 0; f < 3; f++)
        free(inputs[f]);
}

/* Split a stream at its EOD ids into documents: starts[k] .. starts[k + 1]. */
static int split_docs(const int32_t *t, int64_t n, int64_t *starts)
{
    int k = 0;
    starts[k++] = 0;
    for (int64_t i = 0; i < n; i++)
        if (t[i] == 256)
            starts[k++] = i + 1;
    return k - 1;
}

static int doc_equal(const int32_t *a, int64_t an, const int32_t *b, int64_t bn)
{
    return an == bn && memcmp(a, b, an * sizeof *a) == 0;
}

/* Validation split: whole documents, train + val = all (train keeping input order), about the
   asked fraction, the same for the same seed and different for another. */
static void test_val_split(void)
{
    enum { NDOCS = 40 };
    char *dir = in_tmp("val-in"), *inputs[1] = {dir};
    mkdir(dir, 0777);
    int64_t total = 0, longest = 0;
    for (int d = 0; d < NDOCS; d++) {
        int len = 20 + (int)(rng_u64(key, 20000 + d) % 400);
        char *text = xmalloc(len);
        for (int i = 0; i < len; i++)
            text[i] = (char)('a' + rng_u64(key, 30000 + 1000 * d + i) % 26);
        char *path = xasprintf("%s/doc%02d.txt", dir, d);
        write_file(path, text, len);
        total += len + 1;
        longest = len + 1 > longest ? len + 1 : longest;
        free(path);
        free(text);
    }
    uint64_t fp[3];
    int64_t val_n[3];
    for (int run = 0; run < 3; run++) {
        char *out = xasprintf("%s/val-out-%d", tmp, run);
        BuildOptions o = build_options(out, inputs, 1);
        o.val_fraction = 0.2;
        o.seed = run == 2 ? 99 : 7;
        o.shard_tokens = 500;
        BuildSplit st[2];
        data_build(&o, st);
        int64_t all_n, tn, vn;
        char *all_out = xasprintf("%s/val-all", tmp);
        if (run == 0) { /* the reference: everything in train */
            BuildOptions a = build_options(all_out, inputs, 1);
            data_build(&a, st);
        }
        int32_t *all = read_split(all_out, "train", &all_n), *tr = read_split(out, "train", &tn),
                *va = read_split(out, "val", &vn);
        int64_t as[NDOCS + 1], ts[NDOCS + 1], vs[NDOCS + 1];
        int na = split_docs(all, all_n, as), nt = split_docs(tr, tn, ts), nv = split_docs(va, vn, vs);
        /* walk the reference documents: each is the next train or the next val document */
        int it = 0, iv = 0, whole = nt + nv == na && ts[nt] == tn && vs[nv] == vn;
        for (int k = 0; whole && k < na; k++) {
            const int32_t *doc = all + as[k];
            int64_t len = as[k + 1] - as[k];
            if (it < nt && doc_equal(doc, len, tr + ts[it], ts[it + 1] - ts[it]))
                it++;
            else if (iv < nv && doc_equal(doc, len, va + vs[iv], vs[iv + 1] - vs[iv]))
                iv++;
            else
                whole = 0;
        }
        if (run == 0) {
            tap_check(whole && it == nt && iv == nv,
                      "val split: %d train + %d val whole documents are the %d inputs, "
                      "in input order",
                      nt, nv, na);
            /* each document joins val only while it brings val closer to the target */
            tap_check(nv > 0 && llabs(vn - total / 5) <= longest / 2 + 1,
                      "val split: %lld of %lld tokens, within half a document of 20%%", (long long)vn,
                      (long long)total);
        }
        Dataset *ds = dataset_open(out, "val");
        fp[run] = dataset_fingerprint(ds);
        val_n[run] = vn;
        dataset_close(ds);
        if (run == 2)
            rm_tree(out);
        free(all);
        free(tr);
        free(va);
        free(all_out);
        free(out);
    }
    tap_check(fp[0] != fp[2] || val_n[0] != val_n[2], "val split: another seed chooses other documents");
    /* run 1 repeated run 0 with the same seed into a fresh folder */
    tap_check(fp[0] == fp[1], "val split: the same seed gives the same shards (fingerprint %016llx)",
              (unsigned long long)fp[0]);
    free(dir);
}

/* One input file: the last fraction of its tokens is the val split. */
static void test_single_file_split(void)
{
    enum { N = 10001 };
    unsigned char bytes[2 * N];
    for (int i = 0; i < 2 * N; i++)
        bytes[i] = (unsigned char)rng_u64(key, 50000 + i);
    char *path = in_tmp("single.u16"), *inputs[1] = {path}, *out = in_tmp("single-out");
    write_file(path, bytes, sizeof bytes);
    BuildOptions o = build_options(out, inputs, 1);
    o.kind = BUILD_UINT16;
    o.vocab = 65536;
    o.val_fraction = 0.1;
    BuildSplit st[2];
    data_build(&o, st);
    int64_t tn, vn;
    int32_t *tr = read_split(out, "train", &tn), *va = read_split(out, "val", &vn);
    int ok = tn == N - 1000 && vn == 1000;
    for (int i = 0; ok && i < N; i++)
        ok = (i < tn ? tr[i] : va[i - tn]) == (bytes[2 * i] | bytes[2 * i + 1] << 8);
    tap_check(ok, "single raw file, val 0.1: train is its first %lld tokens, val the last %lld", (long long)tn,
              (long long)vn);
    free(tr);
    free(va);
    free(path);
    free(out);
}

/* ---- bad input ---- */

static void test_bad_builds(void)
{
    uint16_t ids[4] = {5, 6, 70, 7}; /* 70 >= vocab 64 */
    char *path = in_tmp("bad.u16"), *inputs[1] = {path}, *out = in_tmp("bad-out");
    write_file(path, ids, sizeof ids);
    BuildOptions o = build_options(out, inputs, 1);
    o.kind = BUILD_UINT16;
    o.vocab = 64;
    expect_bad(child_run(child_build, &o), "bad.u16", "token 2 (byte offset 4) is 70, not below --vocab 64",
               "build: an id >= --vocab is refused, naming file and place");
    write_file(path, ids, 3);
    expect_bad(child_run(child_build, &o), "bad.u16", "not a whole number of 2-byte tokens",
               "build: a raw file of odd length is refused");
    char *missing = in_tmp("no-such-file"), *in2[1] = {missing};
    o.inputs = in2;
    expect_bad(child_run(child_build, &o), "no-such-file", "cannot read input", "build: a missing input is named");
    /* an output folder that is not empty is not overwritten */
    mkdir(out, 0777);
    char *keep = in_tmp("bad-out/keep.txt");
    write_file(keep, "x", 1);
    o.inputs = inputs;
    write_file(path, ids, 4);
    o.vocab = 100;
    expect_bad(child_run(child_build, &o), "bad-out", "not empty", "build: refuses a non-empty OUT_DIR");
    o.force = 1;
    Child c = child_run(child_build, &o);
    struct stat st;
    tap_check(c.status == 0 && stat(keep, &st) == 0, "build --force: writes shards, leaves other files alone");
    free(keep);
    free(missing);
    free(path);
    free(out);
}

/* A raw dataset of three shards of shard_tokens random uint16 ids in [1, vocab), fresh in dir;
   the ids are in dir.u16. Token shard_tokens / 2 of each shard is 0. */
static void make_shards_of(const char *dir, int vocab, int shard_tokens)
{
    int n = 3 * shard_tokens;
    uint16_t *ids = xmalloc(n * sizeof *ids);
    for (int i = 0; i < n; i++)
        ids[i] = i % shard_tokens == shard_tokens / 2 ? 0 : (uint16_t)(1 + rng_u64(key, 90000 + i) % (vocab - 1));
    char *path = xasprintf("%s.u16", dir), *inputs[1] = {path};
    write_file(path, ids, n * sizeof *ids);
    free(ids);
    BuildOptions o = build_options(dir, inputs, 1);
    o.kind = BUILD_UINT16;
    o.vocab = vocab;
    o.shard_tokens = shard_tokens;
    o.force = 1;
    BuildSplit st[2];
    data_build(&o, st);
    free(path);
}

/* Three shards of 4000 ids, one chunk each. */
static void make_shards(const char *dir) { make_shards_of(dir, 40001, 4000); }

static void patch_attr_i64(const char *path, const char *name, int64_t value)
{
    hid_t f = H5_CHECK_AT(path, H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT));
    hid_t a = H5_CHECK_AT(path, H5Aopen(f, name, H5P_DEFAULT));
    H5_CHECK_AT(path, H5Awrite(a, H5T_NATIVE_INT64, &value));
    H5_CHECK_AT(path, H5Aclose(a));
    H5_CHECK_AT(path, H5Fclose(f));
}

static void flip_bytes(const char *path, long at, int n)
{
    size_t size;
    unsigned char *data = read_file(path, &size);
    for (int i = 0; i < n && at + i < (long)size; i++)
        data[at + i] ^= 0x5a;
    write_file(path, data, size);
    free(data);
}

static long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

static void cut_file(const char *path, long size)
{
    if (truncate(path, size) != 0)
        fail("cannot truncate %s: %s", path, strerror(errno));
}

/* data_try's body: opens the shard (weak close degree: its dataset would keep it open) and one of
   its datasets, then finds it bad */
static void open_then_bad(void *path)
{
    hid_t f = H5_CHECK_AT(path, H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT));
    H5_CHECK_AT(path, H5Dopen2(f, "tokens", H5P_DEFAULT));
    data_bad(path, "found bad on purpose");
}

static void test_broken_shards(void)
{
    char *dir = in_tmp("broken"), *shard = in_tmp("broken/train-00001.h5");
    char *save = in_tmp("saved.h5");
    make_shards(dir);
    copy_file(shard, save);
    Child c = child_run(child_read_train, dir);
    tap_check(c.status == 0, "broken: the intact dataset reads (exit %d)", c.status);

    cut_file(shard, file_size(shard) / 2);
    expect_bad(child_run(child_read_train, dir), "train-00001.h5", "truncated",
               "truncated shard: dataset_open names the file and says it is truncated");
    expect_bad(child_run(child_verify, dir), "train-00001.h5", "truncated", "truncated shard: verify names it");

    copy_file(save, shard);
    flip_bytes(shard, file_size(shard) / 2, 4); /* in the middle of the token data */
    expect_bad(child_run(child_read_train, dir), "train-00001.h5", "HDF5 error in H5Dread",
               "flipped bytes in the tokens: the read fails on the chunk checksum, naming the file");
    FILE *out = tmpfile(), *err = tmpfile();
    int nbad = data_verify(dir, out, err);
    char report[2048] = "";
    rewind(err);
    report[fread(report, 1, sizeof report - 1, err)] = '\0';
    tap_check(nbad == 1 && strstr(report, "train-00001.h5") && !strstr(report, "train-00000.h5") &&
                  !strstr(report, "train-00002.h5"),
              "flipped bytes: verify reports that file alone");
    fclose(out);
    fclose(err);
    char msg[1024];
    int done = data_try(open_then_bad, save, msg, sizeof msg);
    ssize_t left = H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL);
    tap_check(!done && strstr(msg, "found bad on purpose") && left == 0,
              "data_try: a failed body's file and dataset are closed (%zd left open)", left);

    copy_file(save, shard);
    hid_t f = H5_CHECK_AT(shard, H5Fopen(shard, H5F_ACC_RDWR, H5P_DEFAULT));
    H5_CHECK_AT(shard, H5Adelete(f, "checksum"));
    H5_CHECK_AT(shard, H5Fclose(f));
    expect_bad(child_run(child_read_train, dir), "train-00001.h5", "missing attribute 'checksum'",
               "missing attribute: dataset_open names file and attribute");

    copy_file(save, shard);
    patch_attr_i64(shard, "vocab_size", 100); /* the shard's ids go up to 40000 */
    char *other = in_tmp("broken/train-00000.h5");
    patch_attr_i64(other, "vocab_size", 100);
    char *last = in_tmp("broken/train-00002.h5");
    patch_attr_i64(last, "vocab_size", 100);
    expect_bad(child_run(child_read_train, dir), "train-00000.h5", "not below vocab_size 100",
               "id >= vocab_size: dataset_read names the file and the token");
    expect_bad(child_run(child_verify, dir), "train-00001.h5", "not below vocab_size 100",
               "id >= vocab_size: verify names every such file");

    make_shards(dir);
    patch_attr_i64(shard, "vocab_size", 50000);
    expect_bad(child_run(child_read_train, dir), "train-00001.h5", "differ from",
               "shards that disagree on vocab_size: dataset_open names the odd one");
    make_shards(dir);
    patch_attr_i64(shard, "format_version", 3);
    expect_bad(child_run(child_read_train, dir), "train-00001.h5", "format_version 3",
               "a newer format_version is refused");
    make_shards(dir);
    patch_attr_i64(shard, "n_tokens", 3999);
    expect_bad(child_run(child_read_train, dir), "train-00001.h5", "n_tokens is 3999 but 'tokens' holds 4000",
               "n_tokens that disagrees with the array is refused");
    make_shards(dir);
    char *renamed = in_tmp("broken/val-00000.h5");
    rename(shard, renamed);
    expect_bad(child_run(child_verify, dir), "val-00000.h5", "attribute 'split' is 'train'",
               "a shard renamed to another split is refused");
    write_file(shard, "not an HDF5 file at all", 23);
    expect_bad(child_run(child_read_train, dir), "train-00001.h5", "HDF5 error in H5Fopen",
               "a file that is not HDF5 is named");
    rm_tree(dir);
    mkdir(dir, 0777);
    expect_bad(child_run(child_read_train, dir), "broken", "no shard of split 'train'",
               "a folder without shards is refused");
    char *nowhere = in_tmp("nowhere");
    expect_bad(child_run(child_read_train, nowhere), "nowhere", "cannot open the dataset folder",
               "a missing folder is refused");
    free(nowhere);
    free(renamed);
    free(last);
    free(other);
    free(save);
    free(shard);
    free(dir);
}

/* doc_offsets that go backwards are reported by verify. */
static void test_bad_doc_offsets(void)
{
    char *dir = in_tmp("docs-in"), *inputs[1] = {dir}, *out = in_tmp("docs-out");
    mkdir(dir, 0777);
    for (int d = 0; d < 3; d++) {
        char *path = xasprintf("%s/%d.txt", dir, d);
        write_file(path, "some text", 9);
        free(path);
    }
    BuildOptions o = build_options(out, inputs, 1);
    BuildSplit st[2];
    data_build(&o, st);
    char *shard = in_tmp("docs-out/train-00000.h5");
    Child c = child_run(child_verify, out);
    tap_check(c.status == 0, "doc_offsets: the intact shard verifies");
    uint64_t backwards[3] = {0, 20, 10};
    hid_t f = H5_CHECK_AT(shard, H5Fopen(shard, H5F_ACC_RDWR, H5P_DEFAULT));
    hid_t d = H5_CHECK_AT(shard, H5Dopen2(f, "doc_offsets", H5P_DEFAULT));
    H5_CHECK_AT(shard, H5Dwrite(d, H5T_NATIVE_UINT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, backwards));
    H5_CHECK_AT(shard, H5Dclose(d));
    H5_CHECK_AT(shard, H5Fclose(f));
    expect_bad(child_run(child_verify, out), "train-00000.h5", "doc_offsets[2] = 10 is not increasing",
               "doc_offsets that go backwards: verify names file and offset");
    free(shard);
    free(out);
    free(dir);
}

/* Reading the split and verify both stop with exit 2 naming file and saying what. */
static void expect_bad_both(const char *dir, const char *file, const char *what, const char *label)
{
    char *read_label = xasprintf("%s: reading names it", label);
    char *verify_label = xasprintf("%s: verify names it", label);
    expect_bad(child_run(child_read_train, dir), file, what, read_label);
    expect_bad(child_run(child_verify, dir), file, what, verify_label);
    free(verify_label);
    free(read_label);
}

/* Shard token `at` set to id through HDF5, which rewrites the chunk's Fletcher-32 checksum. */
static void write_token(const char *path, int64_t at, uint16_t id)
{
    hid_t f = H5_CHECK_AT(path, H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT));
    hid_t d = H5_CHECK_AT(path, H5Dopen2(f, "tokens", H5P_DEFAULT)), space = H5_CHECK_AT(path, H5Dget_space(d));
    hsize_t off[1] = {(hsize_t)at}, one[1] = {1};
    hid_t mem = H5_CHECK_AT(path, H5Screate_simple(1, one, NULL));
    H5_CHECK_AT(path, H5Sselect_hyperslab(space, H5S_SELECT_SET, off, NULL, one, NULL));
    H5_CHECK_AT(path, H5Dwrite(d, H5T_NATIVE_UINT16, mem, space, H5P_DEFAULT, &id));
    H5_CHECK_AT(path, H5Sclose(mem));
    H5_CHECK_AT(path, H5Sclose(space));
    H5_CHECK_AT(path, H5Dclose(d));
    H5_CHECK_AT(path, H5Fclose(f));
}

/* Where in the file shard token `at` (uint16, in chunks of `chunk` tokens) is stored: the
   Fletcher-32 filter keeps a chunk's bytes as they are and appends its checksum. */
static long token_offset(const char *path, int64_t at, int64_t chunk)
{
    hid_t f = H5_CHECK_AT(path, H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT));
    hid_t d = H5_CHECK_AT(path, H5Dopen2(f, "tokens", H5P_DEFAULT));
    hsize_t coord[1] = {(hsize_t)(at / chunk * chunk)}, size;
    haddr_t addr;
    unsigned mask;
    H5_CHECK_AT(path, H5Dget_chunk_info_by_coord(d, coord, &mask, &addr, &size));
    H5_CHECK_AT(path, H5Dclose(d));
    H5_CHECK_AT(path, H5Fclose(f));
    return (long)addr + 2 * (long)(at % chunk);
}

/* Shard `path` grown to n tokens, n_tokens to match: the new ones written as zeros (`write`), or
   left unwritten (read as HDF5's fill value 0). */
static void extend_shard(const char *path, int64_t n, int write)
{
    hid_t f = H5_CHECK_AT(path, H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT));
    hid_t d = H5_CHECK_AT(path, H5Dopen2(f, "tokens", H5P_DEFAULT));
    hid_t space = H5_CHECK_AT(path, H5Dget_space(d));
    hsize_t old[1], dims[1] = {(hsize_t)n};
    H5_CHECK_AT(path, H5Sget_simple_extent_dims(space, old, NULL));
    H5_CHECK_AT(path, H5Sclose(space));
    H5_CHECK_AT(path, H5Dset_extent(d, dims));
    if (write) {
        hsize_t count[1] = {dims[0] - old[0]};
        uint16_t *zeros = calloc(count[0], sizeof *zeros);
        hid_t mem = H5_CHECK_AT(path, H5Screate_simple(1, count, NULL));
        space = H5_CHECK_AT(path, H5Dget_space(d));
        H5_CHECK_AT(path, H5Sselect_hyperslab(space, H5S_SELECT_SET, old, NULL, count, NULL));
        H5_CHECK_AT(path, H5Dwrite(d, H5T_NATIVE_UINT16, mem, space, H5P_DEFAULT, zeros));
        H5_CHECK_AT(path, H5Sclose(space));
        H5_CHECK_AT(path, H5Sclose(mem));
        free(zeros);
    }
    H5_CHECK_AT(path, H5Dclose(d));
    H5_CHECK_AT(path, H5Fclose(f));
    patch_attr_i64(path, "n_tokens", n);
}

static void replace_by_fifo(const char *path)
{
    if (unlink(path) != 0 || mkfifo(path, 0666) != 0)
        fail("cannot replace %s by a FIFO: %s", path, strerror(errno));
}

/* Shards of three chunks: 200 random ranges read through a fresh dataset, each chunk checked when
   first read, equal the input. */
static void test_chunked_reads(const char *dir)
{
    enum { S = 40000, N = 3 * S };
    char *input = xasprintf("%s.u16", dir);
    size_t bytes;
    uint16_t *want = (uint16_t *)read_file(input, &bytes);
    Dataset *ds = dataset_open(dir, "train");
    int32_t *part = xmalloc(N * sizeof *part);
    int ok = dataset_ntokens(ds) == N;
    for (int t = 0; ok && t < 200; t++) {
        int64_t a = (int64_t)(rng_u64(key, 8000 + t) % N), len = (int64_t)(rng_u64(key, 9000 + t) % 20000);
        len = a + len > N ? N - a : len;
        dataset_read(ds, a, len, part);
        for (int64_t i = 0; ok && i < len; i++)
            ok = part[i] == want[a + i];
    }
    tap_check(ok, "3 shards of %d tokens (3 chunks each): 200 random ranges read and checked equal the input", S);
    dataset_close(ds);
    free(part);
    free(want);
    free(input);
}

/* A dataset changed after it was built (issue 11): each change is found both by reading the
   split, as training does, and by verify, with exit 2 naming the file and what is wrong. */
static void test_changed_dataset(void)
{
    enum { S = 40000, AT = S / 2 }; /* token AT of each shard, in its chunk 1, is 0 */
    char *dir = in_tmp("changed"), *mid = in_tmp("changed/train-00001.h5"), *last = in_tmp("changed/train-00002.h5");
    char *added = in_tmp("changed/train-00003.h5"), *manifest = in_tmp("changed/manifest.h5");
    make_shards_of(dir, 65536, S);
    Child c = child_run(child_verify, dir);
    tap_check(c.status == 0, "changed: the dataset as built verifies (exit %d)", c.status);
    test_chunked_reads(dir);

    write_token(mid, AT, 7);
    expect_bad_both(dir, "train-00001.h5", "chunk 1 (tokens from 16384) has checksum",
                    "a token rewritten through HDF5 (its chunk's Fletcher-32 with it)");

    make_shards_of(dir, 65536, S);
    long at = token_offset(mid, AT, MANIFEST_CHUNK);
    size_t size;
    unsigned char *file = read_file(mid, &size);
    int was_zero = file[at] == 0 && file[at + 1] == 0;
    file[at] = file[at + 1] = 0xff; /* 0 -> 65535: the same Fletcher-32 sum (it adds 16-bit words mod 65535) */
    write_file(mid, file, size);
    free(file);
    tap_check(was_zero, "token %d of train-00001.h5 found in the file's bytes", AT);
    expect_bad_both(dir, "train-00001.h5", "chunk 1 (tokens from 16384) has checksum",
                    "a token changed 0 -> 65535 in the file, which Fletcher-32 cannot see");

    make_shards_of(dir, 65536, S);
    extend_shard(last, S + 20000, 1);
    expect_bad_both(dir, "train-00002.h5", "holds 60000 tokens",
                    "a shard extended by 20000 zero tokens, n_tokens patched to match");
    make_shards_of(dir, 65536, S);
    extend_shard(last, S + 20000, 0);
    expect_bad_both(dir, "train-00002.h5", "'tokens' declares 60000 entries but the file does not hold them all",
                    "a shard extended by 20000 unwritten tokens (HDF5's fill), n_tokens patched to match");
    extend_shard(last, SHARD_TOKENS_MAX + 1, 0); /* claimed, never stored: reading it would be all fill */
    expect_bad_both(dir, "train-00002.h5", "'tokens' declares 1099511627777 entries",
                    "a shard extended to more than 2^40 tokens is refused before anything is allocated for it");

    make_shards_of(dir, 65536, S);
    unlink(mid);
    expect_bad_both(dir, "train-00001.h5", "missing: ", "the middle shard deleted");

    make_shards_of(dir, 65536, S);
    copy_file(last, added);
    expect_bad_both(dir, "train-00003.h5", "not listed in", "a shard added without megadata manifest");
    c = child_run(child_manifest, dir);
    tap_check(c.status == 0 && child_run(child_read_train, dir).status == 0,
              "megadata manifest adds it; the dataset reads again");
    unlink(added);
    expect_bad(child_run(child_read_train, dir), "train-00003.h5", "missing: ",
               "a shard the updated manifest lists, deleted: reading names it");

    make_shards_of(dir, 65536, S);
    Dataset *ds = dataset_open(dir, "train");
    uint64_t fingerprint = dataset_fingerprint(ds);
    dataset_close(ds);
    unlink(manifest);
    expect_bad_both(dir, "changed", "no manifest.h5", "a dataset without a manifest (format version 1)");
    c = child_run(child_manifest, dir);
    tap_check(c.status == 0 && child_run(child_read_train, dir).status == 0 && child_run(child_verify, dir).status == 0,
              "megadata manifest on it: it reads and verifies");
    ds = dataset_open(dir, "train");
    tap_check(dataset_fingerprint(ds) == fingerprint, "... with the fingerprint it had (checkpoints record it)");
    dataset_close(ds);

    make_shards_of(dir, 65536, S);
    replace_by_fifo(mid);
    expect_bad_both(dir, "train-00001.h5", "is a FIFO", "a FIFO named like a shard (no hang)");
    expect_bad(child_run(child_manifest, dir), "train-00001.h5", "is a FIFO",
               "a FIFO named like a shard: megadata manifest names it");
    make_shards_of(dir, 65536, S);
    replace_by_fifo(manifest);
    expect_bad_both(dir, "manifest.h5", "is a FIFO", "a FIFO named manifest.h5 (no hang)");
    rm_tree(dir);
    free(manifest);
    free(added);
    free(last);
    free(mid);
    free(dir);
}

/* Flip one byte at many places of a shard, and cut it at many lengths: verify either finds the
   damage (exit 2, naming the file) or it was harmless (exit 0), and never crashes. */
static void test_corruption_sweep(void)
{
    char *dir = in_tmp("sweep"), *shard = in_tmp("sweep/train-00000.h5"), *save = in_tmp("sweep.h5");
    make_shards(dir);
    copy_file(shard, save);
    long size = file_size(shard);
    int crashes = 0, found = 0, harmless = 0, mute = 0, cuts_found = 0, ncut = 8, nflip = 48;
    for (int k = 0; k < nflip; k++) {
        copy_file(save, shard);
        flip_bytes(shard, (long)(rng_u64(key, 70000 + k) % (uint64_t)size), 1);
        Child c = child_run(child_verify, dir);
        crashes += c.status != 0 && c.status != 2;
        found += c.status == 2 && strstr(c.err, "train-00000.h5") != NULL;
        harmless += c.status == 0;
        mute += c.status == 2 && (!strstr(c.err, "train-00000.h5") || strstr(c.err, "HDF5-DIAG"));
        if (c.status != 0 && c.status != 2)
            tap_diag("flip %d: exit %d: %s", k, c.status, c.err);
    }
    for (int k = 0; k < ncut; k++) {
        copy_file(save, shard);
        cut_file(shard, size * k / ncut);
        Child c = child_run(child_verify, dir);
        crashes += c.status != 0 && c.status != 2;
        cuts_found += c.status == 2 && strstr(c.err, "train-00000.h5") != NULL;
    }
    tap_check(crashes == 0 && mute == 0 && found > 0, "%d one-byte flips: %d found and named, %d harmless, no crash",
              nflip, found, harmless);
    tap_check(crashes == 0 && cuts_found == ncut, "%d truncations: all found and named", ncut);
    rm_tree(dir);
    free(save);
    free(shard);
    free(dir);
}

int main(void)
{
    h5_init();
    mkdir("tests", 0777);
    mkdir("tests/tmp", 0777);
    if (!mkdtemp(tmp))
        fail("cannot create %s: %s", tmp, strerror(errno));
    key = rng_key(20240611, "test_data");
    test_text_round_trip();
    test_raw_round_trip(BUILD_UINT16, 1000, 2);
    test_raw_round_trip(BUILD_UINT16, 65536, 2);
    test_raw_round_trip(BUILD_UINT32, 100000, 4);
    test_val_split();
    test_single_file_split();
    test_bad_builds();
    test_broken_shards();
    test_bad_doc_offsets();
    test_changed_dataset();
    test_corruption_sweep();
    rm_tree(tmp);
    return tap_done();
}
