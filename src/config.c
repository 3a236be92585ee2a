/* config.c: the key table, YAML loading (libyaml document API, for line numbers), --set
   overrides, presets, validation and printing. */
#include "src/config.h"

#include "data/blend.h"
#include "kernels/ops.h"
#include "base/util.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

/* KT_ENUM_BOOL: an enum key that was a boolean; false and true (and the other spellings
   parse_bool takes) stand for its first two values */
typedef enum { KT_INT, KT_INT64, KT_FLOAT, KT_BOOL, KT_STRING, KT_ENUM, KT_ENUM_BOOL } KeyType;

typedef struct {
    const char *section, *key;
    KeyType type;
    size_t offset;
    const char *def;     /* default, parsed like any other value */
    double min, max;     /* numeric range (inclusive); KT_STRING: max is the field's size, 0 for CONFIG_STR */
    const char *choices; /* KT_ENUM, KT_ENUM_BOOL: "a|b|c", value = index */
    const char *doc;
} Key;

#define OFF(field) offsetof(Config, field)
#define BIG 9.0e18

static const Key keys[] = {
    {"model", "preset", KT_STRING, OFF(model.preset), "", 0, 0, NULL,
     "named architecture: mega200M, mega1.3B, mega1.3B_pg19, mega7.1B, mega7.3B, paper7B (spec section 8), "
     "or empty for the explicit dimensions below; explicit keys override the preset's"},
    {"model", "vocab_size", KT_INT, OFF(model.vocab_size), "0", 0, 1 << 30, NULL,
     "vocabulary size; 0 takes it from the dataset; may be larger than the dataset's (parallel.tp must divide it)"},
    {"model", "vocab_multiple", KT_INT, OFF(model.vocab_multiple), "64", 1, 1 << 20, NULL,
     "with vocab_size 0, the dataset's vocabulary is rounded up to a multiple of this, so that parallel.tp up to it "
     "splits the embedding and the head GEMMs stay aligned; the extra rows are never targets or sampled"},
    {"model", "n_layers", KT_INT, OFF(model.n_layers), "2", 1, 4096, NULL, "Megalodon blocks"},
    {"model", "d_model", KT_INT, OFF(model.d_model), "128", 1, 1 << 20, NULL, "model width D"},
    {"model", "n_heads", KT_INT, OFF(model.n_heads), "2", 1, 4096, NULL, "attention heads H"},
    {"model", "z_dim", KT_INT, OFF(model.z_dim), "64", 2, 1 << 20, NULL, "shared Q/K width Z (Z/H even)"},
    {"model", "v_dim", KT_INT, OFF(model.v_dim), "256", 1, 1 << 20, NULL, "value width V"},
    {"model", "ffn_dim", KT_INT, OFF(model.ffn_dim), "256", 1, 1 << 22, NULL, "FFN hidden width F"},
    {"model", "ffn", KT_ENUM, OFF(model.ffn), "swiglu", 0, 0, "swiglu|silu", "FFN kind"},
    {"model", "chunk", KT_INT, OFF(model.chunk), "64", 1, 1 << 24, NULL, "attention chunk size C"},
    {"model", "groups", KT_INT, OFF(model.groups), "4", 1, 1 << 20, NULL, "TimestepNorm groups G (divides D)"},
    {"model", "cema_ndim", KT_INT, OFF(model.cema_ndim), "16", 1, 64, NULL, "CEMA expansion N"},
    {"model", "rope_base", KT_FLOAT, OFF(model.rope_base), "10000", 1, 1e12, NULL, "RoPE base"},
    {"model", "norm_eps", KT_FLOAT, OFF(model.norm_eps), "1e-5", 1e-12, 1, NULL, "epsilon of every norm"},
    {"model", "scale_emb", KT_BOOL, OFF(model.scale_emb), "false", 0, 0, NULL, "multiply embeddings by sqrt(D)"},
    {"model", "share_emb", KT_BOOL, OFF(model.share_emb), "false", 0, 0, NULL,
     "tie the output head to the embedding"},

    {"parallel", "tp", KT_INT, OFF(parallel.tp), "1", 1, 1 << 16, NULL, "tensor-parallel ranks"},
    {"parallel", "pp", KT_INT, OFF(parallel.pp), "1", 1, 1 << 16, NULL, "pipeline stages"},
    {"parallel", "cp", KT_INT, OFF(parallel.cp), "1", 1, 1 << 16, NULL,
     "chunk-parallel ranks (each owns a contiguous piece of every sequence)"},
    {"parallel", "micro_batches", KT_INT, OFF(parallel.micro_batches), "1", 1, 1 << 20, NULL,
     "micro-batches per step on each data-parallel rank (gradient accumulation)"},
    {"parallel", "overlap_grad_reduce", KT_BOOL, OFF(parallel.overlap_grad_reduce), "true", 0, 0, NULL,
     "start the data-parallel gradient sums during backward (false: all after it, for measuring the overlap)"},
    {"parallel", "grad_bucket_mb", KT_FLOAT, OFF(parallel.grad_bucket_mb), "64", 1e-4, 4096, NULL,
     "MiB of fp32 gradients per data-parallel reduce-scatter (bucket); each starts as soon as backward has "
     "finished its gradients"},
    {"parallel", "grad_reduce_dtype", KT_ENUM, OFF(parallel.grad_reduce_dtype), "fp32", 0, 0, "fp32|bf16",
     "the data-parallel gradient sums' type on the wire: bf16 rounds each rank's gradients and the sum to bf16 "
     "(half the traffic); on the CPU MPI adds the bf16 values in fp32"},
    {"parallel", "comm", KT_ENUM, OFF(parallel.comm), "auto", 0, 0, "auto|nccl|mpi",
     "how ranks talk: auto is nccl on CUDA, mpi on the CPU; mpi on CUDA stages device buffers through host "
     "memory (several ranks may share a GPU; slow, for tests)"},
    {"parallel", "timeout", KT_FLOAT, OFF(parallel.timeout), "600", 0.1, 1e7, NULL,
     "seconds a rank waits for another (a collective, a receive) before the watchdog names the wait and "
     "stops the job"},

    {"data", "path", KT_STRING, OFF(data.path), "", 0, 0, NULL,
     "dataset folder (megadata build); empty: random tokens (for tests and benchmarks)"},
    {"data", "blend", KT_STRING, OFF(data.blend), "", 0, CONFIG_BLEND, NULL,
     "datasets to draw from in proportion to their weights, instead of data.path: \"WEIGHT PATH WEIGHT PATH ...\" "
     "(Megatron's data blend), or in the run file a list of {path: DIR, weight: W}; evaluation reads the blend of "
     "their val splits"},
    {"data", "seq_len", KT_INT, OFF(data.seq_len), "256", 1, 1 << 30, NULL, "tokens per sequence L"},
    {"data", "batch_size", KT_INT, OFF(data.batch_size), "8", 1, 1 << 30, NULL,
     "global batch: sequences per optimizer step"},
    {"data", "prefetch", KT_BOOL, OFF(data.prefetch), "true", 0, 0, NULL,
     "read the next micro-batch on a thread while the current one computes (false: read each when needed)"},

    {"optimizer", "lr", KT_FLOAT, OFF(optimizer.lr), "1e-3", 0, 10, NULL, "peak learning rate (AdamW)"},
    {"optimizer", "beta1", KT_FLOAT, OFF(optimizer.beta1), "0.9", 0, 0.999999, NULL, "AdamW beta1"},
    {"optimizer", "beta2", KT_FLOAT, OFF(optimizer.beta2), "0.95", 0, 0.999999999, NULL, "AdamW beta2"},
    {"optimizer", "eps", KT_FLOAT, OFF(optimizer.eps), "1e-8", 0, 1, NULL, "AdamW epsilon"},
    {"optimizer", "weight_decay", KT_FLOAT, OFF(optimizer.weight_decay), "0.1", 0, 10, NULL,
     "decoupled weight decay (all parameters, as the reference)"},
    {"optimizer", "grad_clip", KT_FLOAT, OFF(optimizer.grad_clip), "1.0", 0, 1e9, NULL,
     "clip the global gradient norm to this; 0 turns clipping off"},

    {"schedule", "warmup_steps", KT_INT, OFF(schedule.warmup_steps), "100", 0, 1 << 30, NULL,
     "linear warmup steps"},
    {"schedule", "decay", KT_ENUM, OFF(schedule.decay), "cosine", 0, 0, "cosine|linear|constant",
     "decay after warmup"},
    {"schedule", "min_lr_ratio", KT_FLOAT, OFF(schedule.min_lr_ratio), "0.1", 0, 1, NULL,
     "final learning rate as a fraction of the peak"},
    {"schedule", "warmup_init_ratio", KT_FLOAT, OFF(schedule.warmup_init_ratio), "0", 0, 1, NULL,
     "learning rate at step 0 as a fraction of the peak (the reference code uses 1e-4)"},

    {"train", "steps", KT_INT64, OFF(train.steps), "1000", 0, BIG, NULL,
     "optimizer steps (ignored when train.tokens is set)"},
    {"train", "tokens", KT_INT64, OFF(train.tokens), "0", 0, BIG, NULL,
     "train for this many tokens instead (steps = tokens / (batch_size * seq_len), rounded up)"},
    {"train", "seed", KT_INT64, OFF(train.seed), "1234", 0, BIG, NULL,
     "seed of initialisation, data order and random tokens"},
    {"train", "device", KT_ENUM, OFF(train.device), "cpu", 0, 0, "cpu|cuda", "compute backend"},
    {"train", "precision", KT_ENUM, OFF(train.precision), "auto", 0, 0, "auto|fp32|bf16",
     "activation precision: auto is fp32 on the CPU, bf16 on CUDA"},
    {"train", "recompute", KT_ENUM_BOOL, OFF(train.recompute), "none", 0, 0, "none|blocks|elementwise",
     "what backward recomputes instead of keeping (long sequences): none; blocks: keep only each block's input and "
     "rerun the block's forward; elementwise: keep all but the activations that are elementwise functions of the "
     "others (q and k, the value, the gated output, the FFN product) and recompute those; false and true are none and "
     "blocks"},
    {"train", "graph", KT_BOOL, OFF(train.graph), "true", 0, 0, NULL,
     "on a job of one rank, run each micro-batch's forward and backward as one captured graph (CUDA graphs: one "
     "launch instead of about a thousand; the CPU runs it directly)"},
    {"train", "memory_gib", KT_FLOAT, OFF(train.memory_gib), "0", 0, 1e9, NULL,
     "memory per rank (GiB) the memory plan must fit before anything is allocated; 0: the GPU's total on cuda, "
     "no check on the CPU (megatrain plan)"},
    {"train", "threads", KT_INT, OFF(train.threads), "0", 0, 4096, NULL,
     "CPU threads per rank (OpenMP); 0: OMP_NUM_THREADS when set, else the node's cores shared among its ranks"},
    {"train", "max_skips", KT_INT, OFF(train.max_skips), "5", 1, 1 << 30, NULL,
     "stop after this many updates in a row are skipped (loss or gradient norm not finite, or a spike), saving "
     "the last good state when checkpoint.dir is set"},
    {"train", "spike_window", KT_INT, OFF(train.spike_window), "128", 2, 1 << 20, NULL,
     "steps of loss and gradient-norm history the spike guard compares with"},
    {"train", "spike_loss_z", KT_FLOAT, OFF(train.spike_loss_z), "0", 0, 1e9, NULL,
     "skip the update when the loss is more than this many standard deviations above the mean of the last "
     "spike_window steps (0: off)"},
    {"train", "spike_grad_z", KT_FLOAT, OFF(train.spike_grad_z), "0", 0, 1e9, NULL,
     "the same for the global gradient norm (0: off)"},

    {"checkpoint", "dir", KT_STRING, OFF(checkpoint.dir), "", 0, 0, NULL,
     "folder of this run's checkpoints (one subfolder per step); empty: no checkpoints"},
    {"checkpoint", "every", KT_INT, OFF(checkpoint.every), "0", 0, 1 << 30, NULL,
     "save every N steps (0: only at the end and on SIGTERM/SIGUSR1)"},
    {"checkpoint", "keep_last", KT_INT, OFF(checkpoint.keep_last), "3", 1, 1 << 30, NULL,
     "keep the newest N checkpoints"},
    {"checkpoint", "keep_every", KT_INT, OFF(checkpoint.keep_every), "0", 0, 1 << 30, NULL,
     "also keep every checkpoint whose step is a multiple of N (0: none)"},
    {"checkpoint", "resume", KT_STRING, OFF(checkpoint.resume), "auto", 0, 0, NULL,
     "auto: continue from the newest good checkpoint in checkpoint.dir; never: start afresh; or the "
     "path of a checkpoint folder (written under any layout) to start from, once checkpoint.dir holds none"},

    {"log", "metrics", KT_STRING, OFF(log.metrics), "metrics.jsonl", 0, 0, NULL,
     "JSON Lines metrics file that rank 0 appends to (empty: none)"},
    {"log", "every", KT_INT, OFF(log.every), "10", 1, 1 << 30, NULL, "print a progress line every N steps"},
    {"log", "peak_tflops", KT_FLOAT, OFF(log.peak_tflops), "0", 0, 1e9, NULL,
     "peak TFLOP/s per rank for MFU; 0: 989 on CUDA (H100/H200 dense bf16), none on the CPU"},

    {"eval", "every", KT_INT, OFF(eval.every), "0", 0, 1 << 30, NULL,
     "validation every N steps and after the last (0: never)"},
    {"eval", "batches", KT_INT, OFF(eval.batches), "4", 1, 1 << 20, NULL,
     "validation batches (of data.batch_size sequences) per evaluation"},
};

