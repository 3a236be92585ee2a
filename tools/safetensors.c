/* safetensors.c: reading and writing safetensors files (see safetensors.h). */
#include "tools/safetensors.h"

#include "base/util.h"
#include "base/jsonl.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <stdnoreturn.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define HEADER_MAX (100u << 20) /* the reference implementation's limit on N */

/* ---- reading ---- */

static size_t dtype_size(const char *d)
{
    static const char *names[] = {"BOOL", "U8", "I8", "F8_E4M3", "F8_E5M2", "U16", "I16", "F16",
                                  "BF16", "U32", "I32", "F32", "U64", "I64", "F64"};
    static const size_t sizes[] = {1, 1, 1, 1, 1, 2, 2, 2, 2, 4, 4, 4, 8, 8, 8};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        if (!strcmp(d, names[i]))
            return sizes[i];
    return 0;
}

/* Little-endian unsigned 64-bit value of 8 bytes. */
static uint64_t le64(const unsigned char *b)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | b[i];
    return v;
}

enum { FIELD_DTYPE, FIELD_SHAPE, FIELD_OFFSETS }; /* key_split's suffixes, in this order */

/* The tensor a flattened header key belongs to, and which of its fields it is: its length before
   ".dtype", ".shape.K" or ".data_offsets.K" (0 when none), with the FIELD_ in *field, K in *index. */
static size_t key_split(const char *key, int *field, int *index)
{
    const char *suffixes[] = {".dtype", ".shape.", ".data_offsets."};
    for (const char *p = strchr(key, '.'); p; p = strchr(p + 1, '.'))
        for (int s = 0; s < 3; s++) {
            size_t n = strlen(suffixes[s]);
            if (strncmp(p, suffixes[s], n))
                continue;
            char *end;
            long k = s ? strtol(p + n, &end, 10) : 0;
            if (s ? (end == p + n || *end || k < 0) : p[n] != '\0')
                continue;
            *field = s;
            *index = (int)k;
            return (size_t)(p - key);
        }
    return 0;
}

static noreturn void bad_file(const SafeTensors *st, const char *what, const char *name)
{
    fail_input("%s: not a valid safetensors file: %s%s%s", st->path, what, name ? ": " : "", name ? name : "");
}

/* Fill the tensor table from the parsed header. */
static void read_entries(SafeTensors *st, const JsonRecord *rec, uint64_t data_len)
{
    st->t = xcalloc((size_t)rec->n + 1, sizeof *st->t);
    int *offsets = xcalloc((size_t)rec->n + 1, sizeof(int)); /* data_offsets elements seen */
    for (int i = 0; i < rec->n; i++) {
        const JsonField *f = &rec->fields[i];
        if (!strncmp(f->key, "__metadata__.", 13)) {
            if (f->kind != JSON_STRING)
                bad_file(st, "a __metadata__ value that is not a string", f->key);
            continue;
        }
        int field, k;
        size_t len = key_split(f->key, &field, &k);
        if (!len)
            bad_file(st, "an entry that is not {dtype, shape, data_offsets}", f->key);
        SafeTensor *t = st->n ? &st->t[st->n - 1] : NULL;
        if (!t || strlen(t->name) != len || strncmp(t->name, f->key, len)) {
            t = &st->t[st->n++];
            t->name = xmalloc(len + 1);
            memcpy(t->name, f->key, len);
            t->name[len] = '\0';
            t->ndim = -1; /* the last shape element read */
        }
        if (field == FIELD_DTYPE) {
            if (f->kind != JSON_STRING || t->dtype)
                bad_file(st, "a dtype that is not one string", t->name);
            t->dtype = xstrdup(f->str);
        } else if (f->kind != JSON_NUMBER || !(f->num >= 0 && f->num <= 9007199254740992.0) ||
                   f->num != (double)(uint64_t)f->num) {
            bad_file(st, "shape and data_offsets must hold non-negative integers", t->name);
        } else if (field == FIELD_SHAPE) {
            if (k != t->ndim + 1 || k >= SAFETENSORS_MAXDIM)
                bad_file(st, "a shape of too many dimensions", t->name);
            t->shape[t->ndim = k] = (int64_t)f->num;
        } else if (k == offsets[st->n - 1] && k < 2) {
            *(k ? &t->end : &t->begin) = (uint64_t)f->num;
            offsets[st->n - 1]++;
        } else {
            bad_file(st, "data_offsets must be [begin, end]", t->name);
        }
    }
    for (int i = 0; i < st->n; i++) {
        SafeTensor *t = &st->t[i];
        t->ndim += 1;
        if (!t->dtype || !dtype_size(t->dtype))
            bad_file(st, "a missing or unknown dtype", t->name);
        uint64_t bytes = dtype_size(t->dtype);
        for (int k = 0; k < t->ndim; k++)
            bytes *= (uint64_t)t->shape[k];
        if (offsets[i] != 2 || t->end < t->begin || t->end - t->begin != bytes || t->end > data_len)
            bad_file(st, "data_offsets missing, not matching dtype and shape, or beyond the end of the file "
                         "(truncated?)", t->name);
        for (int j = 0; j < i; j++)
            if (!strcmp(st->t[j].name, t->name))
                bad_file(st, "a tensor named twice", t->name);
            else if (t->begin < st->t[j].end && st->t[j].begin < t->end)
                bad_file(st, "overlapping data of two tensors", t->name);
    }
    free(offsets);
}

