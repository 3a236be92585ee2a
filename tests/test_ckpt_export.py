"""megackpt export and import against independent readers. For two models (a: tied embedding,
SwiGLU, trained on 2 ranks; b: untied head, SiLU FFN, trained under tp 2 x pp 2), a few training
steps end in a checkpoint, and:

- the checkpoint read here with h5py alone, as doc/checkpoint.md describes it (tests/ref/ckpt_h5.py:
  meta.h5's index places each slice of a rank file in its global tensor; fnv1a64 of its float32
  little-endian bytes), gives the tensors that `megackpt export` writes; the safetensors file is
  parsed here by hand (8-byte length, JSON header padded to 8 bytes, contiguous F32 data) and
  holds exactly the names and shapes of spec section 16, the tied head under both names;
- the PyTorch reference (tests/ref/megalodon_ref.py, float64) with the exported weights gives the
  loss that `megatrain dump --load` computes with them on the same batch (tolerance 1e-5
  relative, that of tests/test_reference.py: fp32 against fp64 on a mean of log-softmax values),
  and that loss is not the initial model's;
- `megackpt import` of the file gives a checkpoint (at step 0, zero moments, for another layout)
  whose weights equal the original checkpoint's bit for bit;
- meta.h5's fnv1a64, in the checkpoint megatrain wrote and in the imported one, is the checksum
  of its values that doc/checkpoint.md defines."""

import json
import os
import struct
import subprocess
import sys
import tempfile

import h5py
import numpy as np
import torch

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "ref"))
import megalodon_ref as mr  # noqa: E402
from tap import Tap  # noqa: E402
from ckpt_h5 import meta_good, read_checkpoint  # noqa: E402

TOL_LOSS = 1e-5
T = Tap()
WORK = tempfile.TemporaryDirectory(prefix="test_ckpt_export.")
BUILD = os.environ.get("top_builddir", ".")
MPIRUN = os.environ.get("MPIRUN", "mpirun")

MODELS = {
    "a": (dict(vocab_size=61, n_layers=2, d_model=32, n_heads=2, z_dim=16, v_dim=48, ffn_dim=40, swiglu=True,
               chunk=8, groups=4, cema_ndim=4, scale_emb=True, share_emb=True, rope_base=10000.0,
               norm_eps=1e-5), 2, {}),
    "b": (dict(vocab_size=50, n_layers=2, d_model=24, n_heads=2, z_dim=12, v_dim=30, ffn_dim=36, swiglu=False,
               chunk=16, groups=8, cema_ndim=3, scale_emb=False, share_emb=False, rope_base=500.0,
               norm_eps=1e-5), 4, {"tp": 2, "pp": 2}),
}


def sh(*cmd):
    """Run a command in the scratch folder; raises with its stderr."""
    p = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, cwd=WORK.name)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} exited {p.returncode}: {p.stderr.strip()}")
    return p.stdout


def path(*parts):
    return os.path.join(WORK.name, *parts)


def write_run(tag, cfg, parallel):
    model = {k: v for k, v in cfg.items() if k != "swiglu"}
    model["ffn"] = "swiglu" if cfg["swiglu"] else "silu"
    run = {"model": model, "parallel": parallel, "data": {"seq_len": 32, "batch_size": 4},
           "optimizer": {"lr": 0.01}, "schedule": {"warmup_steps": 1}, "train": {"steps": 3, "seed": 7},
           "checkpoint": {"dir": f"{tag}-ck"}, "log": {"metrics": f"{tag}.jsonl"}}
    with open(path(f"{tag}.yaml"), "w") as f:
        json.dump(run, f)  # JSON is YAML
    return f"{tag}.yaml"