#define NKEYS (sizeof keys / sizeof keys[0])

static const char *sections[] = {"model", "parallel", "data", "optimizer", "schedule", "train", "checkpoint", "log", "eval"};
#define NSECTIONS (sizeof sections / sizeof sections[0])

/* where each key was last set ("" = default) */
static ConfigOrigin origins[NKEYS];

/* ---- presets (spec section 8) ---- */
typedef struct {
    const char *name;
    int n_layers, d_model, n_heads, z_dim, v_dim, ffn_dim, ffn, chunk, groups, scale_emb, share_emb;
    double rope_base;
} Preset;

static const Preset presets[] = {
    {"mega200M", 12, 1024, 1, 256, 2048, 2560, FFN_SILU, 2048, 32, 0, 0, 10000},
    {"mega1.3B", 24, 2048, 2, 512, 4096, 4864, FFN_SILU, 2048, 64, 0, 0, 10000},
    {"mega1.3B_pg19", 24, 2048, 2, 512, 4096, 3584, FFN_SWIGLU, 2048, 64, 1, 1, 10000},
    {"mega7.1B", 32, 4096, 4, 1024, 8192, 11264, FFN_SILU, 2048, 64, 0, 0, 10000},
    {"mega7.3B", 32, 4096, 4, 1024, 8192, 8192, FFN_SWIGLU, 2048, 64, 0, 0, 10000},
    /* the paper's 7B: mega7.3B with its stated chunk 4096 and RoPE base 1e5 */
    {"paper7B", 32, 4096, 4, 1024, 8192, 8192, FFN_SWIGLU, 4096, 64, 0, 0, 100000},
};