void safetensors_open(SafeTensors *st, const char *path)
{
    memset(st, 0, sizeof *st);
    st->path = xstrdup(path);
    if (!(st->f = fopen(path, "rb")))
        fail_input("%s: cannot open: %s", path, strerror(errno));
    unsigned char len8[8];
    if (fread(len8, 1, 8, st->f) != 8)
        bad_file(st, "shorter than the 8-byte header length", NULL);
    uint64_t n = le64(len8);
    if (fseeko(st->f, 0, SEEK_END) != 0)
        fail_input("%s: cannot seek: %s", path, strerror(errno));
    uint64_t size = (uint64_t)ftello(st->f);
    if (n < 2 || n > HEADER_MAX || n > size - 8)
        bad_file(st, "the header length (first 8 bytes) is out of range", NULL);
    char *header = xmalloc(n + 1);
    if (fseeko(st->f, 8, SEEK_SET) != 0 || fread(header, 1, n, st->f) != n)
        bad_file(st, "cannot read the header", NULL);
    header[n] = '\0';
    if (strlen(header) != n)
        bad_file(st, "a NUL byte in the header", NULL);
    JsonRecord rec = {0};
    int col;
    const char *want = jsonl_parse(header, &rec, &col);
    if (want) {
        char *where = xasprintf("byte %d of the JSON header: expected %s", col, want);
        bad_file(st, where, NULL);
    }
    st->data0 = 8 + n;
    read_entries(st, &rec, size - st->data0);
    jsonl_free(&rec);
    free(header);
}

void safetensors_close(SafeTensors *st)
{
    for (int i = 0; i < st->n; i++) {
        free(st->t[i].name);
        free(st->t[i].dtype);
    }
    free(st->t);
    free(st->path);
    if (st->f)
        fclose(st->f);
    memset(st, 0, sizeof *st);
}

const SafeTensor *safetensors_find(const SafeTensors *st, const char *name)
{
    for (int i = 0; i < st->n; i++)
        if (!strcmp(st->t[i].name, name))
            return &st->t[i];
    return NULL;
}

/* Byte order of float32 data in the file is little-endian; swap on a big-endian host. */
static void float_le(float *x, size_t n)
{
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &x[i], 4);
        u = __builtin_bswap32(u);
        memcpy(&x[i], &u, 4);
    }
#else
    (void)x;
    (void)n;
#endif
}

void safetensors_read_f32(const SafeTensors *st, const SafeTensor *t, float *out)
{
    if (strcmp(t->dtype, "F32"))
        fail_input("%s: tensor %s has dtype %s; megackpt reads F32 (float32) tensors", st->path, t->name, t->dtype);
    size_t n = (size_t)(t->end - t->begin) / sizeof(float);
    if (fseeko(st->f, (off_t)(st->data0 + t->begin), SEEK_SET) != 0 || fread(out, sizeof(float), n, st->f) != n)
        fail_input("%s: cannot read tensor %s (truncated file?)", st->path, t->name);
    float_le(out, n);
}

/* ---- writing ---- */

static void json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *c = (const unsigned char *)s; *c; c++)
        if (*c == '"' || *c == '\\')
            fprintf(f, "\\%c", *c);
        else if (*c == '\n')
            fputs("\\n", f);
        else if (*c < 0x20)
            fprintf(f, "\\u%04x", *c);
        else
            fputc(*c, f);
    fputc('"', f);
}

