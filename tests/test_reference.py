"""Checks megatrain's C model against the independent PyTorch reference (tests/ref/megalodon_ref.py,
float64, autograd) through `megatrain dump`: logits, loss and every parameter gradient for
random parameters loaded with --load, AdamW steps with clipping and the schedule (--steps), and
the statistics of megatrain's own initialisation. See doc/model-check.md.

megatrain is $MEGATRAIN if set, else $top_builddir/megatrain (make check sets top_builddir),
else ./megatrain."""

import math
import os
import subprocess
import sys
import tempfile
import time

import h5py
import numpy as np
import torch

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "ref"))
import megalodon_ref as mr  # noqa: E402
from tap import Tap, rel_err  # noqa: E402

# Tolerances, norm-wise relative error of megatrain (fp32) against the reference (fp64). With
# fp32 rounding u = 6e-8, a few layers of sums over <= 48 terms land near 1e-6 relative; running
# the reference itself in float32 through this driver gives <= 5e-7 on logits, <= 1.3e-7 on the
# loss, <= 1e-5 on gradients, <= 2e-7 on updated parameters and <= 1e-4 on the AdamW updates.
# The tolerances leave 20-100x for a different but sound fp32 summation order (FFT convolution,
# Welford scans, blocked GEMMs). Wrong formulas are far above them: RoPE rotating the other way
# or on pairs (j, j+dz/2), a 1/sqrt(d) attention scale, conj(gamma) or angles k*phi with k from
# 0 give >= 3e-2 on logits, >= 8e-5 on the loss and >= 1e-2 on most gradients.
TOL_LOGITS = 1e-4
TOL_LOSS = 1e-5      # mean of ~100 log-softmax values: errors average out
TOL_GRAD = 1e-3      # backward adds one more pass of the same sums, and cancellations
TOL_PARAMS = 1e-5    # parameters after the steps: they move by ~lr = 1e-3 relative
TOL_UPDATE = 2e-3    # the update itself (after - before), see eps below

# eps = 1e-3 (not the usual 1e-8) puts AdamW between its sign-like and SGD-like regimes for
# gradient entries of ~1e-3 after clipping, so the update depends on the gradient's scale: a
# missing clip then changes updates by >= 0.7, the tied embedding counted twice in the clip norm
# by >= 0.1, no weight decay by >= 0.15 (relative, worst tensor). With eps = 1e-8 Adam is
# nearly scale-free (those bugs move updates by only 1e-2 .. 6e-3) and divides small gradient
# entries by their own noisy size (float32 noise up to 7e-4 on an update).
OPT = dict(lr=1.0e-3, beta1=0.9, beta2=0.95, eps=1.0e-3, weight_decay=0.1, grad_clip=1.0)
SCHEDULE = dict(warmup_steps=2, decay="cosine", min_lr_ratio=0.1)
STEPS = 3


def model_cfg(**kw):
    base = dict(rope_base=10000.0, norm_eps=1.0e-5)
    base.update(kw)
    return mr.make_config(base)


# (a) several attention chunks (L = 4C), SwiGLU, scaled and shared embedding, 2 heads, dz != dv
CFG_A = model_cfg(vocab_size=61, n_layers=2, d_model=32, n_heads=2, z_dim=16, v_dim=48,
                  ffn_dim=40, swiglu=True, chunk=8, groups=4, cema_ndim=4, scale_emb=True,
                  share_emb=True)
# (b) SiLU FFN, untied head, unscaled embedding, one chunk (L < C), groups != heads, odd N, B = 3
CFG_B = model_cfg(vocab_size=50, n_layers=2, d_model=24, n_heads=3, z_dim=12, v_dim=30,
                  ffn_dim=36, swiglu=False, chunk=16, groups=8, cema_ndim=3, scale_emb=False,
                  share_emb=False, rope_base=500.0)
# (i) for megatrain's initialisation: large enough tensors for its statistics, untied head
CFG_I = model_cfg(vocab_size=256, n_layers=2, d_model=128, n_heads=2, z_dim=32, v_dim=64,
                  ffn_dim=96, swiglu=True, chunk=16, groups=8, cema_ndim=8, scale_emb=True,
                  share_emb=False)

T = Tap()
WORK = tempfile.TemporaryDirectory(prefix="test_reference.")


def megatrain_path():
    if os.environ.get("MEGATRAIN"):
        return os.path.abspath(os.environ["MEGATRAIN"])
    return os.path.abspath(os.path.join(os.environ.get("top_builddir", "."), "megatrain"))