static const Key *key_find(const char *section, const char *key, size_t *index)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (!strcmp(keys[i].section, section) && !strcmp(keys[i].key, key)) {
            if (index)
                *index = i;
            return &keys[i];
        }
    return NULL;
}

static int section_known(const char *s)
{
    for (size_t i = 0; i < NSECTIONS; i++)
        if (!strcmp(sections[i], s))
            return 1;
    return 0;
}

/* "a, b, c" of a section's keys, for "unknown key" messages */
static char *section_keys(const char *section)
{
    char *s = xstrdup("");
    for (size_t i = 0; i < NKEYS; i++)
        if (!strcmp(keys[i].section, section)) {
            char *t = xasprintf("%s%s%s", s, *s ? ", " : "", keys[i].key);
            free(s);
            s = t;
        }
    return s;
}

static const char *type_expectation(const Key *k, char *buf, size_t n)
{
    switch (k->type) {
    case KT_INT:
    case KT_INT64:
        snprintf(buf, n, "an integer in [%.0f, %.0f]", k->min, k->max);
        break;
    case KT_FLOAT:
        snprintf(buf, n, "a number in [%.10g, %.10g]", k->min, k->max);
        break;
    case KT_BOOL:
        snprintf(buf, n, "true or false");
        break;
    case KT_STRING:
        snprintf(buf, n, "a string");
        break;
    case KT_ENUM:
        snprintf(buf, n, "one of %s", k->choices);
        break;
    case KT_ENUM_BOOL:
        snprintf(buf, n, "one of %s, false or true", k->choices);
        break;
    }
    return buf;
}