static size_t spec_numel(const SafeTensorSpec *s)
{
    size_t n = 1;
    for (int k = 0; k < s->ndim; k++)
        n *= (size_t)s->shape[k];
    return n;
}

/* The header, padded with spaces to a multiple of 8 bytes; *len its length. */
static char *header_text(const SafeTensorSpec *specs, int n, const char *const *metadata, size_t *len)
{
    char *text;
    FILE *f = open_memstream(&text, len);
    if (!f)
        fail("open_memstream: %s", strerror(errno));
    fputs("{\"__metadata__\":{", f);
    for (int i = 0; metadata && metadata[i]; i += 2) {
        fputs(i ? "," : "", f);
        json_string(f, metadata[i]);
        fputc(':', f);
        json_string(f, metadata[i + 1]);
    }
    fputc('}', f);
    uint64_t at = 0;
    for (int i = 0; i < n; i++) {
        uint64_t bytes = sizeof(float) * spec_numel(&specs[i]);
        fputc(',', f);
        json_string(f, specs[i].name);
        fputs(":{\"dtype\":\"F32\",\"shape\":[", f);
        for (int k = 0; k < specs[i].ndim; k++)
            fprintf(f, "%s%lld", k ? "," : "", (long long)specs[i].shape[k]);
        fprintf(f, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)at, (unsigned long long)(at + bytes));
        at += bytes;
    }
    fputc('}', f);
    while (ftell(f) % 8)
        fputc(' ', f);
    fclose(f);
    return text;
}

/* Only a regular file may be replaced: never a device, a FIFO, a folder or a symlink (nor its target). */
static void check_replaceable(const char *path)
{
    struct stat sb;
    if (lstat(path, &sb) != 0 || S_ISREG(sb.st_mode))
        return;
    const char *kind = S_ISDIR(sb.st_mode)    ? "a folder"
                       : S_ISLNK(sb.st_mode)  ? "a symbolic link"
                       : S_ISFIFO(sb.st_mode) ? "a FIFO"
                       : S_ISSOCK(sb.st_mode) ? "a socket"
                                              : "a device";
    fail_input("%s is %s: only a regular file is replaced; give the path of a new or a regular file", path, kind);
}

/* A failed write (a full disk): the temporary file goes too. */
static noreturn void write_failed(const char *tmp)
{
    const int e = errno;
    unlink(tmp);
    fail_input("%s: cannot write: %s", tmp, strerror(e));
}

void safetensors_write(const char *path, const SafeTensorSpec *specs, int n, const char *const *metadata,
                       void (*fill)(void *ctx, int i, float *out), void *ctx)
{
    size_t len, most = 1;
    char *tmp = xasprintf("%s.tmp", path);
    check_replaceable(path);
    check_replaceable(tmp);
    unlink(tmp); /* a leftover of an export that did not finish: written afresh, never through */
    const int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0666);
    FILE *f = fd < 0 ? NULL : fdopen(fd, "wb");
    if (!f)
        fail_input("%s: cannot create: %s", tmp, strerror(errno));
    char *header = header_text(specs, n, metadata, &len);
    unsigned char len8[8];
    for (int i = 0; i < 8; i++)
        len8[i] = (unsigned char)((uint64_t)len >> (8 * i));
    int ok = fwrite(len8, 1, 8, f) == 8 && fwrite(header, 1, len, f) == len;
    for (int i = 0; i < n; i++)
        most = spec_numel(&specs[i]) > most ? spec_numel(&specs[i]) : most;
    float *buf = xmalloc(most * sizeof(float));
    for (int i = 0; i < n && ok; i++) {
        size_t numel = spec_numel(&specs[i]);
        fill(ctx, i, buf);
        float_le(buf, numel);
        ok = fwrite(buf, sizeof(float), numel, f) == numel;
    }
    ok = ok && fflush(f) == 0 && fsync(fileno(f)) == 0;
    if (fclose(f) != 0 || !ok)
        write_failed(tmp);
    check_replaceable(path); /* again: the export took a while */
    if (rename(tmp, path) != 0)
        fail_input("%s: cannot rename to %s: %s", tmp, path, strerror(errno));
    free(buf);
    free(tmp);
    free(header);
}
