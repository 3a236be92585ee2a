/* megackpt.c: the checkpoint tool: list a run's checkpoints, verify one, reshard it for another
   parallel layout, export its weights to safetensors and import them back (doc/checkpoint.md). */
#include "autoconfig.h"

#include "data/dataset.h"
#include "src/ckpt.h"
#include "src/config.h"
#include "base/util.h"
#include "base/cliopt.h"
#include "tools/convert.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char usage[] =
    "usage: megackpt ls DIR\n"
    "       megackpt verify CKPT\n"
    "       megackpt reshard CKPT OUT [--tp N] [--pp M]\n"
    "       megackpt export CKPT OUT.safetensors\n"
    "       megackpt import IN.safetensors OUT --config RUN.yaml [--set section.key=value ...]\n"
    "       megackpt COMMAND --help | megackpt --help | --version\n"
    "\n"
    "Work with megatrain's checkpoints: DIR is a run's checkpoint.dir, CKPT one checkpoint folder in\n"
    "it (DIR/step-NNNNNNNN). Format and use: doc/checkpoint.md.\n"
    "\n"
    "  ls       the checkpoints of a run folder, newest first, with leftovers of unfinished writes\n"
    "  verify   read every file and tensor of a checkpoint and check its checksum\n"
    "  reshard  write a copy laid out for another tensor/pipeline-parallel layout\n"
    "  export   the model weights as a safetensors file (reference repository names)\n"
    "  import   a checkpoint at step 0 from such a file, for the model of a run file\n"
    "\n"
    "Exit status: 0 done, 2 bad input (flags, files, a damaged checkpoint), 1 other failure.\n";

static const char usage_ls[] =
    "usage: megackpt ls DIR\n"
    "\n"
    "List the checkpoints in DIR (a run's checkpoint.dir, or one checkpoint folder), newest first:\n"
    "step, the layout that wrote it (tp pp dp cp), size on disk, status and path. Status is\n"
    "'complete' (meta.h5 reads, its checksum matches and every data file is there; `megackpt\n"
    "verify` checks the data), 'damaged' (with the reason on the next line), or 'incomplete' for a\n"
    ".step-NNNNNNNN.tmp or .step-NNNNNNNN.del.tmp folder that a job left when it was killed while\n"
    "writing or deleting a checkpoint (megatrain never reads those and deletes them at its next\n"
    "checkpoint).\n";

static const char usage_verify[] =
    "usage: megackpt verify CKPT\n"
    "\n"
    "Read meta.h5 and every slice of every file of checkpoint folder CKPT and check meta.h5's\n"
    "checksum, values and index, and each slice's fnv1a64 checksum: what megatrain checks when it\n"
    "resumes. Prints one line per problem naming the file and the tensor; exit status 2 if there is\n"
    "any, 0 if the checkpoint is good.\n";

static const char usage_reshard[] =
    "usage: megackpt reshard CKPT OUT [--tp N] [--pp M]\n"
    "\n"
    "Write checkpoint folder OUT (a new path) with the weights and AdamW moments of CKPT laid out\n"
    "for N tensor-parallel ranks and M pipeline stages (default 1 each): one rank file per\n"
    "(stage, tp rank). megatrain reads a checkpoint under any layout, so this is only needed for\n"
    "other tools, or to turn an older checkpoint into the current format. Step, data cursor and\n"
    "config are kept.\n"
    "  --tp N   tensor-parallel ranks (must divide n_heads, d_model, groups, ffn_dim and vocab_size)\n"
    "  --pp M   pipeline stages (at most n_layers)\n";

static const char usage_export[] =
    "usage: megackpt export CKPT OUT.safetensors\n"
    "\n"
    "Write the fp32 model weights of checkpoint CKPT as a safetensors file, one tensor per parameter\n"
    "under the reference repository's names and shapes (spec section 16: embed.weight,\n"
    "layers.I.mega.cema.gamma with a trailing (real, imaginary) axis, ...). With a tied embedding\n"
    "(model.share_emb) the head is written under both embed.weight and output.output.weight. The\n"
    "metadata holds format=pt, megatrain_step and megatrain_config (the run's resolved YAML).\n"
    "OUT is a new path or a regular file, which is replaced (never a device, a FIFO, a folder or a\n"
    "symlink: exit 2 before any work).\n";