def yaml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    s = repr(v)
    return s.replace("e", ".0e") if isinstance(v, float) and "e" in s and "." not in s else s


def yaml_map(d):
    return "{" + ", ".join(f"{k}: {yaml_value(v)}" for k, v in d.items()) + "}"


def write_run(tag, cfg, batch, seq_len, seed):
    """The run file megatrain dump reads (model.ffn spelled swiglu/silu)."""
    model = {k: v for k, v in cfg.items() if k != "swiglu"}
    model["ffn"] = "swiglu" if cfg["swiglu"] else "silu"
    text = "\n".join([
        "model: " + yaml_map(model),
        "data: " + yaml_map(dict(seq_len=seq_len, batch_size=batch)),
        "train: " + yaml_map(dict(seed=seed)),
        "optimizer: " + yaml_map(OPT),
        "schedule: " + yaml_map(SCHEDULE), ""])
    path = os.path.join(WORK.name, f"{tag}.yaml")
    with open(path, "w") as f:
        f.write(text)
    return path


def dump(tag, run, *args):
    """Run megatrain dump in the scratch folder; returns the open output file (raises with
    megatrain's stderr)."""
    out = os.path.join(WORK.name, f"{tag}.h5")
    cmd = [megatrain_path(), "dump", run, out, *args]
    t0 = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=WORK.name)
    T.diag(f"{tag}: megatrain dump {' '.join(args)}: {time.time() - t0:.2f} s")
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {p.returncode}: {p.stderr.strip()}")
    return h5py.File(out, "r")


def random_params(cfg, seed):
    """Random values for every parameter (the zero-initialised ones too), at scales where each
    part of the model matters; rounded to fp32 so both sides start from the same numbers."""
    g = np.random.default_rng(seed)
    D = cfg["d_model"]
    p = {}
    for n, s in mr.param_shapes(cfg).items():
        if n in ("embed.weight", mr.TIED):
            v = g.normal(0, 1 / math.sqrt(D), s)
        elif n.endswith(("cema.alpha", "cema.delta")):
            v = g.normal(0, 0.5, s)
        elif n.endswith("cema.theta"):             # sigma(theta) in (0.05, 0.95)
            f = g.uniform(0.05, 0.95, s)
            v = np.log(f / (1 - f))
        elif n.endswith("cema.gamma"):
            v = g.normal(0, 1, s)
        elif n.endswith("cema.omega"):
            v = g.uniform(-1, 1, s)
        elif n.endswith(("mega.gamma", "mega.beta")):
            v = 0.3 * g.normal(0, 1, s)
        elif len(s) == 2:                          # Linear weight (out, in)
            v = g.normal(0, 1 / math.sqrt(s[1]), s)
        else:                                      # norm scales/shifts, Linear biases
            v = 0.1 * g.normal(0, 1, s)
        p[n] = v.astype(np.float32).astype(np.float64)
    return p


def write_params(path, cfg, params, dtype):
    with h5py.File(path, "w") as f:
        for n in mr.dump_names(cfg):
            f["params/" + n] = params.get(n, params["embed.weight"]).astype(dtype)


def t64(a):
    return torch.tensor(np.asarray(a), dtype=torch.float64)


def reference(cfg, f):
    """Reference model on the dump's own /params and /tokens: model, inputs, targets, logits
    and loss (backward done)."""
    model = mr.MegalodonRef(cfg, mr.leaf_params({n: f["params/" + n][...]
                                                 for n in mr.param_shapes(cfg)}, cfg))
    tok = torch.tensor(f["tokens"][...].astype(np.int64))
    inputs, targets = tok[:, :-1], tok[:, 1:]
    logits, _ = model.forward(inputs)
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, cfg["vocab_size"]),
                                             targets.reshape(-1))
    loss.backward()
    return model, inputs, targets, logits.detach(), loss.detach()


def check_header(tag, cfg, f, batch, seq_len):
    want = dict(cfg, batch=batch, seq_len=seq_len)
    bad = [k for k, v in want.items() if k not in f.attrs or
           not math.isclose(float(f.attrs[k]), float(v), rel_tol=1e-6)]
    T.ok(not bad, f"{tag}: root attributes match the run file"
         + (f" (differ: {bad})" if bad else ""))
    tok = f["tokens"][...]
    T.ok(tok.shape == (batch, seq_len + 1) and tok.min() >= 0 and tok.max() < cfg["vocab_size"]
         and len(np.unique(tok)) > 1, f"{tag}: /tokens shape {tok.shape}, ids in [0, vocab)")
    if cfg["share_emb"]:
        T.ok(np.array_equal(f["params/embed.weight"][...], f["params/" + mr.TIED][...]),
             f"{tag}: shared embedding: both keys hold the same tensor")