static int parse_bool(const char *v, int *out)
{
    static const char *t[] = {"true", "yes", "on", "1"}, *f[] = {"false", "no", "off", "0"};
    for (int i = 0; i < 4; i++) {
        if (!strcasecmp(v, t[i]))
            return *out = 1, 1;
        if (!strcasecmp(v, f[i]))
            return *out = 0, 1;
    }
    return 0;
}

static int parse_enum(const char *choices, const char *v, int *out)
{
    int idx = 0;
    size_t n = strlen(v);
    for (const char *p = choices; *p; idx++) {
        const char *e = strchr(p, '|');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == n && !strncmp(p, v, n))
            return *out = idx, 1;
        p += len + (e ? 1 : 0);
    }
    return 0;
}

static const char *enum_name(const char *choices, int value, char *buf, size_t n)
{
    const char *p = choices;
    for (int i = 0; i < value && p; i++) {
        p = strchr(p, '|');
        if (p)
            p++;
    }
    if (!p)
        return "?";
    const char *e = strchr(p, '|');
    size_t len = e ? (size_t)(e - p) : strlen(p);
    snprintf(buf, n, "%.*s", (int)(len < n ? len : n - 1), p);
    return buf;
}

/* Parse text into the key's field; where is "file:line" or "--set". Stops on error. */
static void key_assign(Config *c, size_t index, const char *text, const char *where)
{
    const Key *k = &keys[index];
    char *field = (char *)c + k->offset, exp[160];
    char *end = NULL;
    errno = 0;
    switch (k->type) {
    case KT_INT:
    case KT_INT64: {
        long long v = strtoll(text, &end, 10);
        if (!*text || *end || errno || v < k->min || v > k->max)
            fail_input_all("%s: %s.%s: expected %s, got '%s'", where, k->section, k->key,
                           type_expectation(k, exp, sizeof exp), text);
        if (k->type == KT_INT)
            *(int *)field = (int)v;
        else
            *(int64_t *)field = v;
        break;
    }
    case KT_FLOAT: {
        double v = strtod(text, &end);
        if (!*text || *end || errno || !isfinite(v) || v < k->min || v > k->max)
            fail_input_all("%s: %s.%s: expected %s, got '%s'", where, k->section, k->key,
                           type_expectation(k, exp, sizeof exp), text);
        *(double *)field = v;
        break;
    }
    case KT_BOOL:
        if (!parse_bool(text, (int *)field))
            fail_input_all("%s: %s.%s: expected %s, got '%s'", where, k->section, k->key,
                           type_expectation(k, exp, sizeof exp), text);
        break;
    case KT_STRING: {
        size_t size = k->max > 0 ? (size_t)k->max : CONFIG_STR;
        if (strlen(text) >= size)
            fail_input_all("%s: %s.%s: longer than %zu characters", where, k->section, k->key, size - 1);
        strcpy(field, text);
        break;
    }
    case KT_ENUM:
    case KT_ENUM_BOOL:
        if (!parse_enum(k->choices, text, (int *)field) &&
            !(k->type == KT_ENUM_BOOL && parse_bool(text, (int *)field)))
            fail_input_all("%s: %s.%s: expected %s, got '%s'", where, k->section, k->key,
                           type_expectation(k, exp, sizeof exp), text);
        break;
    }
    snprintf(origins[index].where, CONFIG_STR, "%s", where);
}

void config_defaults(Config *c)
{
    memset(c, 0, sizeof *c);
    for (size_t i = 0; i < NKEYS; i++)
        key_assign(c, i, keys[i].def, "default");
    for (size_t i = 0; i < NKEYS; i++)
        origins[i].where[0] = '\0';
}

const char *config_origin(const char *section_key)
{
    char sec[64];
    const char *dot = strchr(section_key, '.');
    size_t n = dot ? (size_t)(dot - section_key) : 0, index;
    if (!dot || n >= sizeof sec)
        return "config";
    memcpy(sec, section_key, n);
    sec[n] = '\0';
    if (!key_find(sec, dot + 1, &index) || !origins[index].where[0])
        return "default";
    return origins[index].where;
}

/* ---- YAML ---- */

