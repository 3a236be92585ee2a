/* megadata.c: build, summarise and verify megatrain token datasets (format in doc/data.md). */
#include "autoconfig.h"

#include "data/build.h"
#include "data/inspect.h"
#include "data/manifest.h"
#include "base/cliopt.h"
#include "tools/megadata.h"
#include "base/util.h"

#include <mpi.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage_main[] =
    "usage: megadata COMMAND [ARGS]\n"
    "\n"
    "Build, summarise and verify megatrain token datasets: folders of HDF5 shard files\n"
    "<split>-NNNNN.h5 (format in doc/data.md).\n"
    "\n"
    "commands:\n"
    "  build OUT_DIR INPUT...   tokenize text files (or take raw token files) into shards\n"
    "  info DIR                 summarise a dataset: splits, shards, tokens, vocabulary\n"
    "  verify DIR               read every shard to the end and check it\n"
    "  manifest DIR             check new shards and list them in DIR/manifest.h5\n"
    "  tokenizer ...            train, describe, run and time tokenizers\n"
    "\n"
    "megadata COMMAND --help tells more; megadata --version gives the version.\n";

static const char usage_build[] =
    "usage: megadata build OUT_DIR INPUT... [options]\n"
    "       mpirun -np N megadata build OUT_DIR INPUT... [options]\n"
    "\n"
    "Inputs are files, folders (walked recursively in name order; names starting with '.' are\n"
    "skipped) and glob patterns (quoted; matches in name order). A file named *.jsonl or *.ndjson\n"
    "is JSON Lines, one document a line (the string member --text-field of each line's object);\n"
    "any other file is one document of plain text; *.gz files are read through gzip. Text is\n"
    "encoded by the tokenizer (by default byte by byte: ids 0..255, vocabulary 257) and every\n"
    "document is followed by its end-of-document id (256 for bytes). Raw token files are\n"
    "little-endian uint16 or uint32 arrays, copied as they are.\n"
    "About --val-fraction of the tokens, as whole documents chosen from the seed, form the val\n"
    "split; with a single document, its last --val-fraction of tokens do.\n"
    "Under mpirun the ranks share the work; the dataset is the same for any number of ranks.\n"
    "\n"
    "options:\n"
    "  --kind text|uint16|uint32  what the inputs hold (default text)\n"
    "  --tokenizer T              text: 'bytes' (the default), a SentencePiece .model file or a\n"
    "                             Hugging Face tokenizer.json file\n"
    "  --text-field F             JSON Lines: the member holding the text (default text; a.b is\n"
    "                             member b of the object a)\n"
    "  --bos                      text: start every document with the tokenizer's BOS id\n"
    "  --on-bad-line fail|skip    JSON Lines: stop at a malformed line (the default, exit 2) or\n"
    "                             report it, skip it and count it\n"
    "  --vocab N                  raw kinds: vocabulary size; every id must be below it\n"
    "  --eod N                    raw kinds: the end-of-document id, if there is one\n"
    "  --val-fraction F           share of tokens for validation, in [0, 1) (default 0.01)\n"
    "  --shard-tokens N           tokens per shard file (default 134217728)\n"
    "  --part-bytes N             input bytes per unit of work of a rank (default 67108864)\n"
    "  --seed S                   seed for the choice of validation documents (default 1)\n"
    "  --force                    replace the shards already in OUT_DIR\n"
    "  --append                   add new shards after those already in OUT_DIR\n"
    "  --resume                   finish the interrupted build in OUT_DIR (same inputs and options)\n"
    "OUT_DIR must be empty or new unless --force, --append or --resume is given.\n";

static const char usage_info[] =
    "usage: megadata info DIR\n"
    "\n"
    "Summarise the dataset in DIR from its metadata: tokenizer, vocabulary, end-of-document id,\n"
    "and per split the shards, tokens, documents, bytes on disk and the fingerprint that\n"
    "checkpoints record.\n";

static const char usage_verify[] =
    "usage: megadata verify DIR\n"
    "\n"
    "Read every shard in DIR to the end and check it: attributes present and consistent across\n"
    "shards, every id below the vocabulary size, the checksums, increasing document offsets; and\n"
    "that DIR/manifest.h5 lists exactly these shards, with their sizes and checksums.\n"
    "Prints a summary per split (with the unigram entropy of its tokens, in nats) and one line\n"
    "per problem; exits with status 2 when there is any.\n";