def compare_forward(tag, cfg, f, each_grad=True):
    """Logits, loss and gradients of the dump against the reference; returns the worst errors."""
    model, _, _, logits, loss = reference(cfg, f)
    T.close(f"{tag}: logits", t64(f["logits"][...]), logits, TOL_LOGITS)
    T.close(f"{tag}: loss", t64(f["loss"][()]), loss, TOL_LOSS)
    grads = mr.grads_by_dump_name(model)
    errs = {n: rel_err(t64(f["grads/" + n][...]), grads[n]) for n in mr.dump_names(cfg)}
    if each_grad:
        for n, e in errs.items():
            T.ok(e <= TOL_GRAD, f"{tag}: grad {n}: rel err {e:.2e} <= {TOL_GRAD:.0e}")
    else:
        worst = max(errs, key=errs.get)
        T.ok(errs[worst] <= TOL_GRAD, f"{tag}: all {len(errs)} grads, worst {worst}: "
             f"rel err {errs[worst]:.2e} <= {TOL_GRAD:.0e}")
    return dict(logits=rel_err(t64(f["logits"][...]), logits),
                loss=rel_err(t64(f["loss"][()]), loss), grads=max(errs.values()))


def compare_steps(tag, cfg, f):
    """--steps run: losses before each step and the parameters after, against torch AdamW."""
    tr = f["train"]
    bad = [k for k in ("beta1", "beta2", "eps", "weight_decay", "grad_clip")
           if not math.isclose(float(tr.attrs[k]), OPT[k], rel_tol=1e-6)]
    T.ok(not bad, f"{tag}: /train attributes match the run file" + (f" ({bad})" if bad else ""))
    lrs = tr["lr"][...]
    T.ok(lrs.shape == (STEPS,) and lrs.max() > 0
         and bool(np.all((lrs >= 0) & (lrs <= OPT["lr"] * (1 + 1e-6)))),
         f"{tag}: /train/lr has {STEPS} rates in [0, lr]: {lrs.tolist()}")
    model, inputs, targets, _, _ = reference(cfg, f)
    before = {n: p.detach().clone() for n, p in model.p.items()}
    losses = mr.train_adamw(model, inputs, targets, lrs, OPT["beta1"], OPT["beta2"], OPT["eps"],
                            OPT["weight_decay"], OPT["grad_clip"])
    T.close(f"{tag}: /train/losses", t64(tr["losses"][...]), t64(losses), TOL_LOSS)
    worst = dict(params=0.0, update=0.0)
    for n in mr.dump_names(cfg):
        src = "embed.weight" if n == mr.TIED and cfg["share_emb"] else n
        got, want = t64(f["updated/" + n][...]), model.p[src].detach()
        e, eu = rel_err(got, want), rel_err(got - before[src], want - before[src])
        worst = dict(params=max(worst["params"], e), update=max(worst["update"], eu))
        T.ok(e <= TOL_PARAMS and eu <= TOL_UPDATE, f"{tag}: updated {n}: rel err {e:.2e} <= "
             f"{TOL_PARAMS:.0e}, of the update {eu:.2e} <= {TOL_UPDATE:.0e}")
    return worst


def check_random(tag, cfg, batch, seq_len, dtype):
    """Random parameters through --load: forward/backward, then --steps."""
    t0 = time.time()
    params = random_params(cfg, seed=sum(map(ord, tag)))
    pfile = os.path.join(WORK.name, f"{tag}-params.h5")
    write_params(pfile, cfg, params, dtype)
    run = write_run(tag, cfg, batch, seq_len, seed=11)
    with dump(tag, run, "--load", pfile) as f:
        check_header(tag, cfg, f, batch, seq_len)
        T.ok(all(np.array_equal(f["params/" + n][...], params.get(n, params["embed.weight"]))
                 for n in mr.dump_names(cfg)), f"{tag}: /params are the --load values")
        worst = compare_forward(tag, cfg, f)
    with dump(tag + "-steps", run, "--load", pfile, "--steps", str(STEPS)) as f:
        worst.update(compare_steps(tag, cfg, f))
    T.diag(f"{tag}: worst rel errors " + ", ".join(f"{k} {v:.2e}" for k, v in worst.items()))
    T.diag(f"{tag}: {time.time() - t0:.2f} s")


