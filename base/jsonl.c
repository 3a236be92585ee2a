/* jsonl.c: strict JSON (RFC 8259), a line or a whole file at a time, flattened to dotted keys (see
   jsonl.h). */
#include "base/jsonl.h"

#include "base/util.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#define JSONL_MAX_DEPTH 32

typedef struct {
    const char *s, *p;  /* the line and the read position */
    const char *err;    /* first problem found, NULL while all is well */
    const char *err_at; /* where it was found */
    JsonRecord *rec;
} Parser;

static int bad(Parser *ps, const char *what)
{
    if (!ps->err) {
        ps->err = what;
        ps->err_at = ps->p;
    }
    return 0;
}

static void skip_space(Parser *ps)
{
    while (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\r' || *ps->p == '\n')
        ps->p++;
}

static void add_field(Parser *ps, const char *key, JsonKind kind, double num, char *str, size_t len)
{
    JsonRecord *r = ps->rec;
    if (r->n == r->cap) {
        r->cap = r->cap ? 2 * r->cap : 32;
        JsonField *f = xmalloc((size_t)r->cap * sizeof *f);
        if (r->n)
            memcpy(f, r->fields, (size_t)r->n * sizeof *f);
        free(r->fields);
        r->fields = f;
    }
    r->fields[r->n++] = (JsonField){xstrdup(key), kind, num, str, len};
}

static int hex4(const char *p, unsigned *v)
{
    *v = 0;
    for (int i = 0; i < 4; i++) {
        if (!isxdigit((unsigned char)p[i]))
            return 0;
        *v = *v * 16 + (unsigned)(strchr("0123456789abcdef", tolower((unsigned char)p[i])) - "0123456789abcdef");
    }
    return 1;
}

static char *put_utf8(char *o, unsigned cp)
{
    if (cp < 0x80) {
        *o++ = (char)cp;
    } else if (cp < 0x800) {
        *o++ = (char)(0xc0 | cp >> 6);
        *o++ = (char)(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
        *o++ = (char)(0xe0 | cp >> 12);
        *o++ = (char)(0x80 | (cp >> 6 & 0x3f));
        *o++ = (char)(0x80 | (cp & 0x3f));
    } else {
        *o++ = (char)(0xf0 | cp >> 18);
        *o++ = (char)(0x80 | (cp >> 12 & 0x3f));
        *o++ = (char)(0x80 | (cp >> 6 & 0x3f));
        *o++ = (char)(0x80 | (cp & 0x3f));
    }
    return o;
}

/* A string at ps->p (on its opening quote); returns it unescaped, or NULL; *len gets its length. */
static char *parse_string(Parser *ps, size_t *len)
{
    ps->p++;
    const char *end = ps->p;
    while (*end && *end != '"') /* the raw string's end: unescaping never makes text longer */
        end += end[0] == '\\' && end[1] ? 2 : 1;
    char *out = xmalloc((size_t)(end - ps->p) + 1), *o = out;
    for (;;) {
        unsigned char c = (unsigned char)*ps->p;
        if (c == '"') {
            ps->p++;
            *o = '\0';
            *len = (size_t)(o - out);
            return out;
        }
        if (c == '\0' || c < 0x20) {
            free(out);
            bad(ps, c ? "a control character escaped inside a string" : "a closing '\"' before the end of the line");
            return NULL;
        }
        if (c != '\\') {
            *o++ = (char)c;
            ps->p++;
            continue;
        }
        char e = ps->p[1];
        const char *plain = strchr("\"\\/bfnrt", e);
        if (e && plain) {
            *o++ = "\"\\/\b\f\n\r\t"[plain - "\"\\/bfnrt"];
            ps->p += 2;
            continue;
        }
        unsigned cp, lo;
        if (e != 'u' || !hex4(ps->p + 2, &cp)) {
            free(out);
            bad(ps, "a valid escape (\\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX)");
            return NULL;
        }
        ps->p += 6;
        if (cp >= 0xd800 && cp < 0xdc00 && ps->p[0] == '\\' && ps->p[1] == 'u' && hex4(ps->p + 2, &lo) &&
            lo >= 0xdc00 && lo < 0xe000) {
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            ps->p += 6;
        }
        o = put_utf8(o, cp);
    }
}

static int digits(Parser *ps)
{
    const char *start = ps->p;
    while (*ps->p >= '0' && *ps->p <= '9')
        ps->p++;
    return ps->p > start;
}

/* -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
static int parse_number(Parser *ps, double *v)
{
    const char *start = ps->p;
    if (*ps->p == '-')
        ps->p++;
    if (*ps->p == '0')
        ps->p++;
    else if (!digits(ps))
        return bad(ps, "a value (number, string, true, false, null, object or array)");
    if (*ps->p == '.') {
        ps->p++;
        if (!digits(ps))
            return bad(ps, "digits after the decimal point");
    }
    if (*ps->p == 'e' || *ps->p == 'E') {
        ps->p++;
        if (*ps->p == '+' || *ps->p == '-')
            ps->p++;
        if (!digits(ps))
            return bad(ps, "digits in the exponent");
    }
    *v = strtod(start, NULL);
    return 1;
}

static int parse_value(Parser *ps, const char *key, int depth);

/* An object or array at ps->p; members are stored under "key.member" / "key.index". */
static int parse_container(Parser *ps, const char *key, int depth)
{
    int object = *ps->p == '{';
    char close = object ? '}' : ']';
    if (depth >= JSONL_MAX_DEPTH)
        return bad(ps, "less nesting");
    ps->p++;
    skip_space(ps);
    if (*ps->p == close) {
        ps->p++;
        return 1;
    }
    for (int index = 0;; index++) {
        char *name;
        if (object) {
            skip_space(ps);
            if (*ps->p != '"')
                return bad(ps, "a member name in double quotes");
            size_t len;
            char *member = parse_string(ps, &len);
            if (!member)
                return 0;
            skip_space(ps);
            if (*ps->p != ':') {
                free(member);
                return bad(ps, "':' after the member name");
            }
            ps->p++;
            name = *key ? xasprintf("%s.%s", key, member) : member;
            if (*key)
                free(member);
        } else {
            name = xasprintf("%s.%d", key, index);
        }
        int ok = parse_value(ps, name, depth + 1);
        free(name);
        if (!ok)
            return 0;
        skip_space(ps);
        if (*ps->p == close) {
            ps->p++;
            return 1;
        }
        if (*ps->p != ',')
            return bad(ps, object ? "',' or '}' after a member" : "',' or ']' after an element");
        ps->p++;
    }
}

static int parse_value(Parser *ps, const char *key, int depth)
{
    skip_space(ps);
    const char *p = ps->p;
    if (*p == '{' || *p == '[')
        return parse_container(ps, key, depth);
    if (*p == '"') {
        size_t len;
        char *s = parse_string(ps, &len);
        if (s)
            add_field(ps, key, JSON_STRING, 0, s, len);
        return s != NULL;
    }
    static const struct {
        const char *word;
        JsonKind kind;
        double num;
    } words[] = {{"true", JSON_BOOL, 1}, {"false", JSON_BOOL, 0}, {"null", JSON_NULL, 0}};
    for (int i = 0; i < 3; i++)
        if (!strncmp(p, words[i].word, strlen(words[i].word))) {
            ps->p += strlen(words[i].word);
            add_field(ps, key, words[i].kind, words[i].num, NULL, 0);
            return 1;
        }
    double v;
    if (!parse_number(ps, &v))
        return 0;
    add_field(ps, key, JSON_NUMBER, v, NULL, 0);
    return 1;
}

static void clear(JsonRecord *rec)
{
    for (int i = 0; i < rec->n; i++) {
        free(rec->fields[i].key);
        free(rec->fields[i].str);
    }
    rec->n = 0;
}

const char *jsonl_parse(const char *line, JsonRecord *rec, int *col)
{
    clear(rec);
    Parser ps = {line, line, NULL, NULL, rec};
    skip_space(&ps);
    if (*ps.p != '{')
        bad(&ps, "a JSON object ('{') on every line");
    else if (parse_container(&ps, "", 0)) {
        skip_space(&ps);
        if (*ps.p)
            bad(&ps, "the end of the line after the object");
    }
    if (!ps.err)
        return NULL;
    *col = (int)(ps.err_at - line) + 1;
    clear(rec);
    return ps.err;
}

const JsonField *jsonl_get(const JsonRecord *rec, const char *key)
{
    for (int i = 0; i < rec->n; i++)
        if (!strcmp(rec->fields[i].key, key))
            return &rec->fields[i];
    return NULL;
}

void jsonl_free(JsonRecord *rec)
{
    clear(rec);
    free(rec->fields);
    rec->fields = NULL;
    rec->cap = 0;
}