static const char usage_manifest[] =
    "usage: megadata manifest DIR\n"
    "\n"
    "Bring DIR/manifest.h5, the list of the dataset's shards with their token counts and\n"
    "checksums, up to date: the shards it lists must still be there and unchanged; every other\n"
    "shard is read to the end, checked and added. megatrain reads only datasets with a manifest;\n"
    "build writes one, so this is for shards written by other programs and for datasets made\n"
    "before manifests (format version 1). Exits with status 2 on a missing or bad shard.\n";

void bad_usage(const char *cmd, const char *fmt, ...)
{
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    fail_input("%s (see megadata %s --help)", what, cmd);
}

int is_help(const char *arg) { return strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0; }

static int cmd_build(int argc, char **argv)
{
    BuildOptions o = {.kind = BUILD_TEXT, .text_field = "text", .eod = -1, .val_fraction = 0.01,
                      .shard_tokens = 134217728, .part_bytes = BUILD_PART_BYTES, .seed = 1};
    char *inputs[argc]; /* OUT_DIR and the inputs: on the stack, as bad usage exits from here */
    int ninputs = 0, options_done = 0;
    const char *v, *vocab = NULL, *eod = NULL;
    for (int i = 1; i < argc; i++) {
        if (options_done || argv[i][0] != '-' || strcmp(argv[i], "-") == 0) {
            inputs[ninputs++] = argv[i];
        } else if (is_help(argv[i])) {
            fputs(usage_build, stdout);
            exit(0);
        } else if (strcmp(argv[i], "--") == 0) {
            options_done = 1;
        } else if ((v = cliopt_value(argc, argv, &i, "--kind", NULL))) {
            if (strcmp(v, "text") == 0)
                o.kind = BUILD_TEXT;
            else if (strcmp(v, "uint16") == 0)
                o.kind = BUILD_UINT16;
            else if (strcmp(v, "uint32") == 0)
                o.kind = BUILD_UINT32;
            else
                bad_usage("build", "--kind '%s': expected text, uint16 or uint32", v);
        } else if ((v = cliopt_value(argc, argv, &i, "--tokenizer", NULL))) {
            o.tokenizer = v;
        } else if ((v = cliopt_value(argc, argv, &i, "--text-field", NULL))) {
            o.text_field = v;
        } else if (strcmp(argv[i], "--bos") == 0) {
            o.bos = 1;
        } else if ((v = cliopt_value(argc, argv, &i, "--on-bad-line", NULL))) {
            if (strcmp(v, "skip") != 0 && strcmp(v, "fail") != 0)
                bad_usage("build", "--on-bad-line '%s': expected fail or skip", v);
            o.skip_bad_lines = strcmp(v, "skip") == 0;
        } else if ((v = cliopt_value(argc, argv, &i, "--vocab", NULL))) {
            vocab = v;
        } else if ((v = cliopt_value(argc, argv, &i, "--eod", NULL))) {
            eod = v;
        } else if ((v = cliopt_value(argc, argv, &i, "--val-fraction", NULL))) {
            char *end;
            o.val_fraction = strtod(v, &end);
            if (end == v || *end || !(o.val_fraction >= 0 && o.val_fraction < 1))
                bad_usage("build", "--val-fraction '%s': expected a number in [0, 1)", v);
        } else if ((v = cliopt_value(argc, argv, &i, "--shard-tokens", NULL))) {
            o.shard_tokens = cliopt_int("--shard-tokens", v, 1, INT64_MAX / 2);
        } else if ((v = cliopt_value(argc, argv, &i, "--part-bytes", NULL))) {
            o.part_bytes = cliopt_int("--part-bytes", v, 1, INT64_MAX / 2);
        } else if ((v = cliopt_value(argc, argv, &i, "--seed", NULL))) {
            o.seed = (uint64_t)cliopt_int("--seed", v, 0, INT64_MAX);
        } else if (strcmp(argv[i], "--force") == 0) {
            o.force = 1;
        } else if (strcmp(argv[i], "--append") == 0) {
            o.append = 1;
        } else if (strcmp(argv[i], "--resume") == 0) {
            o.resume = 1;
        } else {
            bad_usage("build", "unknown option '%s'", argv[i]);
        }
    }
    if (ninputs < 2)
        bad_usage("build", "needs OUT_DIR and at least one INPUT");
    if (o.force && (o.append || o.resume))
        bad_usage("build", "--force excludes --%s", o.append ? "append" : "resume");
    if (!*o.text_field)
        bad_usage("build", "--text-field needs a member name");
    if (o.kind == BUILD_TEXT && (vocab || eod))
        bad_usage("build", "--vocab and --eod are for raw token files; text takes them from its tokenizer");
    if (o.kind != BUILD_TEXT && (o.tokenizer || o.bos))
        bad_usage("build", "--%s is for text; raw token files are copied as they are", o.bos ? "bos" : "tokenizer");
    if (o.kind != BUILD_TEXT && !vocab)
        bad_usage("build", "--kind %s needs --vocab", o.kind == BUILD_UINT16 ? "uint16" : "uint32");
    if (vocab)
        o.vocab = (int)cliopt_int("--vocab", vocab, 1, INT32_MAX);
    if (eod)
        o.eod = (int)cliopt_int("--eod", eod, -1, o.vocab - 1);
    o.out_dir = inputs[0];
    o.inputs = inputs + 1;
    o.ninputs = ninputs - 1;
    BuildSplit st[2];
    MPI_Init(NULL, NULL);
    int64_t bad = data_build(&o, st);
    const char *unit = o.kind == BUILD_TEXT ? "documents" : "files";
    if (util_world_rank() == 0) {
        if (bad)
            log_warn("%lld malformed line%s skipped (--on-bad-line skip)", (long long)bad, bad == 1 ? "" : "s");
        printf("%s: train %d shards, %lld tokens, %lld %s; val %d shards, %lld tokens, %lld %s\n", o.out_dir,
               st[0].shards, (long long)st[0].tokens, (long long)st[0].docs, unit, st[1].shards,
               (long long)st[1].tokens, (long long)st[1].docs, unit);
    }
    MPI_Finalize();
    return 0;
}

