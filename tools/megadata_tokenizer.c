/* megadata_tokenizer.c: `megadata tokenizer`: train a SentencePiece BPE model (through spm_train),
   describe a tokenizer, encode files with it, decode ids, and time it (doc/data.md). */
#include "tools/megadata.h"

#include "data/corpus.h"
#include "data/docread.h"
#include "data/infile.h"
#include "data/tokenizer.h"
#include "base/cliopt.h"
#include "base/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static const char usage_tokenizer[] =
    "usage: megadata tokenizer train|info|encode|decode|bench ...\n"
    "\n"
    "  train OUT.model INPUT...  train a SentencePiece BPE model with byte fallback (LLaMA-2's settings)\n"
    "  info T                    a tokenizer's kind, vocabulary, BOS and EOS ids and checksum\n"
    "  encode T FILE...          print the ids of each file (one document), a line per file\n"
    "  decode T FILE...          print the text of the ids in the files\n"
    "  bench T FILE...           time the encoding of the files (one document each), on one core\n"
    "T is 'bytes', a SentencePiece .model file or a Hugging Face tokenizer.json file.\n"
    "megadata tokenizer COMMAND --help tells more.\n";

static const char usage_train[] =
    "usage: megadata tokenizer train OUT.model INPUT... [options]\n"
    "\n"
    "Train a SentencePiece BPE model with byte fallback on the text of INPUT (files, folders and\n"
    "patterns, plain text and JSON Lines, gzip or not, as megadata build takes them; a line is a\n"
    "sentence; longer lines than --max-sentence-length are skipped) with LLaMA-2's settings:\n"
    "split digits, whitespace-only pieces allowed, no normalization (identity), extra spaces\n"
    "kept, unk/bos/eos ids 0/1/2. It runs SentencePiece's spm_train (Debian package\n"
    "sentencepiece) and writes OUT.model.\n"
    "\n"
    "options:\n"
    "  --vocab N                  vocabulary size (default 32000)\n"
    "  --text-field F             JSON Lines: the member holding the text (default text)\n"
    "  --character-coverage F     share of characters the pieces cover (default 0.99995)\n"
    "  --sentences N              lines sampled for training, 0 for all (default 200000000)\n"
    "  --max-sentence-length N    longest line used, in bytes (default 4192)\n"
    "  --seed S                   seed of the sampling (default 1)\n"
    "  --threads N                training threads (default: the online cores)\n"
    "  --spm-option NAME=VALUE    pass --NAME=VALUE on to spm_train (after the settings above)\n"
    "  --verbose                  show spm_train's progress log\n";

static const char usage_info[] =
    "usage: megadata tokenizer info T\n"
    "\n"
    "Print the kind of tokenizer T, its vocabulary size, BOS and EOS ids (-1: none) and the\n"
    "checksum that datasets record (FNV-1a 64 of the file).\n";

static const char usage_encode[] =
    "usage: megadata tokenizer encode T FILE...\n"
    "\n"
    "Encode each FILE as one document (no BOS or EOS added) and print its ids on one line,\n"
    "separated by spaces.\n";

static const char usage_decode[] =
    "usage: megadata tokenizer decode T FILE...\n"
    "\n"
    "Print the text of the ids in each FILE (numbers separated by white space, as encode prints\n"
    "them), the files one after the other: each id's bytes, nothing between them. An id after\n"
    "none, BOS or EOS starts a document (a SentencePiece dummy-prefix space is left out).\n";

static const char usage_bench[] =
    "usage: megadata tokenizer bench T FILE...\n"
    "\n"
    "Encode each FILE as one document with tokenizer T, freshly loaded (so its cache starts\n"
    "empty), on this one thread, and print the bytes, tokens, seconds and MB/s (10^6 bytes a\n"
    "second). tools/tokenizer-bench.sh runs it beside the reference encoders.\n";

/* The command takes operands only, at least min of them; --help prints its usage. */
static void tok_args(const char *cmd, const char *usage, int argc, char **argv, int min)
{
    for (int i = 1; i < argc; i++) {
        if (is_help(argv[i])) {
            fputs(usage, stdout);
            exit(0);
        }
        if (argv[i][0] == '-' && argv[i][1])
            bad_usage(cmd, "unknown option '%s'", argv[i]);
    }
    if (argc - 1 < min)
        bad_usage(cmd, "needs %s", min == 1 ? "the tokenizer" : "the tokenizer and at least one file");
}

static int tok_info(int argc, char **argv)
{
    tok_args("tokenizer info", usage_info, argc, argv, 1);
    if (argc != 2)
        bad_usage("tokenizer info", "takes one tokenizer");
    Tokenizer *t = tokenizer_open(argv[1]);
    printf("kind      %s\nvocab     %d\nbos       %d\neos       %d\nchecksum  %016llx\n", tokenizer_name(t),
           tokenizer_vocab(t), tokenizer_bos(t), tokenizer_eos(t), (unsigned long long)tokenizer_checksum(t));
    tokenizer_free(t);
    return 0;
}

