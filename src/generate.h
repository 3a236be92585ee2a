/* generate.h: `megatrain generate`: text sampled from a checkpoint one token at a time through
   recurrent decoding (src/decode.h), streamed as it comes (doc/eval.md). */
#ifndef MEGATRAIN_GENERATE_H
#define MEGATRAIN_GENERATE_H

/* argv[0] is "generate"; returns the exit status (bad input exits 2 from inside). */
int generate_main(int argc, char **argv);

#endif