/* info, verify and manifest take exactly one folder. */
static const char *one_dir(const char *cmd, const char *usage, int argc, char **argv)
{
    const char *dir = NULL;
    for (int i = 1; i < argc; i++) {
        if (is_help(argv[i])) {
            fputs(usage, stdout);
            exit(0);
        }
        if (argv[i][0] == '-')
            bad_usage(cmd, "unknown option '%s'", argv[i]);
        if (dir)
            bad_usage(cmd, "takes one folder, got '%s' and '%s'", dir, argv[i]);
        dir = argv[i];
    }
    if (!dir)
        bad_usage(cmd, "needs the dataset folder");
    return dir;
}

int main(int argc, char **argv)
{
    util_set_progname("megadata");
    if (argc < 2) {
        fputs(usage_main, stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (is_help(cmd) || strcmp(cmd, "help") == 0) {
        fputs(usage_main, stdout);
        return 0;
    }
    if (strcmp(cmd, "--version") == 0) {
        printf("megadata (%s) %s\n", PACKAGE_NAME, PACKAGE_VERSION);
        return 0;
    }
    if (strcmp(cmd, "build") == 0)
        return cmd_build(argc - 1, argv + 1);
    if (strcmp(cmd, "tokenizer") == 0)
        return megadata_tokenizer(argc - 1, argv + 1);
    if (strcmp(cmd, "info") == 0) {
        data_info(one_dir("info", usage_info, argc - 1, argv + 1), stdout);
        return 0;
    }
    if (strcmp(cmd, "verify") == 0) {
        const char *dir = one_dir("verify", usage_verify, argc - 1, argv + 1);
        int bad = data_verify(dir, stdout, stderr);
        if (bad)
            fail_input("%s: %d error%s", dir, bad, bad == 1 ? "" : "s");
        return 0;
    }
    if (strcmp(cmd, "manifest") == 0) {
        const char *dir = one_dir("manifest", usage_manifest, argc - 1, argv + 1);
        if (data_build_unfinished(dir))
            fail_input("%s: a megadata build was interrupted here (%s/%s holds its state): its shards are not the "
                       "whole dataset; finish it with megadata build --resume",
                       dir, dir, DATASET_BUILD_DIR);
        int added = manifest_update(dir, NULL, 0);
        printf("%s/%s: %d shard%s checked and added\n", dir, MANIFEST_FILE, added, added == 1 ? "" : "s");
        return 0;
    }
    fail_input("unknown command '%s' (see megadata --help)", cmd);
}