static int tok_encode(int argc, char **argv)
{
    tok_args("tokenizer encode", usage_encode, argc, argv, 2);
    Tokenizer *t = tokenizer_open(argv[1]);
    TokenBuf ids = {0};
    for (int f = 2; f < argc; f++) {
        size_t len;
        char *text = util_read_file(argv[f], &len);
        ids.n = 0;
        tokenizer_encode(t, text, len, &ids);
        for (size_t i = 0; i < ids.n; i++)
            printf(i ? " %u" : "%u", ids.ids[i]);
        putchar('\n');
        free(text);
    }
    token_buf_free(&ids);
    tokenizer_free(t);
    if (fflush(stdout) != 0)
        fail("cannot write the ids: %s", strerror(errno));
    return 0;
}

/* The text of the ids in file path, prev the id before them (-1: none); returns the last. */
static int64_t tok_decode_file(const Tokenizer *t, const char *path, int64_t prev)
{
    size_t size;
    char *text = util_read_file(path, &size), *p = text, *end;
    for (;;) {
        p += strspn(p, " \t\r\n");
        if (!*p)
            break;
        errno = 0;
        long long id = strtoll(p, &end, 10);
        if (end == p || errno || id < 0 || id >= tokenizer_vocab(t) || (*end && !strchr(" \t\r\n", *end))) {
            const ptrdiff_t at = p - text;
            free(text);
            fail_input("%s: at byte %td: expected an id from 0 to %d", path, at, tokenizer_vocab(t) - 1);
        }
        size_t len;
        const char *piece = tokenizer_piece(t, prev, id, &len);
        fwrite(piece, 1, len, stdout);
        prev = id;
        p = end;
    }
    free(text);
    return prev;
}

static int tok_decode(int argc, char **argv)
{
    tok_args("tokenizer decode", usage_decode, argc, argv, 2);
    Tokenizer *t = tokenizer_open(argv[1]);
    int64_t prev = -1;
    for (int f = 2; f < argc; f++)
        prev = tok_decode_file(t, argv[f], prev);
    tokenizer_free(t);
    if (fflush(stdout) != 0)
        fail("cannot write the text: %s", strerror(errno));
    return 0;
}

static int tok_bench(int argc, char **argv)
{
    tok_args("tokenizer bench", usage_bench, argc, argv, 2);
    int n = argc - 2;
    char **text = xmalloc((size_t)n * sizeof *text);
    size_t *len = xmalloc((size_t)n * sizeof *len), bytes = 0;
    for (int f = 0; f < n; f++) {
        text[f] = util_read_file(argv[f + 2], &len[f]);
        bytes += len[f];
    }
    double t0 = util_now();
    Tokenizer *t = tokenizer_open(argv[1]);
    double t1 = util_now();
    TokenBuf ids = {0};
    size_t tokens = 0;
    for (int f = 0; f < n; f++) {
        ids.n = 0;
        tokenizer_encode(t, text[f], len[f], &ids);
        tokens += ids.n;
    }
    double t2 = util_now();
    printf("megadata %s: %zu bytes, %d documents, %zu tokens, %.3f s (load %.3f s), %.2f MB/s\n", tokenizer_name(t),
           bytes, n, tokens, t2 - t1, t1 - t0, (double)bytes / 1e6 / (t2 - t1));
    for (int f = 0; f < n; f++)
        free(text[f]);
    free(text);
    free(len);
    token_buf_free(&ids);
    tokenizer_free(t);
    return 0;
}

/* Runs argv (argv[0] looked up on PATH), its output to stderr; returns its exit status (127:
   not found). */
