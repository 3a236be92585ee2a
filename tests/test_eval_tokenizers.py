# test_eval_tokenizers.py: megatrain eval and generate on datasets made with a tokenizer file: a
# SentencePiece model trained by `megadata tokenizer train` (documents starting with BOS) and a
# byte-level BPE tokenizer.json (test_tokenizers.py's GPT-2 style). With --tokenizer FILE, eval's
# bits per byte is loss x targets / (ln 2 x bytes), the bytes of the evaluated targets counted
# here through the reference decoders (SentencePiece's own; test_tokenizers.py's ByteLevel one);
# generate --prompt TEXT prints text that starts with the prompt. Without --tokenizer, eval says
# bits per byte needs it and generate --prompt asks for it; another tokenizer file: exit 2
# naming both checksums.
import glob
import json
import math
import os
import subprocess
import sys
import tempfile

import tokenizer_corpus
from tap import check, done
from test_tokenizers import GPT2, Reference, tokenizer_json, train_byte_level

try:
    import h5py
    import sentencepiece
except ImportError as e:  # not a SKIP, which would pass
    print(f"Bail out! {e.name} is missing (tools/install-deps.sh installs python3-h5py and python3-sentencepiece)")
    sys.exit(1)

top_builddir = os.environ.get("top_builddir", ".")
megadata = os.path.join(top_builddir, "megadata")
megatrain = os.path.join(top_builddir, "megatrain")
RUN = """model: {vocab_size: 0, n_layers: 2, d_model: 32, n_heads: 2, z_dim: 16, v_dim: 32, ffn_dim: 48,
        chunk: 8, groups: 4, cema_ndim: 2, share_emb: true}
data: {seq_len: 32, batch_size: 4}
optimizer: {lr: 0.01}
schedule: {warmup_steps: 1, decay: constant}
train: {steps: 4, seed: 11}
log: {every: 1000}
"""
L, WINDOWS = 32, 8


def run(*args):
    return subprocess.run(list(args), capture_output=True)


def val_tokens(ds):
    """The val split's tokens and end-of-document id."""
    tokens = []
    for shard in sorted(glob.glob(os.path.join(ds, "val-*.h5"))):
        with h5py.File(shard, "r") as f:
            tokens += f["tokens"][:].tolist()
            eod = int(f.attrs["eod_id"])
    return tokens, eod


def target_bytes(tokens, piece_bytes):
    """The bytes of the targets of eval's windows: WINDOWS windows of L + 1 tokens, stride L."""
    assert len(tokens) >= WINDOWS * L + 1, len(tokens)
    return sum(piece_bytes(tokens[k * L + j], tokens[k * L + j + 1]) for k in range(WINDOWS) for j in range(L))


def sp_counter(sp):
    """Bytes of id after prev, through SentencePiece's decoder: at a document's start (after BOS or
    EOS) its text alone, whose dummy-prefix space the decoder drops; elsewhere what it adds after
    the piece 'a'."""
    a = sp.piece_to_id("a")
    starts = {sp.bos_id(), sp.eos_id()}

    def count(prev, id):
        if prev in starts:
            return len(sp.decode([id]).encode())
        return len(sp.decode([a, id]).encode()) - len(sp.decode([a]).encode())
    return count


