#!/bin/sh
# paper-sweep.sh: write jobs/paper/ -- the paper's three model sizes, each laid out for 8, 64 and
# 256 GPUs -- from jobs/paper.yaml with megasweep, which checks every file for its GPU count.
# Run from the top of the source tree after editing paper.yaml or this file:
#     MEGASWEEP=path/to/megasweep jobs/paper-sweep.sh [OUT_DIR]      (default jobs/paper)
# Every size keeps the global batch at 128 sequences on any GPU count; micro-batches keep about 16K
# tokens per GPU per micro-step (the paper's 4M-token batch on 256 GPUs). Token budgets: 20 tokens
# per parameter for 200M and 1.3B, the paper's 2T for 7B.
set -eu
out=${1:-jobs/paper}
sweep() { "${MEGASWEEP:-megasweep}" jobs/paper.yaml -o "$out" --metrics-dir runs "$@"; }

# 200M: 4K context (two chunks of 2048); 256 GPUs split every sequence over cp = 2.
sweep --size mega200M:model.preset=mega200M,data.seq_len=4096,train.tokens=4400000000 \
    --layout 8:mb=4 --layout 64 --layout 256:cp=2
# 1.3B: 8K context.
sweep --size mega1.3B:model.preset=mega1.3B,data.seq_len=8192,train.tokens=27000000000 \
    --layout 8:mb=8 --layout 64:mb=2 --layout 256:cp=2
# 7B as in the paper: 32K context in chunks of 4096, cp = 2 (16K tokens per GPU), dp 128 on 256
# GPUs; activations recomputed in backward.
sweep --size paper7B:model.preset=paper7B,data.seq_len=32768,train.tokens=2000000000000,train.recompute=true \
    --layout 8:cp=2,mb=32 --layout 64:cp=2,mb=4 --layout 256:cp=2