static const char usage_import[] =
    "usage: megackpt import IN.safetensors OUT --config RUN.yaml [--set section.key=value ...]\n"
    "\n"
    "Write checkpoint folder OUT (a new path) at step 0 with zero AdamW moments, laid out for\n"
    "RUN.yaml's parallel.tp and parallel.pp, from the F32 tensors of IN (names and shapes as\n"
    "`megackpt export` writes them). Every parameter of RUN.yaml's model must be in IN with its\n"
    "shape, else exit 2 naming each that is not; other tensors are ignored with a warning. Start\n"
    "training from it with checkpoint.resume=OUT.\n"
    "  --config RUN.yaml   the run file whose model the tensors are for (required)\n"
    "  --set KEY=VALUE     override one of its keys (repeatable)\n";

/* Positional arguments and options of a subcommand: want names each positional one. */
typedef struct {
    const char *pos[4];
    int npos;
    const char *tp, *pp, *config;
    const char *sets[64];
    int nsets;
} Args;

static void parse(Args *a, int argc, char **argv, const char *cmd, const char *const *want, int nwant)
{
    memset(a, 0, sizeof *a);
    const char *v;
    for (int i = 2; i < argc; i++) {
        const char *s = argv[i];
        if (!strcmp(cmd, "reshard") && (v = cliopt_value(argc, argv, &i, "--tp", NULL)))
            a->tp = v;
        else if (!strcmp(cmd, "reshard") && (v = cliopt_value(argc, argv, &i, "--pp", NULL)))
            a->pp = v;
        else if (!strcmp(cmd, "import") && (v = cliopt_value(argc, argv, &i, "--config", NULL)))
            a->config = v;
        else if (!strcmp(cmd, "import") && (v = cliopt_value(argc, argv, &i, "--set", NULL))) {
            if (a->nsets == (int)(sizeof a->sets / sizeof a->sets[0]))
                fail_input("too many --set options");
            a->sets[a->nsets++] = v;
        } else if (s[0] == '-' && s[1])
            fail_input("%s: unknown option '%s' (see megackpt %s --help)", cmd, s, cmd);
        else if (a->npos == nwant)
            fail_input("%s: unexpected argument '%s' (see megackpt %s --help)", cmd, s, cmd);
        else
            a->pos[a->npos++] = s;
    }
    if (a->npos < nwant)
        fail_input("%s: %s missing (see megackpt %s --help)", cmd, want[a->npos], cmd);
}

/* ---- ls ---- */

typedef struct {
    char *path;
    int64_t step;
    int tmp; /* a leftover (.step-N.tmp, .step-N.del.tmp) */
} Entry;

static int entry_cmp(const void *a, const void *b)
{
    const Entry *x = a, *y = b;
    return x->step != y->step ? (x->step < y->step ? 1 : -1) : x->tmp - y->tmp;
}

/* Bytes of the files in folder path (a checkpoint holds only files); *shards: how many are its
   data files. */
static long long disk_size(const char *path, int *shards)
{
    long long total = 0;
    *shards = 0;
    DIR *d = opendir(path);
    for (struct dirent *e; d && (e = readdir(d));) {
        struct stat sb;
        char *file = xasprintf("%s/%s", path, e->d_name);
        if (stat(file, &sb) == 0 && S_ISREG(sb.st_mode)) {
            total += (long long)sb.st_size;
            *shards += ckpt_data_file(e->d_name);
        }
        free(file);
    }
    if (d)
        closedir(d);
    return total;
}

static void human(char *buf, size_t len, long long bytes)
{
    const char *units[] = {"B", "KB", "MB", "GB", "TB"};
    double v = (double)bytes;
    int u = 0;
    while (v >= 1024 && u < 4) {
        v /= 1024;
        u++;
    }
    snprintf(buf, len, u ? "%.1f %s" : "%.0f %s", v, units[u]);
}