static int tok_run(char **argv)
{
    pid_t pid = fork();
    if (pid < 0)
        fail("cannot start %s: %s", argv[0], strerror(errno));
    if (pid == 0) {
        if (dup2(2, 1) < 0)
            _exit(126);
        execvp(argv[0], argv);
        _exit(errno == ENOENT ? 127 : 126);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            fail("waiting for %s: %s", argv[0], strerror(errno));
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

typedef struct {
    const char *out; /* OUT.model */
    char **inputs;
    int ninputs;
    long long vocab, sentences, max_len, seed, threads;
    const char *coverage, *text_field;
    char **extra; /* spm_train options (--NAME=VALUE) */
    int nextra, verbose;
} TrainOptions;

static void tok_train_options(int argc, char **argv, TrainOptions *o)
{
    const char *cmd = "tokenizer train", *v;
    *o = (TrainOptions){.vocab = 32000, .sentences = 200000000, .max_len = 4192, .seed = 1,
                        .threads = sysconf(_SC_NPROCESSORS_ONLN), .coverage = "0.99995", .text_field = "text"};
    o->inputs = xmalloc((size_t)argc * sizeof *o->inputs);
    o->extra = xmalloc((size_t)argc * sizeof *o->extra);
    for (int i = 1; i < argc; i++) {
        if (argv[i][0] != '-') {
            o->inputs[o->ninputs++] = argv[i];
        } else if (is_help(argv[i])) {
            fputs(usage_train, stdout);
            exit(0);
        } else if ((v = cliopt_value(argc, argv, &i, "--vocab", NULL))) {
            o->vocab = cliopt_int("--vocab", v, 260, INT32_MAX);
        } else if ((v = cliopt_value(argc, argv, &i, "--text-field", NULL))) {
            o->text_field = v;
        } else if ((v = cliopt_value(argc, argv, &i, "--character-coverage", NULL))) {
            char *end;
            double c = strtod(v, &end);
            if (end == v || *end || !(c > 0 && c <= 1))
                bad_usage(cmd, "--character-coverage '%s': expected a number in (0, 1]", v);
            o->coverage = v;
        } else if ((v = cliopt_value(argc, argv, &i, "--sentences", NULL))) {
            o->sentences = cliopt_int("--sentences", v, 0, INT64_MAX);
        } else if ((v = cliopt_value(argc, argv, &i, "--max-sentence-length", NULL))) {
            o->max_len = cliopt_int("--max-sentence-length", v, 1, INT32_MAX);
        } else if ((v = cliopt_value(argc, argv, &i, "--seed", NULL))) {
            o->seed = cliopt_int("--seed", v, 0, UINT32_MAX - 1);
        } else if ((v = cliopt_value(argc, argv, &i, "--threads", NULL))) {
            o->threads = cliopt_int("--threads", v, 1, 1024);
        } else if ((v = cliopt_value(argc, argv, &i, "--spm-option", NULL))) {
            if (!strchr(v, '=') || v[0] == '=' || v[0] == '-')
                bad_usage(cmd, "--spm-option '%s': expected NAME=VALUE", v);
            o->extra[o->nextra++] = xasprintf("--%s", v);
        } else if (strcmp(argv[i], "--verbose") == 0) {
            o->verbose = 1;
        } else {
            bad_usage(cmd, "unknown option '%s'", argv[i]);
        }
    }
    if (o->ninputs < 2)
        bad_usage(cmd, "needs OUT.model and at least one input file");
    o->out = o->inputs[0];
    o->inputs++;
    o->ninputs--;
    size_t n = strlen(o->out);
    if (n < 7 || strcmp(o->out + n - 6, ".model") != 0)
        bad_usage(cmd, "'%s': the output's name must end in .model", o->out);
}

static char *train_text; /* the documents of JSON Lines and gzip inputs as text, removed at exit */

static void tok_train_remove_text(void) { unlink(train_text); }

static void tok_train_doc(void *ctx, const char *text, size_t len, int64_t disk)
{
    FILE *f = ctx;
    if (fwrite(text, 1, len, f) != len || putc('\n', f) == EOF)
        fail("writing the training text: %s", strerror(errno));
}

/* --input=A,B,...: the inputs' files in megadata build's order. Plain text files go to spm_train
   as they are; the documents of JSON Lines and gzip files, a line each (their own lines kept), go
   through the file train_text (created only for them). Names with a comma (spm_train's
   separator) are refused. */
static char *tok_train_input(const TrainOptions *o)
{
    const char *text = train_text;
    Corpus c;
    corpus_list(&c, o->inputs, o->ninputs, 0);
    if (c.nfiles == 0)
        fail_input("%s: no input file there (names starting with '.' are skipped)", o->inputs[0]);
    DocReader r = {.text_field = o->text_field};
    FILE *f = NULL;
    size_t len = strlen(text) + 1;
    for (int i = 0; i < c.nfiles; i++) {
        const CorpusFile *cf = &c.files[i];
        if (cf->kind == CORPUS_TEXT && !infile_is_gz(cf->path)) {
            if (strchr(cf->path, ','))
                fail_input("%s: spm_train cannot take a file name with a comma", cf->path);
            len += strlen(cf->path) + 1;
            continue;
        }
        if (!f && (atexit(tok_train_remove_text) != 0 || !(f = fopen(text, "wb"))))
            fail_input("%s: cannot write: %s", text, strerror(errno));
        docread_file(&r, cf, 0, INT64_MAX, tok_train_doc, f);
    }
    if (f && fclose(f) != 0)
        fail_input("%s: cannot write: %s", text, strerror(errno));
    char *input = xmalloc(len + 8), *p = input + sprintf(input, "--input=");
    const char *sep = "";
    for (int i = 0; i < c.nfiles; i++)
        if (c.files[i].kind == CORPUS_TEXT && !infile_is_gz(c.files[i].path)) {
            p += sprintf(p, "%s%s", sep, c.files[i].path);
            sep = ",";
        }
    if (f)
        sprintf(p, "%s%s", sep, text);
    corpus_free(&c);
    return input;
}

/* spm_train writes PREFIX.model and PREFIX.vocab under a temporary prefix beside OUT: OUT appears,
   by a rename, only once spm_train succeeded; the .vocab listing is removed, and so is the text of
   JSON Lines and gzip inputs (PREFIX.txt). */
static int tok_train(int argc, char **argv)
{
    static const char *llama2[] = {
        "--model_type=bpe", "--byte_fallback=true", "--split_digits=true", "--split_by_unicode_script=true",
        "--split_by_whitespace=true", "--split_by_number=true", "--allow_whitespace_only_pieces=true",
        "--normalization_rule_name=identity", "--remove_extra_whitespaces=false", "--add_dummy_prefix=true",
        "--max_sentencepiece_length=16", "--shuffle_input_sentence=true", "--unk_id=0", "--bos_id=1", "--eos_id=2",
        "--pad_id=-1", "--unk_surface= \xe2\x81\x87 ", "--hard_vocab_limit=true",
        "--vocabulary_output_piece_score=true"};
    enum { NLLAMA2 = sizeof llama2 / sizeof *llama2 };
    TrainOptions o;
    tok_train_options(argc, argv, &o);
    char *tmp = xasprintf("%.*s.tmp%d", (int)(strlen(o.out) - 6), o.out, (int)getpid());
    char **args = xmalloc((size_t)(NLLAMA2 + o.nextra + 12) * sizeof *args);
    int n = 0;
    args[n++] = "spm_train";
    train_text = xasprintf("%s.txt", tmp);
    args[n++] = tok_train_input(&o);
    args[n++] = xasprintf("--model_prefix=%s", tmp);
    for (int k = 0; k < NLLAMA2; k++)
        args[n++] = xstrdup(llama2[k]);
    args[n++] = xasprintf("--vocab_size=%lld", o.vocab);
    args[n++] = xasprintf("--character_coverage=%s", o.coverage);
    args[n++] = xasprintf("--input_sentence_size=%lld", o.sentences);
    args[n++] = xasprintf("--max_sentence_length=%lld", o.max_len);
    args[n++] = xasprintf("--random_seed=%lld", o.seed);
    args[n++] = xasprintf("--num_threads=%lld", o.threads);
    for (int k = 0; k < o.nextra; k++) /* after the settings above, so that they win */
        args[n++] = o.extra[k];
    args[n++] = xstrdup(o.verbose ? "--minloglevel=0" : "--minloglevel=2");
    args[n] = NULL;
    int rc = tok_run(args);
    for (int k = 1; k < n; k++)
        free(args[k]);
    free(args);
    char *tmp_model = xasprintf("%s.model", tmp), *tmp_vocab = xasprintf("%s.vocab", tmp);
    unlink(tmp_vocab);
    if (rc == 127)
        fail("spm_train not found on PATH: install SentencePiece's programs (Debian and Ubuntu package "
             "sentencepiece; tools/install-deps.sh installs it)");
    if (rc != 0) {
        unlink(tmp_model);
        fail_input("%s: spm_train failed (exit status %d; its messages are above)", o.out, rc);
    }
    if (rename(tmp_model, o.out) != 0)
        fail("%s: cannot rename %s to it: %s", o.out, tmp_model, strerror(errno));
    Tokenizer *t = tokenizer_open(o.out);
    printf("%s: SentencePiece BPE, vocabulary %d, bos %d, eos %d\n", o.out, tokenizer_vocab(t), tokenizer_bos(t),
           tokenizer_eos(t));
    tokenizer_free(t);
    free(tmp);
    free(tmp_model);
    free(tmp_vocab);
    free(o.inputs - 1);
    free(o.extra);
    return 0;
}

int megadata_tokenizer(int argc, char **argv)
{
    if (argc < 2) {
        fputs(usage_tokenizer, stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (is_help(cmd)) {
        fputs(usage_tokenizer, stdout);
        return 0;
    }
    if (strcmp(cmd, "train") == 0)
        return tok_train(argc - 1, argv + 1);
    if (strcmp(cmd, "info") == 0)
        return tok_info(argc - 1, argv + 1);
    if (strcmp(cmd, "encode") == 0)
        return tok_encode(argc - 1, argv + 1);
    if (strcmp(cmd, "decode") == 0)
        return tok_decode(argc - 1, argv + 1);
    if (strcmp(cmd, "bench") == 0)
        return tok_bench(argc - 1, argv + 1);
    fail_input("unknown command 'tokenizer %s' (see megadata tokenizer --help)", cmd);
}
