/* config.h: the typed run configuration. Every key has a default; a YAML file and --set
   overrides fill it in; config_check() validates what depends on several keys or the world size.
   The key table in config.c is the single source of truth (parsing, --print-config, docs). */
#ifndef MEGATRAIN_CONFIG_H
#define MEGATRAIN_CONFIG_H

#include <stdint.h>
#include <stdio.h>

#define CONFIG_STR 512
#define CONFIG_BLEND 8192 /* data.blend: many datasets, each a path */

typedef enum { FFN_SWIGLU = 0, FFN_SILU = 1 } FfnKind;
typedef enum { DECAY_COSINE = 0, DECAY_LINEAR = 1, DECAY_CONSTANT = 2 } DecayKind;
typedef enum { DEVICE_CPU = 0, DEVICE_CUDA = 1 } DeviceKind;
typedef enum { PRECISION_AUTO = 0, PRECISION_FP32 = 1, PRECISION_BF16 = 2 } PrecisionKind;
typedef enum { PARALLEL_COMM_AUTO = 0, PARALLEL_COMM_NCCL = 1, PARALLEL_COMM_MPI = 2 } ParallelComm;
typedef enum { GRAD_REDUCE_FP32 = 0, GRAD_REDUCE_BF16 = 1 } GradReduceDtype;
/* train.recompute: what backward recomputes instead of keeping (false and true, from when the key
   was a boolean, are none and blocks) */
typedef enum { RECOMPUTE_NONE = 0, RECOMPUTE_BLOCKS = 1, RECOMPUTE_ELEMENTWISE = 2, RECOMPUTE_MODES } RecomputeMode;

typedef struct {
    struct {
        char preset[CONFIG_STR];
        int vocab_size;     /* 0: take it from the dataset, rounded up to vocab_multiple */
        int vocab_multiple;
        int n_layers, d_model, n_heads, z_dim, v_dim, ffn_dim;
        int ffn; /* FfnKind */
        int chunk, groups, cema_ndim;
        double rope_base, norm_eps;
        int scale_emb, share_emb;
    } model;
    struct {
        int tp, pp, cp, micro_batches;
        int overlap_grad_reduce;
        double grad_bucket_mb; /* MiB of fp32 gradients per data-parallel reduce-scatter */
        int grad_reduce_dtype; /* GradReduceDtype */
        int comm;       /* ParallelComm; config_finish resolves auto */
        double timeout; /* seconds a rank waits for another before the watchdog stops the job */
    } parallel;
    struct {
        char path[CONFIG_STR];
        char blend[CONFIG_BLEND]; /* "WEIGHT PATH WEIGHT PATH ..." (data/blend.h), instead of path */
        int seq_len, batch_size;  /* global: sequences per optimizer step */
        int prefetch;             /* read the next micro-batch on a thread while one computes */
    } data;
    struct {
        double lr, beta1, beta2, eps, weight_decay, grad_clip;
    } optimizer;
    struct {
        int warmup_steps;
        int decay; /* DecayKind */
        double min_lr_ratio, warmup_init_ratio;
    } schedule;
    struct {
        int64_t steps, tokens;
        int64_t seed;
        int device;    /* DeviceKind */
        int precision; /* PrecisionKind */
        int recompute; /* RecomputeMode */
        int graph;     /* one rank: each micro-batch's forward and backward as a graph (ops.h) */
        int threads;
        double memory_gib;                 /* the memory plan's limit per rank; 0: the device's */
        int max_skips, spike_window;       /* the update guard (src/guard.h) */
        double spike_loss_z, spike_grad_z; /* 0: no spike check */
    } train;
    struct {
        char dir[CONFIG_STR];
        int every, keep_last, keep_every;
        char resume[CONFIG_STR];
    } checkpoint;
    struct {
        char metrics[CONFIG_STR];
        int every;
        double peak_tflops;
    } log;
    struct {
        int every, batches;
    } eval;
} Config;

/* Where a value came from, for error messages: "run.yaml:12", "--set", "default". */
typedef struct {
    char where[CONFIG_STR];
} ConfigOrigin;

/* Defaults for every key. */
void config_defaults(Config *c);
/* Read a YAML file over c. Bad input stops every rank with exit code 2 (fail_input_all). */
void config_load_yaml(Config *c, const char *path);
/* Apply one "section.key=value" override. */
void config_set(Config *c, const char *assignment);
/* Fill in the preset's dimensions (keys not set explicitly keep the preset's value), resolve
   derived values (precision, steps from tokens) and check ranges and consistency against the
   world size. vocab_from_data is the dataset's vocabulary (0 if unknown; CONFIG_VOCAB_UNREAD when
   data.path or data.blend is set but not read, as for printing: model.vocab_size may then stay 0). */
#define CONFIG_VOCAB_UNREAD (-1)
void config_finish(Config *c, int world_size, int vocab_from_data, int cuda_built);
/* The part of config_finish that comes before the data is read: data.path or data.blend, not both,
   and a blend that parses. */
void config_check_data(const Config *c);
/* The resolved configuration as YAML that reads back to the same Config. */
void config_print(const Config *c, FILE *f);
/* The same as one JSON object (for the metrics header). */
void config_print_json(const Config *c, FILE *f);
/* Every key with its type, default and meaning (megatrain --help-config). */
void config_print_reference(FILE *f);
/* Where the key "section.key" was last set (for messages from other modules). */
const char *config_origin(const char *section_key);

/* Names of enum values, for messages and logs. */
const char *config_device_name(int device);
const char *config_precision_name(int precision);
const char *config_recompute_name(int recompute);

#endif