static void ls_print(const Entry *e)
{
    char step[32] = "?", size[32], layout[64] = "-", why[1100] = "";
    const char *status = "complete";
    int shards;
    human(size, sizeof size, disk_size(e->path, &shards));
    if (e->step >= 0)
        snprintf(step, sizeof step, "%lld", (long long)e->step);
    CkptInfo ck;
    char err[1024];
    if (e->tmp) {
        status = "incomplete";
        snprintf(why, sizeof why, "left by a write or a deletion that did not finish (never read; megatrain deletes "
                                  "it when it next saves)");
    } else if (ckpt_info(e->path, &ck, err, sizeof err)) {
        status = "damaged";
        snprintf(why, sizeof why, "%s", err);
    } else {
        snprintf(layout, sizeof layout, "tp%d pp%d dp%d cp%d", ck.tp, ck.pp, ck.dp, ck.cp);
        if (shards != ckpt_data_files(&ck)) {
            status = "damaged";
            snprintf(why, sizeof why, "%d data files, the checkpoint has %d", shards, ckpt_data_files(&ck));
        }
        ckpt_info_free(&ck);
    }
    printf("%9s  %-19s %9s  %-10s  %s\n", step, layout, size, status, e->path);
    if (why[0])
        printf("%9s  %s\n", "", why);
}

static int cmd_ls(int argc, char **argv)
{
    Args a;
    const char *want[] = {"DIR (a run's checkpoint folder)"};
    parse(&a, argc, argv, "ls", want, 1);
    const char *dir = a.pos[0];
    DIR *d = opendir(dir);
    if (!d)
        fail_input("%s: cannot open the folder: %s", dir, strerror(errno));
    int n = 0, cap = 16;
    Entry *es = xmalloc((size_t)cap * sizeof *es);
    char *meta = xasprintf("%s/meta.h5", dir);
    if (access(meta, F_OK) == 0) { /* one checkpoint folder */
        CkptInfo ck;
        char err[1024];
        int64_t step = ckpt_info(dir, &ck, err, sizeof err) ? -1 : ck.step;
        if (step >= 0)
            ckpt_info_free(&ck);
        es[n++] = (Entry){xstrdup(dir), step, 0};
    } else {
        for (struct dirent *e; (e = readdir(d));) {
            int64_t step;
            CkptName kind = ckpt_name(e->d_name, &step);
            if (kind == CKPT_OTHER)
                continue;
            if (n == cap) {
                Entry *more = xmalloc((size_t)(cap *= 2) * sizeof *more);
                memcpy(more, es, (size_t)n * sizeof *es);
                free(es);
                es = more;
            }
            es[n++] = (Entry){xasprintf("%s/%s", dir, e->d_name), step, kind == CKPT_LEFTOVER};
        }
    }
    closedir(d);
    free(meta);
    qsort(es, (size_t)n, sizeof *es, entry_cmp);
    if (n == 0)
        printf("%s: no checkpoints\n", dir);
    else
        printf("%9s  %-19s %9s  %-10s  %s\n", "step", "layout", "size", "status", "path");
    for (int i = 0; i < n; i++) {
        ls_print(&es[i]);
        free(es[i].path);
    }
    free(es);
    return 0;
}

/* ---- verify, reshard, export ---- */

/* Checkpoint folder path's meta.h5, or bad input saying what path is. */
static void open_ckpt(const char *path, CkptInfo *ck)
{
    char err[1024];
    struct stat sb;
    if (stat(path, &sb) != 0)
        fail_input("%s: no such checkpoint folder: %s", path, strerror(errno));
    char *meta = xasprintf("%s/meta.h5", path);
    char **paths;
    int n = access(meta, F_OK) == 0 ? 0 : ckpt_list(path, &paths);
    if (n > 0)
        fail_input("%s is a run folder of %d checkpoint(s); name one of them (newest: %s)", path, n, paths[0]);
    if (access(meta, F_OK) != 0)
        free(paths);
    free(meta);
    if (ckpt_info(path, ck, err, sizeof err))
        fail_input("%s", err);
}

