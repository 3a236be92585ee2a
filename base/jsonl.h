/* jsonl.h: a small reader for JSON Lines records such as megatrain's metrics logs, and for whole
   JSON files (a tokenizer.json). Each line is one JSON object; nested objects are flattened to
   dotted keys ("config.data.seq_len", "comm_ms.dp") and array elements get their index ("a.0"), so
   a record is a flat list of scalar fields. A member name may itself hold dots: read such fields by
   their prefix. */
#ifndef MEGATRAIN_JSONL_H
#define MEGATRAIN_JSONL_H

#include <stddef.h>

typedef enum { JSON_NULL, JSON_BOOL, JSON_NUMBER, JSON_STRING } JsonKind;

typedef struct {
    char *key; /* dotted path from the top-level object */
    JsonKind kind;
    double num; /* JSON_NUMBER, and JSON_BOOL as 0/1 */
    char *str;  /* JSON_STRING (UTF-8), else NULL */
    size_t len; /* JSON_STRING: its bytes, which may include NULs written as \u0000 */
} JsonField;

typedef struct {
    JsonField *fields;
    int n, cap;
} JsonRecord;

/* Parse one line (without its newline; a whole file's newlines are white space) into rec, replacing what it held. Returns NULL when the line
   is one JSON object, else what was expected, with *col set to the 1-based column of the problem. */
const char *jsonl_parse(const char *line, JsonRecord *rec, int *col);
/* The field with this dotted key, or NULL. */
const JsonField *jsonl_get(const JsonRecord *rec, const char *key);
void jsonl_free(JsonRecord *rec);

#endif
