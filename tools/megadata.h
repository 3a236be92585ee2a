/* megadata.h: what megadata's command files share. */
#ifndef MEGATRAIN_MEGADATA_H
#define MEGATRAIN_MEGADATA_H

#include <stdnoreturn.h>

/* Bad usage of `megadata CMD`: the message and a pointer to `megadata CMD --help`, exit 2. */
noreturn void bad_usage(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int is_help(const char *arg);
/* `megadata tokenizer ...`, argv[0] being "tokenizer" */
int megadata_tokenizer(int argc, char **argv);

#endif