static int cmd_verify(int argc, char **argv)
{
    Args a;
    const char *want[] = {"CKPT (a checkpoint folder)"};
    parse(&a, argc, argv, "verify", want, 1);
    CkptInfo ck;
    open_ckpt(a.pos[0], &ck);
    int problems = ckpt_verify(a.pos[0]);
    if (problems)
        fail_input("%s: %d problem(s) found (listed above): the checkpoint is damaged", a.pos[0], problems);
    printf("%s: good (step %lld, written under tp %d pp %d dp %d cp %d; every checksum matches)\n", a.pos[0],
           (long long)ck.step, ck.tp, ck.pp, ck.dp, ck.cp);
    if (ck.version < 2)
        printf("%s: format %d: meta.h5 has no checksum, only its values' ranges were checked (megackpt reshard "
               "writes a copy that has one)\n", a.pos[0], ck.version);
    ckpt_info_free(&ck);
    return 0;
}

/* OUT must be a new path, not even a dangling symlink (ckpt_write replaces what is there); its parent
   folders are created. */
static char *new_output(const char *out)
{
    char *path = xstrdup(out);
    struct stat sb;
    for (size_t n = strlen(path); n > 1 && path[n - 1] == '/'; n--)
        path[n - 1] = '\0';
    if (lstat(path, &sb) == 0)
        fail_input("%s exists; give a new path for the checkpoint", path);
    for (char *p = strchr(path + 1, '/'); p; p = strchr(p + 1, '/')) {
        *p = '\0';
        if (mkdir(path, 0777) != 0 && errno != EEXIST)
            fail_input("%s: cannot create the folder: %s", path, strerror(errno));
        *p = '/';
    }
    return path;
}

static const char *groups[3] = {"params", "adam_m", "adam_v"};

static void fetch_ckpt(void *ctx, int group, const ParamInfo *p, int tp_rank, float *out)
{
    char err[1024];
    if (ckpt_read(ctx, groups[group], p, tp_rank, out, err, sizeof err))
        fail_input("%s", err);
}

static int cmd_reshard(int argc, char **argv)
{
    Args a;
    const char *want[] = {"CKPT (the checkpoint to reshard)", "OUT (the new checkpoint folder)"};
    parse(&a, argc, argv, "reshard", want, 2);
    int tp = a.tp ? (int)cliopt_int("--tp", a.tp, 1, 1 << 16) : 1;
    int pp = a.pp ? (int)cliopt_int("--pp", a.pp, 1, 1 << 16) : 1;
    CkptInfo ck;
    open_ckpt(a.pos[0], &ck);
    const ModelDims *d = &ck.dims;
    if (d->H % tp || d->D % tp || d->G % tp || d->F % tp || d->vocab % tp)
        fail_input("--tp %d must divide the model's n_heads (%d), d_model (%d), groups (%d), ffn_dim (%d) and "
                   "vocab_size (%d)", tp, d->H, d->D, d->G, d->F, d->vocab);
    if (pp > d->n_layers)
        fail_input("--pp %d: the model has %d layers", pp, d->n_layers);
    char *out = new_output(a.pos[1]);
    CkptInfo meta = ck;
    meta.tp = tp;
    meta.pp = pp;
    meta.dp = meta.cp = 1;
    ckpt_write(out, &meta, fetch_ckpt, &ck);
    printf("%s: step %lld written for tp %d pp %d (from %s, tp %d pp %d)\n", out, (long long)ck.step, tp, pp,
           a.pos[0], ck.tp, ck.pp);
    free(out);
    ckpt_info_free(&ck);
    return 0;
}