static const char *scalar_of(yaml_node_t *n) { return (const char *)n->data.scalar.value; }

/* A run file is a few KB and two levels deep (section, key); the bounds keep a hostile file
   from tying up the loader (libyaml's scanner is quadratic in the depth of flow collections). */
#define CONFIG_MAX_BYTES (1 << 20)
#define CONFIG_MAX_DEPTH 64

static noreturn void syntax_error(const char *path, const yaml_parser_t *p)
{
    fail_input_all("%s:%zu:%zu: YAML syntax error: %s%s%s", path, p->problem_mark.line + 1,
                   p->problem_mark.column + 1, p->problem ? p->problem : "unknown problem", p->context ? " " : "",
                   p->context ? p->context : "");
}

/* The file's text, read (not stat'ed: a pipe has no size) up to one byte past the bound. */
static unsigned char *read_bounded(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_input_all("%s: cannot open the config file: %s", path, strerror(errno));
    unsigned char *text = xmalloc(CONFIG_MAX_BYTES + 1);
    *len = fread(text, 1, CONFIG_MAX_BYTES + 1, f);
    if (ferror(f))
        fail_input_all("%s: cannot read the config file: %s", path, strerror(errno));
    fclose(f);
    if (*len > CONFIG_MAX_BYTES)
        fail_input_all("%s: larger than %d bytes: not a run file", path, CONFIG_MAX_BYTES);
    return text;
}

/* Walk the events, which the scanner delivers after a bounded look-ahead, and stop at the first
   collection nested deeper than CONFIG_MAX_DEPTH, before the loader would build the tree. */
static void check_depth(const char *path, const unsigned char *text, size_t len)
{
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p))
        fail("libyaml: cannot initialise a parser");
    yaml_parser_set_input_string(&p, text, len);
    for (int depth = 0, done = 0; !done;) {
        yaml_event_t e;
        if (!yaml_parser_parse(&p, &e))
            syntax_error(path, &p);
        if (e.type == YAML_SEQUENCE_START_EVENT || e.type == YAML_MAPPING_START_EVENT) {
            if (++depth > CONFIG_MAX_DEPTH)
                fail_input_all("%s:%zu:%zu: nested deeper than %d levels (a run file has two: section, key)", path,
                               e.start_mark.line + 1, e.start_mark.column + 1, CONFIG_MAX_DEPTH);
        } else if (e.type == YAML_SEQUENCE_END_EVENT || e.type == YAML_MAPPING_END_EVENT) {
            depth--;
        }
        done = e.type == YAML_STREAM_END_EVENT;
        yaml_event_delete(&e);
    }
    yaml_parser_delete(&p);
}

/* data.blend written as a list of {path: DIR, weight: W}: its text, "W DIR W DIR ...". */
static char *blend_from_yaml(yaml_document_t *doc, yaml_node_t *list, const char *path)
{
    char *text = xstrdup("");
    for (yaml_node_item_t *it = list->data.sequence.items.start; it < list->data.sequence.items.top; it++) {
        yaml_node_t *item = yaml_document_get_node(doc, *it);
        const char *dir = NULL, *weight = NULL;
        for (yaml_node_pair_t *p = item->type == YAML_MAPPING_NODE ? item->data.mapping.pairs.start : NULL;
             p && p < item->data.mapping.pairs.top; p++) {
            yaml_node_t *k = yaml_document_get_node(doc, p->key), *v = yaml_document_get_node(doc, p->value);
            const char *name = k->type == YAML_SCALAR_NODE ? scalar_of(k) : "";
            const char **slot = !strcmp(name, "path") ? &dir : !strcmp(name, "weight") ? &weight : NULL;
            if (!slot || *slot || v->type != YAML_SCALAR_NODE)
                fail_input_all("%s:%zu: data.blend: '%s' is not one of path and weight, or is given twice, or is "
                               "not a plain value",
                               path, k->start_mark.line + 1, name);
            *slot = scalar_of(v);
        }
        if (!dir || !weight || strpbrk(dir, " \t\n") || !*dir)
            fail_input_all("%s:%zu: data.blend: each item is {path: DIR, weight: W}, DIR without white space", path,
                           item->start_mark.line + 1);
        char *more = xasprintf("%s%s%s %s", text, *text ? " " : "", weight, dir);
        free(text);
        text = more;
    }
    return text;
}