def eval_case(name, ds, tokfile, other, count, tmp):
    yaml = os.path.join(tmp, f"run-{name}.yaml")
    with open(yaml, "w") as f:
        f.write(RUN)
    ck = os.path.join(tmp, f"ck-{name}")
    common = ["--set", f"data.path={ds}"]
    r = run(megatrain, yaml, *common, "--set", f"checkpoint.dir={ck}", "--set", "train.steps=4", "--set",
            f"log.metrics={ck}.jsonl")
    if not check(r.returncode == 0, f"{name}: 4 training steps", r.stderr.decode(errors="replace")[-2000:]):
        return
    out = os.path.join(tmp, f"eval-{name}.jsonl")
    ev = [megatrain, "eval", yaml, *common, "--checkpoint", ck, "--windows", str(WINDOWS)]
    r = run(*ev, "--tokenizer", tokfile, "--by-position", out)
    summary = json.loads(open(out).readline()) if r.returncode == 0 else {}
    val, eod = val_tokens(ds)
    nbytes, starts = target_bytes(val, count), val[:WINDOWS * L].count(eod)
    loss, tokens = summary.get("loss", 0), summary.get("tokens", 0)
    want = loss * tokens / (math.log(2) * nbytes)
    check(r.returncode == 0 and starts > 2 and summary["bytes"] == nbytes and abs(summary["bits_per_byte"] - want) <= 1e-12 * want,
          f"{name}: eval --tokenizer: bits per byte {summary.get('bits_per_byte')} = loss x {tokens} targets / "
          f"(ln 2 x {nbytes} bytes counted through the reference decoder; {starts} documents start there)",
          f"{r.stderr.decode(errors='replace')}\n{summary}, expected bytes {nbytes}, bits per byte {want}")
    check(f"bits per byte {summary.get('bits_per_byte', 0):.4f}" in r.stdout.decode(),
          f"{name}: eval prints bits per byte", r.stdout.decode())
    r = run(*ev)
    check(r.returncode == 0 and "bits per byte - (needs --tokenizer: the dataset's" in r.stdout.decode(),
          f"{name}: eval without --tokenizer says bits per byte needs it", r.stdout.decode() + r.stderr.decode())
    gen = [megatrain, "generate", yaml, *common, "--checkpoint", ck, "--tokens", "30", "--seed", "1"]
    r = run(*gen, "--tokenizer", tokfile, "--prompt", "The night was")
    check(r.returncode == 0 and r.stdout.startswith(b"The night was") and len(r.stdout) > len("The night was") + 1,
          f"{name}: generate --prompt prints text that starts with the prompt ({len(r.stdout)} bytes)",
          f"exit {r.returncode}: {r.stdout!r} {r.stderr.decode(errors='replace')}")
    r = run(*gen, "--prompt", "The night was")
    check(r.returncode == 2 and "give it with --tokenizer FILE, or token ids with --prompt-ids" in r.stderr.decode(),
          f"{name}: generate --prompt without --tokenizer: exit 2, asks for it", r.stderr.decode())
    for what, cmd in (("eval", ev), ("generate", gen + ["--prompt", "a"])):
        r = run(*cmd, "--tokenizer", other)
        err = r.stderr.decode()
        check(r.returncode == 2 and f"--tokenizer {other}: a " in err and f"but the dataset {ds} was made with" in err
              and err.count("\n") == 1, f"{name}: {what} --tokenizer of another file: exit 2 naming both", err)


def main():
    docs = [bytes(b for b in d if 32 <= b < 127 or b == 10) for d in tokenizer_corpus.documents(3, 1 << 18)]
    docs = [d[i:i + 120] for d in docs for i in range(0, len(d), 120)]  # short: windows cross documents
    docs = [d for d in docs if d.strip()]
    with tempfile.TemporaryDirectory(prefix="megatrain-evaltok.") as tmp:
        folder = os.path.join(tmp, "text")
        os.mkdir(folder)
        for i, d in enumerate(docs):
            with open(os.path.join(folder, f"d{i:04d}.txt"), "wb") as f:
                f.write(d)
        model = os.path.join(tmp, "sp.model")
        r = run(megadata, "tokenizer", "train", model, folder, "--vocab", "600", "--threads", "1")
        check(r.returncode == 0, "a SentencePiece model of the text (ASCII)", r.stderr.decode(errors="replace"))
        vocab, merges = train_byte_level(docs, GPT2, 3, 100)
        tj = tokenizer_json(vocab, merges, "gpt2")
        hf = os.path.join(tmp, "tokenizer.json")
        with open(hf, "w") as f:
            json.dump(tj, f)
        ref = Reference(tj)
        sp = sentencepiece.SentencePieceProcessor(model_file=model)
        cases = [("sentencepiece", model, hf, ["--bos"], sp_counter(sp)),
                 ("hf-bpe", hf, model, [], lambda prev, id: len(ref.decode([id])))]
        for name, tokfile, other, options, count in cases:
            ds = os.path.join(tmp, f"ds-{name}")
            r = run(megadata, "build", ds, folder, "--tokenizer", tokfile, "--val-fraction", "0.3", *options)
            if check(r.returncode == 0, f"{name}: a dataset {' '.join(options)}", r.stderr.decode(errors="replace")):
                eval_case(name, ds, tokfile, other, count, tmp)
    sys.exit(done())


main()