static int cmd_export(int argc, char **argv)
{
    Args a;
    const char *want[] = {"CKPT (the checkpoint to export)", "OUT.safetensors"};
    parse(&a, argc, argv, "export", want, 2);
    CkptInfo ck;
    open_ckpt(a.pos[0], &ck);
    convert_export(&ck, a.pos[1]);
    printf("%s: the weights of %s (step %lld)\n", a.pos[1], a.pos[0], (long long)ck.step);
    ckpt_info_free(&ck);
    return 0;
}

/* ---- import ---- */

static int cmd_import(int argc, char **argv)
{
    Args a;
    const char *want[] = {"IN.safetensors", "OUT (the new checkpoint folder)"};
    parse(&a, argc, argv, "import", want, 2);
    if (!a.config)
        fail_input("import: --config RUN.yaml missing: the run file says which model the tensors are for");
    Config c;
    config_defaults(&c);
    config_load_yaml(&c, a.config);
    for (int i = 0; i < a.nsets; i++)
        config_set(&c, a.sets[i]);
    /* the dataset gives the vocabulary when the run file leaves it to it, and its fingerprint */
    config_check_data(&c);
    Dataset *ds = c.data.blend[0] ? dataset_open_blend(c.data.blend, "train")
                  : c.data.path[0] ? dataset_open(c.data.path, "train")
                                   : NULL;
    const int64_t ranks = (int64_t)c.parallel.tp * c.parallel.pp * c.parallel.cp; /* each up to 2^16 */
    if (ranks > INT_MAX)
        fail_input("%s: tp * pp * cp = %lld ranks: more than a job can have", a.config, (long long)ranks);
    config_finish(&c, (int)ranks, ds ? dataset_vocab(ds) : 0, 1);
    CkptInfo meta = {.seed = c.train.seed, .tp = c.parallel.tp, .pp = c.parallel.pp, .dp = 1, .cp = 1};
    model_dims_from_config(&meta.dims, &c);
    meta.data_fingerprint = ds ? dataset_fingerprint(ds) : 0;
    if (ds)
        dataset_close(ds);
    size_t len;
    FILE *f = open_memstream(&meta.config, &len);
    if (!f)
        fail("open_memstream: %s", strerror(errno));
    config_print(&c, f);
    fclose(f);
    char *out = new_output(a.pos[1]);
    convert_import(a.pos[0], out, &meta);
    printf("%s: step 0 from %s, for tp %d pp %d\n", out, a.pos[0], meta.tp, meta.pp);
    free(out);
    free(meta.config);
    return 0;
}

static const struct {
    const char *name, *usage;
    int (*run)(int argc, char **argv);
} commands[] = {
    {"ls", usage_ls, cmd_ls},
    {"verify", usage_verify, cmd_verify},
    {"reshard", usage_reshard, cmd_reshard},
    {"export", usage_export, cmd_export},
    {"import", usage_import, cmd_import},
};

/* What the command printed reached standard output, or exit 2: a full disk is no success. */
static int finish(int status)
{
    if (fflush(stdout) != 0 || ferror(stdout))
        fail_input("standard output: cannot write: %s", strerror(errno));
    return status;
}

int main(int argc, char **argv)
{
    util_set_progname("megackpt");
    /* HDF5's exit-time cleanup crashes on a file whose write failed (a full disk); megackpt closes
       every file itself before a normal exit */
    H5dont_atexit();
    if (argc < 2)
        fail_input("no command given (usage: megackpt ls|verify|reshard|export|import ...; see megackpt --help)");
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        fputs(usage, stdout);
        return finish(0);
    }
    if (!strcmp(argv[1], "--version")) {
        printf("megackpt %s (git %s)\n", PACKAGE_VERSION, MEGATRAIN_GIT_REV);
        return finish(0);
    }
    for (size_t c = 0; c < sizeof commands / sizeof commands[0]; c++) {
        if (strcmp(argv[1], commands[c].name))
            continue;
        for (int i = 2; i < argc; i++)
            if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
                fputs(commands[c].usage, stdout);
                return finish(0);
            }
        return finish(commands[c].run(argc, argv));
    }
    fail_input("unknown command '%s' (commands: ls, verify, reshard, export, import; see megackpt --help)", argv[1]);
}