void config_load_yaml(Config *c, const char *path)
{
    size_t len;
    unsigned char *text = read_bounded(path, &len);
    check_depth(path, text, len);
    yaml_parser_t parser;
    yaml_document_t doc;
    if (!yaml_parser_initialize(&parser))
        fail("libyaml: cannot initialise a parser");
    yaml_parser_set_input_string(&parser, text, len);
    if (!yaml_parser_load(&parser, &doc))
        syntax_error(path, &parser);
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (root && !(root->type == YAML_SCALAR_NODE && root->data.scalar.length == 0)) {
        if (root->type != YAML_MAPPING_NODE)
            fail_input_all("%s:%zu: expected a mapping of sections (model:, data:, train:, ...)", path,
                           root->start_mark.line + 1);
        int seen[NKEYS] = {0};
        for (yaml_node_pair_t *sp = root->data.mapping.pairs.start; sp < root->data.mapping.pairs.top; sp++) {
            yaml_node_t *sk = yaml_document_get_node(&doc, sp->key), *sv = yaml_document_get_node(&doc, sp->value);
            size_t sline = sk->start_mark.line + 1;
            if (sk->type != YAML_SCALAR_NODE || !section_known(scalar_of(sk)))
                fail_input_all("%s:%zu: unknown section '%s' (expected one of: model, parallel, data, optimizer, "
                               "schedule, train, checkpoint, log, eval)",
                               path, sline, sk->type == YAML_SCALAR_NODE ? scalar_of(sk) : "?");
            const char *section = scalar_of(sk);
            if (sv->type == YAML_SCALAR_NODE && sv->data.scalar.length == 0)
                continue; /* "section:" with nothing under it */
            if (sv->type != YAML_MAPPING_NODE)
                fail_input_all("%s:%zu: section '%s' must be a mapping of key: value", path, sline, section);
            for (yaml_node_pair_t *p = sv->data.mapping.pairs.start; p < sv->data.mapping.pairs.top; p++) {
                yaml_node_t *k = yaml_document_get_node(&doc, p->key), *v = yaml_document_get_node(&doc, p->value);
                size_t line = k->start_mark.line + 1, index;
                if (k->type != YAML_SCALAR_NODE || !key_find(section, scalar_of(k), &index)) {
                    char *known = section_keys(section);
                    fail_input_all("%s:%zu: unknown key '%s.%s' (keys of %s: %s)", path, line, section,
                                   k->type == YAML_SCALAR_NODE ? scalar_of(k) : "?", section, known);
                }
                if (seen[index])
                    fail_input_all("%s:%zu: %s.%s is set twice", path, line, section, scalar_of(k));
                seen[index] = 1;
                char where[CONFIG_STR];
                snprintf(where, sizeof where, "%s:%zu", path, v->start_mark.line + 1);
                if (v->type == YAML_SEQUENCE_NODE && keys[index].offset == OFF(data.blend)) {
                    char *text = blend_from_yaml(&doc, v, path);
                    key_assign(c, index, text, where);
                    free(text);
                    continue;
                }
                if (v->type != YAML_SCALAR_NODE) {
                    char exp[160];
                    fail_input_all("%s:%zu: %s.%s: expected %s, got a %s", path, line, section, scalar_of(k),
                                   type_expectation(&keys[index], exp, sizeof exp),
                                   v->type == YAML_MAPPING_NODE ? "mapping" : "list");
                }
                key_assign(c, index, scalar_of(v), where);
            }
        }
    }
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    free(text);
}

void config_set(Config *c, const char *assignment)
{
    const char *eq = strchr(assignment, '='), *dot = strchr(assignment, '.');
    if (!eq || !dot || dot > eq)
        fail_input_all("--set %s: expected section.key=value", assignment);
    char section[64], key[64];
    size_t ns = (size_t)(dot - assignment), nk = (size_t)(eq - dot - 1), index;
    if (ns >= sizeof section || nk >= sizeof key)
        fail_input_all("--set %s: unknown key", assignment);
    memcpy(section, assignment, ns);
    section[ns] = '\0';
    memcpy(key, dot + 1, nk);
    key[nk] = '\0';
    if (!section_known(section))
        fail_input_all("--set %s: unknown section '%s' (expected one of: model, parallel, data, optimizer, "
                       "schedule, train, checkpoint, log, eval)",
                       assignment, section);
    if (!key_find(section, key, &index)) {
        char *known = section_keys(section);
        fail_input_all("--set %s: unknown key '%s.%s' (keys of %s: %s)", assignment, section, key, section, known);
    }
    char where[CONFIG_STR];
    snprintf(where, sizeof where, "--set %.*s", (int)(sizeof where - 8), assignment);
    key_assign(c, index, eq + 1, where);
}

/* ---- presets, derived values, consistency ---- */

static int explicitly_set(const char *section, const char *key)
{
    size_t index;
    return key_find(section, key, &index) && origins[index].where[0];
}

static void apply_preset(Config *c)
{
    if (!c->model.preset[0])
        return;
    const Preset *p = NULL;
    for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++)
        if (!strcmp(presets[i].name, c->model.preset))
            p = &presets[i];
    if (!p)
        fail_input_all("%s: model.preset: unknown preset '%s' (expected one of: mega200M, mega1.3B, "
                       "mega1.3B_pg19, mega7.1B, mega7.3B, paper7B, or empty)",
                       config_origin("model.preset"), c->model.preset);
