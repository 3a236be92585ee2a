/* eval.h: `megatrain eval`: the loss, perplexity and bits per byte of a checkpoint on a dataset
   split, under any parallel layout, through the training loop's own evaluation (trainer_eval),
   with the loss by position in the window as an option (doc/eval.md). */
#ifndef MEGATRAIN_EVAL_H
#define MEGATRAIN_EVAL_H

/* argv[0] is "eval"; returns the exit status (bad input exits 2 from inside). */
int eval_main(int argc, char **argv);

#endif