def stat_ok(x, std, mean=0.0):
    """Sample mean and std within 5 standard errors of a normal's (n = x.size)."""
    n = x.size
    return (abs(x.mean() - mean) <= 5 * std / math.sqrt(n)
            and abs(x.std() / std - 1) <= 5 / math.sqrt(2 * n))


def check_init(tag, cfg, batch, seq_len):
    """megatrain's own initialisation (spec sections 3 and 6), then its forward on it."""
    t0 = time.time()
    D = cfg["d_model"]
    sd = 1 / math.sqrt(D)
    with dump(tag, write_run(tag, cfg, batch, seq_len, seed=5)) as f:
        check_header(tag, cfg, f, batch, seq_len)
        P = {n: f["params/" + n][...].astype(np.float64) for n in mr.dump_names(cfg)}
        zero = [n for n in P if n.endswith(("norm.weight", "norm.bias", ".bias", "mega.gamma",
                                            "mega.beta"))]
        T.ok(all(not P[n].any() for n in zero), f"{tag}: {len(zero)} zero-initialised tensors "
             "(norm scales/shifts, Linear biases, Q/K affine) are 0")
        for n in ("embed.weight", mr.TIED):   # truncated at 3 sigma: std 0.9866 sigma
            top = np.abs(P[n]).max() / sd
            T.ok(top <= 3 * (1 + 1e-6) and stat_ok(P[n], 0.9866 * sd),
                 f"{tag}: {n} ~ N(0, 1/D) truncated at 3 sigma "
                 f"(std {P[n].std() / sd:.3f}/sqrt(D), max {top:.2f} sigma)")
        lin = [n for n in P if P[n].ndim == 2 and n.endswith(".weight")
               and n not in ("embed.weight", mr.TIED)]
        bad = [n for n in lin if not stat_ok(P[n], 1 / math.sqrt(3 * P[n].shape[1]))]
        T.ok(not bad, f"{tag}: {len(lin)} Linear weights ~ N(0, 1/(3 fan_in))"
             + (f" (off: {bad})" if bad else ""))
        f_sorted = np.sort(D ** (-np.arange(1, D + 1) / D))
        for i in range(cfg["n_layers"]):
            c = f"layers.{i}.mega.cema."
            T.ok(stat_ok(P[c + "alpha"], 0.2) and stat_ok(P[c + "delta"], 0.2),
                 f"{tag}: {c}alpha, delta ~ N(0, 0.2^2)")
            th = 1 / (1 + np.exp(-P[c + "theta"].ravel()))
            T.ok(np.allclose(np.sort(th), f_sorted, rtol=1e-5, atol=0)
                 and not np.array_equal(th, np.sort(th)) and not np.array_equal(th, f_sorted[::-1]),
                 f"{tag}: sigmoid({c}theta) is a shuffled D^(-j/D), j = 1..D")
            gm = P[c + "gamma"]
            T.ok(not gm[..., 1].any() and stat_ok(gm[..., 0], 1.0),
                 f"{tag}: {c}gamma real ~ N(0, 1), imaginary 0")
            om = P[c + "omega"]
            T.ok(np.abs(om).max() <= 1 and stat_ok(om, 0.25),
                 f"{tag}: {c}omega ~ N(0, 0.25^2) in [-1, 1]")
        if not cfg["share_emb"]:
            T.ok(not np.array_equal(P["embed.weight"], P[mr.TIED]),
                 f"{tag}: untied output head drawn apart from the embedding")
        worst = compare_forward(tag, cfg, f, each_grad=False)
    T.diag(f"{tag}: worst rel errors " + ", ".join(f"{k} {v:.2e}" for k, v in worst.items()))
    T.diag(f"{tag}: {time.time() - t0:.2f} s")


T.diag(f"megatrain: {megatrain_path()}")
T.run("a", check_random, "a", CFG_A, 2, 32, np.float64)
T.run("b", check_random, "b", CFG_B, 3, 12, np.float32)
T.run("init-a", check_init, "init-a", CFG_A, 2, 32)
T.run("init-i", check_init, "init-i", CFG_I, 1, 32)
WORK.cleanup()
T.done()
