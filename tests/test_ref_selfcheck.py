"""Self-checks of the PyTorch reference (tests/ref/megalodon_ref.py) before it is trusted to judge
the C model: autograd gradients by finite differences, the closed/convolution forms of the
stateful ops against naive sequential loops written here from the spec, state carrying across a
split sequence, and RoPE's restart at every attention chunk. Float64 throughout."""

import math
import os
import sys

import torch
from torch.autograd import gradcheck

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "ref"))
import megalodon_ref as mr  # noqa: E402
from tap import Tap, rel_err  # noqa: E402

torch.manual_seed(1234)
DT = torch.float64
T = Tap()
# Closed forms vs loops in float64 agree to rounding (~1e-15 relative); 1e-10 leaves room for
# the cancellation in the closed-form variance (E[x^2] - mean^2) with the offset inputs below.
EXACT = 1e-10


def rnd(*shape, scale=1.0):
    return (scale * torch.randn(*shape, dtype=DT)).requires_grad_(True)


def cema_params(D, N):
    return (rnd(D, N, 1, scale=0.5), rnd(D, N, 1, scale=0.5), rnd(D, 1, 1),
            rnd(D, N, 2), rnd(D, 1, scale=0.5))


def welford(x, w, b, G, eps, n0, m0, v0):
    """TimestepNorm by the sequential update of spec section 4, one step at a time."""
    B, L, D = x.shape
    xg = x.reshape(B, L, G, D // G)
    n, mu, var = torch.full((B, G), float(n0), dtype=DT), m0.clone(), v0.clone()
    ys = []
    for t in range(L):
        ux = xg[:, t].mean(-1)
        gv = ((xg[:, t] - ux.unsqueeze(-1)) ** 2).mean(-1)
        n = n + 1
        c2 = 1 / n
        c1 = 1 - c2
        d = ux - mu
        mu = mu + c2 * d
        var = c1 * var + c2 * gv + c1 * c2 * d * d
        ys.append((xg[:, t] - mu.unsqueeze(-1)) / torch.sqrt(var + eps).unsqueeze(-1))
    y = torch.stack(ys, 1).reshape(B, L, D) * (1 + w) + b
    return y, mu, var


def cema_loop(u, alpha, delta, theta, gamma, omega, h0):
    """CEMA by the complex recurrence h_t = p u_t + q h_(t-1), y_t = Re(g.h_t) + omega u_t."""
    B, L, D = u.shape
    N = alpha.shape[1]
    p = torch.sigmoid(alpha.reshape(D, N))
    k = torch.arange(1, N + 1, dtype=DT)
    phi = torch.sigmoid(theta.reshape(D, 1)) * 2 * math.pi / N
    q = (1 - p * torch.sigmoid(delta.reshape(D, N))) * torch.exp(1j * k * phi)
    g = torch.complex(gamma[..., 0], gamma[..., 1]) / math.sqrt(N)
    h = torch.complex(h0[..., 0], h0[..., 1])
    ys = []
    for t in range(L):
        h = p * u[:, t].unsqueeze(-1) + q * h
        ys.append((g * h).sum(-1).real + omega.reshape(D) * u[:, t])
    return torch.stack(ys, 1), torch.stack((h.real, h.imag), -1)


def check_gradcheck():
    B, L, D, G, N, eps = 2, 5, 6, 2, 3, 1e-5
    x, w, b = rnd(B, L, D), rnd(D, scale=0.1), rnd(D, scale=0.1)
    m0, v0 = rnd(B, G), (0.5 + torch.rand(B, G, dtype=DT)).requires_grad_(True)
    T.ok(gradcheck(lambda x, w, b: mr.timestep_norm(x, w, b, G, eps)[0], (x, w, b)),
         "gradcheck timestep_norm (prior count 0)")

    def tsn_state(x, w, b, m0, v0):
        y, (_, mu, var) = mr.timestep_norm(x, w, b, G, eps, (3, m0, v0))
        return y, mu, var
    T.ok(gradcheck(tsn_state, (x, w, b, m0, v0)),
         "gradcheck timestep_norm with incoming state, through y and the final mean/var")
    u, cp, h0 = rnd(B, L, D), cema_params(D, N), rnd(B, D, N, 2)
    T.ok(gradcheck(lambda u, *a: mr.cema(u, *a), (u, *cp)),
         "gradcheck cema (no h0), through y and h_L")
    T.ok(gradcheck(lambda u, h0, *a: mr.cema(u, *a, h0=h0), (u, h0, *cp)),
         "gradcheck cema with incoming h0, through y and h_L")


def check_closed_forms():
    B, L, D, G, N, eps = 3, 17, 12, 3, 5, 1e-5
    x = torch.randn(B, L, D, dtype=DT) * 2 + 3     # offset: exercises the variance cancellation
    w, b = 0.1 * torch.randn(D, dtype=DT), 0.1 * torch.randn(D, dtype=DT)
    m0, v0 = torch.randn(B, G, dtype=DT), 0.5 + torch.rand(B, G, dtype=DT)
    for n0, st in ((0, None), (7, (7, m0, v0))):
        y, (n, mu, var) = mr.timestep_norm(x, w, b, G, eps, st)
        yw, muw, varw = welford(x, w, b, G, eps, n0,
                                m0 if st else torch.zeros(B, G, dtype=DT),
                                v0 if st else torch.ones(B, G, dtype=DT))
        T.ok(max(rel_err(y, yw), rel_err(mu, muw), rel_err(var, varw)) < EXACT
             and bool((n == n0 + L).all()),
             f"timestep_norm closed form == sequential Welford (prior count {n0})")
    u = torch.randn(B, L, D, dtype=DT)
    cp = [t.detach() for t in cema_params(D, N)]
    h0 = torch.randn(B, D, N, 2, dtype=DT)
    for name, hin in (("zero h0", None), ("incoming h0", h0)):
        y, h = mr.cema(u, *cp, h0=hin)
        yl, hl = cema_loop(u, *cp, h0 if hin is not None else torch.zeros_like(h0))
        T.ok(max(rel_err(y, yl), rel_err(h, hl)) < EXACT,
             f"cema convolution form == complex recurrence ({name}), y and h_L")


def check_split():
    B, L, D, G, N, eps, L1 = 2, 20, 8, 2, 4, 1e-5, 7
    x = torch.randn(B, L, D, dtype=DT) + 1
    w, b = 0.1 * torch.randn(D, dtype=DT), 0.1 * torch.randn(D, dtype=DT)
    y, st = mr.timestep_norm(x, w, b, G, eps)
    ya, sa = mr.timestep_norm(x[:, :L1], w, b, G, eps)
    yb, sb = mr.timestep_norm(x[:, L1:], w, b, G, eps, sa)
    T.ok(rel_err(torch.cat((ya, yb), 1), y) < EXACT and rel_err(sb[1], st[1]) < EXACT
         and rel_err(sb[2], st[2]) < EXACT and bool((sb[0] == L).all()),
         "timestep_norm: split sequence with state carried == whole")
    cp = [t.detach() for t in cema_params(D, N)]
    y, h = mr.cema(x, *cp)
    ya, ha = mr.cema(x[:, :L1], *cp)
    yb, hb = mr.cema(x[:, L1:], *cp, h0=ha)
    T.ok(rel_err(torch.cat((ya, yb), 1), y) < EXACT and rel_err(hb, h) < EXACT,
         "cema: split sequence with h carried == whole")
    cfg, p = tiny_model(swiglu=True, share=True)
    C = cfg["chunk"]
    tok = torch.randint(0, cfg["vocab_size"], (2, 3 * C))
    m = mr.MegalodonRef(cfg, p)
    whole, s = m.forward(tok)
    la, sa = m.forward(tok[:, :C])
    lb, sb = m.forward(tok[:, C:], sa)
    T.ok(rel_err(torch.cat((la, lb), 1), whole) < EXACT
         and all(rel_err(x1["cema"], x2["cema"]) < EXACT for x1, x2 in zip(sb[:-1], s[:-1]))
         and rel_err(sb[-1]["tsn"][2], s[-1]["tsn"][2]) < EXACT,
         "model: split at a chunk boundary with per-layer states carried == whole")


def tiny_model(swiglu, share):
    cfg = mr.make_config(dict(vocab_size=11, n_layers=2, d_model=8, n_heads=2, z_dim=8, v_dim=12,
                              ffn_dim=10, swiglu=swiglu, chunk=4, groups=2, cema_ndim=3,
                              rope_base=10000.0, norm_eps=1e-5, scale_emb=True,
                              share_emb=share))
    p = {n: 0.5 * torch.randn(s, dtype=DT) for n, s in mr.param_shapes(cfg).items()}
    return cfg, p


def check_rope_and_chunks():
    B, C, H, d = 2, 4, 2, 6
    x = torch.randn(B, 3 * C, H, d, dtype=DT)
    whole = mr.rope(x, 100.0, C)
    per = torch.cat([mr.rope(x[:, i * C:(i + 1) * C], 100.0, 10 ** 6) for i in range(3)], 1)
    T.ok(rel_err(whole, per) < EXACT and rel_err(whole[:, ::C], x[:, ::C]) < EXACT
         and rel_err(whole[:, 1], x[:, 1]) > 1e-3,
         "rope: positions restart at 0 in every chunk (identity at 0, a rotation after)")
    q, k = torch.randn(d, dtype=DT), torch.randn(d, dtype=DT)

    def dot(a, b):  # q at position a, k at position b, one long chunk
        rq = mr.rope(q.expand(1, a + 1, 1, d), 10.0, 10 ** 6)[0, a, 0]
        rk = mr.rope(k.expand(1, b + 1, 1, d), 10.0, 10 ** 6)[0, b, 0]
        return float(rq @ rk)
    T.ok(abs(dot(5, 2) - dot(7, 4)) < 1e-12 and abs(dot(5, 2) - dot(5, 3)) > 1e-6,
         "rope: q.k depends only on the position difference")
    q, k, v = (torch.randn(B, 2 * C, H, n, dtype=DT) for n in (d, d, 5))
    o = mr.chunk_attention(q, k, v, C)
    o2 = torch.cat([mr.chunk_attention(q[:, s], k[:, s], v[:, s], C)
                    for s in (slice(0, C), slice(C, 2 * C))], 1)
    v2 = v.clone()
    v2[:, 3] += 1
    o3 = mr.chunk_attention(q, k, v2, C)
    T.ok(rel_err(o, o2) < EXACT and rel_err(o3[:, :3], o[:, :3]) < EXACT
         and rel_err(o3[:, 3], o[:, 3]) > 1e-3 and rel_err(o3[:, C:], o[:, C:]) < EXACT,
         "attention: causal and local to each chunk")


for desc, fn in (("gradcheck", check_gradcheck), ("closed forms", check_closed_forms),
                 ("split", check_split), ("rope and chunks", check_rope_and_chunks)):
    T.run(desc, fn)
T.done()