#define PRESET_INT(field)                                                                                    \
    if (!explicitly_set("model", #field))                                                                    \
        c->model.field = p->field;
    PRESET_INT(n_layers)
    PRESET_INT(d_model)
    PRESET_INT(n_heads)
    PRESET_INT(z_dim)
    PRESET_INT(v_dim)
    PRESET_INT(ffn_dim)
    PRESET_INT(ffn)
    PRESET_INT(chunk)
    PRESET_INT(groups)
    PRESET_INT(scale_emb)
    PRESET_INT(share_emb)
    PRESET_INT(rope_base)
#undef PRESET_INT
}

/* Stop with "origin: a.b: message" naming where key a.b was set. */
#define REQUIRE(cond, key, ...)                                                                              \
    do {                                                                                                     \
        if (!(cond)) {                                                                                       \
            char msg_[1024];                                                                                 \
            snprintf(msg_, sizeof msg_, __VA_ARGS__);                                                        \
            fail_input_all("%s: %s: %s", config_origin(key), key, msg_);                                     \
        }                                                                                                    \
    } while (0)

void config_check_data(const Config *c)
{
    REQUIRE(!c->data.path[0] || !c->data.blend[0], "data.blend", "excludes data.path (set at %s): give one or the other",
            config_origin("data.path"));
    if (c->data.blend[0]) {
        BlendSpec blend;
        const char *bad = blend_parse(c->data.blend, &blend);
        REQUIRE(!bad, "data.blend", "%s", bad);
        blend_spec_free(&blend);
    }
}

void config_finish(Config *c, int world, int vocab_from_data, int cuda_built)
{
    apply_preset(c);
    const int D = c->model.d_model, H = c->model.n_heads, tp = c->parallel.tp, pp = c->parallel.pp,
              cp = c->parallel.cp;

    if (c->model.vocab_size == 0 && vocab_from_data > 0) {
        const int64_t vm = c->model.vocab_multiple, padded = (vocab_from_data + vm - 1) / vm * vm;
        REQUIRE(padded <= 1 << 30, "model.vocab_multiple", "%lld rounds the dataset's vocabulary (%d) past 2^30",
                (long long)vm, vocab_from_data);
        c->model.vocab_size = (int)padded;
    }
    /* with the dataset not read (--print-config), 0 stays "the dataset's" and prints so */
    const int has_data = c->data.path[0] || c->data.blend[0];
    config_check_data(c);
    REQUIRE(c->model.vocab_size > 0 || (vocab_from_data == CONFIG_VOCAB_UNREAD && has_data), "model.vocab_size",
            "%s", has_data ? "needs a value (the dataset is not read here)"
                           : "needs a value when data.path and data.blend are empty");
    REQUIRE(vocab_from_data <= c->model.vocab_size, "model.vocab_size",
            "%d is smaller than the dataset's vocabulary (%d)", c->model.vocab_size, vocab_from_data);
    REQUIRE(D % c->model.groups == 0, "model.groups", "%d does not divide model.d_model (%d)", c->model.groups, D);
    REQUIRE(c->model.z_dim % H == 0 && (c->model.z_dim / H) % 2 == 0, "model.z_dim",
            "%d must be n_heads (%d) times an even head width (RoPE rotates pairs)", c->model.z_dim, H);
    REQUIRE(c->model.v_dim % H == 0, "model.v_dim", "%d is not a multiple of model.n_heads (%d)", c->model.v_dim,
            H);

    /* the layout must fit the model, then the job */
    REQUIRE(H % tp == 0, "parallel.tp", "%d does not divide model.n_heads (%d)", tp, H);
    REQUIRE(D % tp == 0 && c->model.groups % tp == 0, "parallel.tp",
            "%d must divide model.d_model (%d) and model.groups (%d)", tp, D, c->model.groups);
    REQUIRE(c->model.ffn_dim % tp == 0, "parallel.tp", "%d does not divide model.ffn_dim (%d)", tp,
            c->model.ffn_dim);
    REQUIRE(c->model.vocab_size % tp == 0, "parallel.tp",
            "%d does not divide model.vocab_size (%d), which tensor parallelism splits: round the vocabulary up "
            "(it may be larger than the dataset's; with vocab_size 0, model.vocab_multiple rounds it)",
            tp, c->model.vocab_size);
    REQUIRE(pp <= c->model.n_layers, "parallel.pp", "%d stages for %d layers", pp, c->model.n_layers);

    const int L = c->data.seq_len, C = c->model.chunk;
    REQUIRE(L % cp == 0, "data.seq_len", "%d is not a multiple of parallel.cp (%d)", L, cp);
    int Lloc = L / cp;
    if (cp == 1)
        REQUIRE(L < C || L % C == 0, "data.seq_len", "%d must be below model.chunk (%d) or a multiple of it", L, C);
    else
        REQUIRE(Lloc % C == 0, "data.seq_len",
                "%d split over parallel.cp = %d ranks gives pieces of %d tokens, not a whole number of "
                "model.chunk (%d) chunks",
                L, cp, Lloc, C);
    /* products in 64 bits: each factor may be up to 2^16, and 2^30 for the batch's */
    const int64_t per = (int64_t)tp * pp * cp;
    const char *layout_key = tp > 1 ? "parallel.tp" : pp > 1 ? "parallel.pp" : "parallel.cp";
    REQUIRE(world >= per && world % per == 0, layout_key,
            "tp * pp * cp = %d * %d * %d = %lld does not divide the %d ranks of this job", tp, pp, cp, (long long)per,
            world);
    const int64_t dp = world / per, micro = c->parallel.micro_batches, B = c->data.batch_size;
    REQUIRE(B % (dp * micro) == 0, "data.batch_size",
            "%lld is not a multiple of data-parallel ranks (%lld) x parallel.micro_batches (%lld)", (long long)B,
            (long long)dp, (long long)micro);

    const int64_t per_step = B * L;
    if (c->train.tokens > 0)
        c->train.steps = c->train.tokens / per_step + (c->train.tokens % per_step != 0);
    REQUIRE(c->train.steps <= INT64_MAX / per_step, c->train.tokens > 0 ? "train.tokens" : "train.steps",
            "%lld steps of %lld tokens (data.batch_size x data.seq_len) count more than %lld tokens",
            (long long)c->train.steps, (long long)per_step, (long long)INT64_MAX);
    REQUIRE(B / (dp * micro) * Lloc <= INT_MAX, "data.batch_size",
            "a micro-batch of %lld sequences of %d tokens per rank is more than %d tokens",
            (long long)(B / (dp * micro)), Lloc, INT_MAX);
    REQUIRE(c->train.device != DEVICE_CUDA || cuda_built, "train.device",
            "cuda: " OPS_NO_CUDA);
    REQUIRE(c->parallel.comm != PARALLEL_COMM_NCCL || c->train.device == DEVICE_CUDA, "parallel.comm",
            "nccl needs train.device: cuda (the CPU backend talks over mpi)");
    if (c->parallel.comm == PARALLEL_COMM_AUTO)
        c->parallel.comm = c->train.device == DEVICE_CUDA ? PARALLEL_COMM_NCCL : PARALLEL_COMM_MPI;
    if (c->train.precision == PRECISION_AUTO)
        c->train.precision = c->train.device == DEVICE_CUDA ? PRECISION_BF16 : PRECISION_FP32;
    REQUIRE(c->train.device == DEVICE_CUDA || c->train.precision == PRECISION_FP32, "train.precision",
            "bf16 needs train.device: cuda (the CPU backend is the fp32 reference)");
    REQUIRE(c->train.device == DEVICE_CPU || c->train.precision == PRECISION_BF16, "train.precision",
            "fp32 is not supported on CUDA (use bf16)");
}

/* ---- printing ---- */

/* One value as YAML/JSON text (the two agree for every type we have). */
static void print_value(FILE *f, const Config *c, const Key *k)
{
    const char *field = (const char *)c + k->offset;
    char buf[64];
    switch (k->type) {
    case KT_INT:
        fprintf(f, "%d", *(const int *)field);
        break;
    case KT_INT64:
        fprintf(f, "%lld", (long long)*(const int64_t *)field);
        break;
    case KT_FLOAT: {
        /* shortest form that reads back exactly */
        double v = *(const double *)field;
        if (v == floor(v) && fabs(v) < 1e15)
            snprintf(buf, sizeof buf, "%.1f", v);
        else
            for (int prec = 1; prec <= 17; prec++) {
                snprintf(buf, sizeof buf, "%.*g", prec, v);
                if (strtod(buf, NULL) == v)
                    break;
            }
        /* YAML 1.1 readers want a dot in the mantissa ("1.0e-05"); JSON accepts it too */
        char *e = strpbrk(buf, "eE");
        if (!strpbrk(buf, ".n")) {
            char tail[64] = "";
            if (e) {
                snprintf(tail, sizeof tail, "%s", e);
                *e = '\0';
            }
            strcat(buf, ".0");
            strcat(buf, tail);
        }
        fputs(buf, f);
        break;
    }
    case KT_BOOL:
        fputs(*(const int *)field ? "true" : "false", f);
        break;
    case KT_STRING:
        util_write_quoted(f, field);
        break;
    case KT_ENUM:
    case KT_ENUM_BOOL:
        util_write_quoted(f, enum_name(k->choices, *(const int *)field, buf, sizeof buf));
        break;
    }
}

void config_print(const Config *c, FILE *f)
{
    for (size_t s = 0; s < NSECTIONS; s++) {
        fprintf(f, "%s:\n", sections[s]);
        for (size_t i = 0; i < NKEYS; i++)
            if (!strcmp(keys[i].section, sections[s])) {
                fprintf(f, "  %s: ", keys[i].key);
                print_value(f, c, &keys[i]);
                fputc('\n', f);
            }
    }
}

void config_print_json(const Config *c, FILE *f)
{
    fputc('{', f);
    for (size_t s = 0; s < NSECTIONS; s++) {
        fprintf(f, "%s\"%s\":{", s ? "," : "", sections[s]);
        int first = 1;
        for (size_t i = 0; i < NKEYS; i++)
            if (!strcmp(keys[i].section, sections[s])) {
                fprintf(f, "%s\"%s\":", first ? "" : ",", keys[i].key);
                print_value(f, c, &keys[i]);
                first = 0;
            }
        fputc('}', f);
    }
    fputc('}', f);
}

void config_print_reference(FILE *f)
{
    char exp[160];
    for (size_t s = 0; s < NSECTIONS; s++) {
        fprintf(f, "%s:\n", sections[s]);
        for (size_t i = 0; i < NKEYS; i++)
            if (!strcmp(keys[i].section, sections[s]))
                fprintf(f, "  %-18s %s (default %s%s%s)\n      %s\n", keys[i].key,
                        type_expectation(&keys[i], exp, sizeof exp), keys[i].type == KT_STRING ? "\"" : "",
                        keys[i].def, keys[i].type == KT_STRING ? "\"" : "", keys[i].doc);
    }
}

const char *config_device_name(int device) { return device == DEVICE_CUDA ? "cuda" : "cpu"; }

const char *config_precision_name(int precision)
{
    return precision == PRECISION_BF16 ? "bf16" : precision == PRECISION_FP32 ? "fp32" : "auto";
}

const char *config_recompute_name(int recompute)
{
    return recompute == RECOMPUTE_BLOCKS ? "blocks" : recompute == RECOMPUTE_ELEMENTWISE ? "elementwise" : "none";
}