def read_safetensors(file):
    """(metadata, name -> array, header length), parsing the format by hand."""
    raw = open(file, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    assert n % 8 == 0 and raw[8:9] == b"{", f"header length {n} not a multiple of 8, or not an object"
    meta = header.pop("__metadata__")
    data, at, tensors = raw[8 + n:], 0, {}
    for name, e in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
        b, end = e["data_offsets"]
        assert e["dtype"] == "F32" and b == at, f"{name}: {e['dtype']} at {b}, expected F32 at {at}"
        tensors[name] = np.frombuffer(data[b:end], "<f4").reshape(e["shape"])
        at = end
    assert at == len(data), f"data section of {len(data)} bytes, tensors cover {at}"
    return meta, tensors, n


def check(tag):
    cfg, ranks, parallel = MODELS[tag]
    cfg = mr.make_config(cfg)
    run = write_run(tag, cfg, parallel)
    sh(MPIRUN, "-np", ranks, os.path.join(BUILD, "megatrain"), run)
    ckpt = f"{tag}-ck/step-00000003"
    T.ok(os.path.isdir(path(ckpt)), f"{tag}: 3 training steps on {ranks} ranks {parallel} end in {ckpt}")
    mc = os.path.join(BUILD, "megackpt")
    sh(mc, "export", ckpt, f"{tag}.safetensors")
    meta, st, n = read_safetensors(path(f"{tag}.safetensors"))
    names = mr.dump_names(cfg)
    shapes = dict(mr.param_shapes(cfg), **{mr.TIED: (cfg["vocab_size"], cfg["d_model"])})
    T.ok(sorted(st) == sorted(names) and all(st[k].shape == shapes[k] for k in names),
         f"{tag}: the safetensors file ({n}-byte header) holds the {len(names)} tensors of spec section 16 "
         "with their shapes")
    T.ok(meta.get("format") == "pt" and meta.get("megatrain_step") == "3" and "d_model: " in
         meta.get("megatrain_config", ""), f"{tag}: metadata format=pt, megatrain_step=3, the run's config")
    if cfg["share_emb"]:
        T.ok(np.array_equal(st["embed.weight"], st[mr.TIED]), f"{tag}: tied head under both names")
    ck = read_checkpoint(path(ckpt))
    same = [k for k in names if np.array_equal(st[k], ck["embed.weight" if k == mr.TIED and cfg["share_emb"]
                                                          else k])]
    T.ok(len(same) == len(names), f"{tag}: exported tensors equal the checkpoint read with h5py "
         f"({len(same)}/{len(names)})")

    # the reference and megatrain on the exported weights
    with h5py.File(path(f"{tag}-P.h5"), "w") as f:
        for k in names:
            f["params/" + k] = st[k]
    one = ["--set", "parallel.tp=1", "--set", "parallel.pp=1"]  # dump runs on one rank
    sh(os.path.join(BUILD, "megatrain"), "dump", run, f"{tag}-dump.h5", "--load", f"{tag}-P.h5", *one)
    sh(os.path.join(BUILD, "megatrain"), "dump", run, f"{tag}-init.h5", *one)
    with h5py.File(path(f"{tag}-dump.h5"), "r") as f, h5py.File(path(f"{tag}-init.h5"), "r") as g:
        tokens, loss, init = f["tokens"][...], float(f["loss"][()]), float(g["loss"][()])
    model = mr.MegalodonRef(cfg, mr.leaf_params(st, cfg))
    tok = torch.tensor(tokens.astype(np.int64))
    with torch.no_grad():
        ref = float(model.loss(tok[:, :-1], tok[:, 1:]))
    e = abs(loss - ref) / abs(ref)
    T.ok(e <= TOL_LOSS, f"{tag}: loss with the exported weights: megatrain {loss:.7f}, reference {ref:.7f} "
         f"(rel err {e:.1e} <= {TOL_LOSS:.0e})")
    T.ok(abs(loss - init) > 1e-3 * init, f"{tag}: ... the trained model's, not the initial one's ({init:.7f})")

    # import back, for a different layout
    other = {"tp": 2, "pp": 1} if parallel.get("pp", 1) > 1 else {"tp": 1, "pp": 2}
    sh(mc, "import", f"{tag}.safetensors", f"{tag}-imp", "--config", run,
       "--set", f"parallel.tp={other['tp']}", "--set", f"parallel.pp={other['pp']}")
    imp = read_checkpoint(path(f"{tag}-imp"))
    orig = read_checkpoint(path(ckpt))
    T.ok(sorted(imp) == sorted(orig) and all(np.array_equal(imp[k], orig[k]) for k in orig),
         f"{tag}: import (for tp {other['tp']} pp {other['pp']}) holds the original checkpoint's weights exactly")
    with h5py.File(path(f"{tag}-imp", "meta.h5"), "r") as f:
        attrs = {k: int(f.attrs[k][0]) for k in ("step", "cursor", "tp", "pp")}
    moments = [read_checkpoint(path(f"{tag}-imp"), g) for g in ("adam_m", "adam_v")]
    T.ok(attrs == dict(step=0, cursor=0, **other) and all(not m[k].any() for m in moments for k in m),
         f"{tag}: ... at step 0, cursor 0, with zero moments ({attrs})")
    T.ok(meta_good(path(ckpt), 4) and meta_good(path(f"{tag}-imp"), 4),
         f"{tag}: meta.h5 of the checkpoint and of the import: format 4, fnv1a64 as doc/checkpoint.md defines it")


for tag in MODELS:
    T.run(tag, check, tag)
WORK.cleanup()
T.done()
