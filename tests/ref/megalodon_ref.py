"""Independent PyTorch reference of the MEGALODON model (shared/megalodon-spec.md), used by the
tests to check megatrain's C model. Float64 on the CPU, gradients by autograd. The two stateful
ops are written in closed form (TimestepNorm: cumulative sums) and convolution form (CEMA: an
explicit kernel), not as the sequential recurrences the C code runs, so agreement checks both.

Parameters are a dict name -> tensor with the names and shapes of spec section 16; complex CEMA
gamma has a trailing axis of 2 (re, im). The config is a dict with the keys of CONFIG_KEYS (the
root attributes of a `megatrain dump` file)."""

import math

import torch
import torch.nn.functional as F

CONFIG_KEYS = {  # key -> type; the same names as the dump file's root attributes
    "vocab_size": int, "n_layers": int, "d_model": int, "n_heads": int, "z_dim": int,
    "v_dim": int, "ffn_dim": int, "swiglu": bool, "chunk": int, "groups": int,
    "cema_ndim": int, "rope_base": float, "norm_eps": float, "scale_emb": bool,
    "share_emb": bool,
}
TIED = "output.output.weight"  # with share_emb: an alias of embed.weight, not a parameter


def make_config(attrs):
    """Config dict from any mapping holding CONFIG_KEYS (e.g. h5py attrs with numpy scalars)."""
    cfg = {k: t(attrs[k]) for k, t in CONFIG_KEYS.items()}
    D, H = cfg["d_model"], cfg["n_heads"]
    assert D % cfg["groups"] == 0 and cfg["z_dim"] % H == 0 and cfg["v_dim"] % H == 0
    assert (cfg["z_dim"] // H) % 2 == 0, "RoPE needs an even per-head dz"
    return cfg


def param_shapes(cfg):
    """Ordered {name: shape} of the trained tensors (spec section 16). With share_emb the output
    head is embed.weight itself: TIED is not listed (dump files hold it as a copy)."""
    V, D, N = cfg["vocab_size"], cfg["d_model"], cfg["cema_ndim"]
    Z, Vd, Fd = cfg["z_dim"], cfg["v_dim"], cfg["ffn_dim"]
    s = {"embed.weight": (V, D)}
    for i in range(cfg["n_layers"]):
        m, f = f"layers.{i}.mega.", f"layers.{i}.nffn."
        s.update({
            m + "timenorm.weight": (D,), m + "timenorm.bias": (D,),
            m + "cema.alpha": (D, N, 1), m + "cema.delta": (D, N, 1),
            m + "cema.theta": (D, 1, 1), m + "cema.gamma": (D, N, 2), m + "cema.omega": (D, 1),
            m + "rmsnorm.weight": (D,),
            m + "wz.weight": (Z, D), m + "wz.bias": (Z,),
            m + "gamma": (2, Z), m + "beta": (2, Z),
            m + "wv.weight": (Vd, D), m + "wv.bias": (Vd,),
            m + "wr.weight": (Vd, D), m + "wr.bias": (Vd,),
            m + "wh1.weight": (D, D), m + "wh1.bias": (D,),
            m + "wh2.weight": (D, Vd),
            f + "norm.weight": (D,), f + "norm.bias": (D,),
            f + "fc1.weight": (Fd, D),
        })
        if cfg["swiglu"]:
            s[f + "fc3.weight"] = (Fd, D)
        s[f + "fc2.weight"] = (D, Fd)
    s["output.final_norm.weight"] = (D,)
    s["output.final_norm.bias"] = (D,)
    if not cfg["share_emb"]:
        s[TIED] = (V, D)
    return s


def dump_names(cfg):
    """Names of the tensors in a dump file's /params, /grads, /updated (TIED always present)."""
    return list(param_shapes(cfg)) + ([TIED] if cfg["share_emb"] else [])


def timestep_norm(x, weight, bias, groups, eps, state=None):
    """TimestepNorm (spec section 4) in closed form. x (B, L, D) -> y (B, L, D), final state.

    The running mean/variance at step t are the population mean/variance of every element of the
    group seen up to t (and of the n0 prior steps), so they are cumulative sums over time of the
    per-step means and per-step second moments (variance + mean^2). state = (n0, mean0, var0):
    n0 a number or (B,), mean0/var0 (B, G); None is prior count 0. Returns (n, mean, var) at L."""
    B, L, D = x.shape
    xg = x.reshape(B, L, groups, D // groups)
    ux = xg.mean(-1)                                     # (B, L, G) per-step mean
    gv = ((xg - ux.unsqueeze(-1)) ** 2).mean(-1)         # (B, L, G) per-step variance
    n = torch.arange(1, L + 1, dtype=x.dtype).view(1, L, 1)
    s1 = torch.cumsum(ux, 1)                             # sum of means
    s2 = torch.cumsum(gv + ux * ux, 1)                   # sum of second moments
    if state is not None:
        n0, m0, v0 = state
        n0 = torch.as_tensor(n0, dtype=x.dtype).reshape(-1, 1, 1)
        n = n + n0
        s1 = s1 + n0 * m0.unsqueeze(1)
        s2 = s2 + n0 * (v0 + m0 * m0).unsqueeze(1)
    mean = s1 / n                                        # (B, L, G)
    var = s2 / n - mean * mean
    y = (xg - mean.unsqueeze(-1)) * torch.rsqrt(var + eps).unsqueeze(-1)
    y = y.reshape(B, L, D) * (1 + weight) + bias
    return y, (n[:, -1, 0].expand(B), mean[:, -1], var[:, -1])


def cema_coeffs(alpha, delta, theta, gamma):
    """CEMA coefficients (spec section 3): p (D, N) real, q = r*exp(i*ang) as r, ang (D, N),
    g = gamma/sqrt(N) as re, im (D, N)."""
    D, N = alpha.shape[0], alpha.shape[1]
    p = torch.sigmoid(alpha.reshape(D, N))
    r = 1 - p * torch.sigmoid(delta.reshape(D, N))
    k = torch.arange(1, N + 1, dtype=alpha.dtype)
    ang = torch.sigmoid(theta.reshape(D, 1)) * (2 * math.pi / N) * k
    g = gamma.reshape(D, N, 2) / math.sqrt(N)
    return p, r, ang, g[..., 0], g[..., 1]


def _qpow(r, ang, e):
    """Re and Im of q^e, q = r*exp(i*ang) (D, N), for exponents e (T,): each (D, N, T)."""
    mag = torch.exp(torch.log(r).unsqueeze(-1) * e)
    ph = ang.unsqueeze(-1) * e
    return mag * torch.cos(ph), mag * torch.sin(ph)


def cema_kernel(p, r, ang, gr, gi, L):
    """K[d, l] = Re(sum_k g p q^l), l = 0..L-1: (D, L)."""
    qr, qi = _qpow(r, ang, torch.arange(L, dtype=p.dtype))
    return torch.einsum("dn,dnl->dl", p * gr, qr) - torch.einsum("dn,dnl->dl", p * gi, qi)


def causal_conv(u, kern):
    """y[b, t, d] = sum_{j<=t} kern[d, t-j] u[b, j, d]; u (B, L, D), kern (D, L)."""
    B, L, D = u.shape
    x = F.pad(u.transpose(1, 2), (L - 1, 0))               # (B, D, 2L-1), zeros in the past
    y = F.conv1d(x, kern.flip(-1).unsqueeze(1), groups=D)  # conv1d correlates: flip the kernel
    return y.transpose(1, 2)


def cema(u, alpha, delta, theta, gamma, omega, h0=None):
    """CEMA (spec section 3) by its convolution form. u (B, L, D) -> y (B, L, D) and the final
    hidden state h_L (B, D, N, 2). h0 (B, D, N, 2) is the incoming state (None: zero)."""
    B, L, D = u.shape
    p, r, ang, gr, gi = cema_coeffs(alpha, delta, theta, gamma)
    y = causal_conv(u, cema_kernel(p, r, ang, gr, gi, L)) + omega.reshape(D) * u
    # h_L = p sum_j q^(L-1-j) u_j (+ q^L h0): powers 0..L-1 against u reversed in time
    qr, qi = _qpow(r, ang, torch.arange(L, dtype=u.dtype))
    uf = u.flip(1)
    hr = p * torch.einsum("dnl,bld->bdn", qr, uf)
    hi = p * torch.einsum("dnl,bld->bdn", qi, uf)
    if h0 is not None:
        h0r, h0i = h0[..., 0], h0[..., 1]                    # (B, D, N)
        ar, ai = gr * h0r - gi * h0i, gr * h0i + gi * h0r    # g*h0
        qr1, qi1 = _qpow(r, ang, torch.arange(1, L + 1, dtype=u.dtype))  # q^(l+1)
        y = y + (torch.einsum("bdn,dnl->bld", ar, qr1) - torch.einsum("bdn,dnl->bld", ai, qi1))
        qLr, qLi = qr1[..., -1], qi1[..., -1]                # q^L (D, N)
        hr = hr + qLr * h0r - qLi * h0i
        hi = hi + qLr * h0i + qLi * h0r
    return y, torch.stack((hr, hi), -1)


def rope(x, base, chunk):
    """RoPE on x (B, L, H, d): pairs (2j, 2j+1) rotated by pos*base^(-2j/d) as the complex
    product (x_2j + i x_2j+1)*exp(i*angle); pos = index inside the attention chunk."""
    B, L, H, d = x.shape
    pos = (torch.arange(L) % chunk).to(x.dtype)
    freq = base ** (-torch.arange(0, d, 2, dtype=x.dtype) / d)  # (d/2)
    a = (pos.unsqueeze(1) * freq).view(1, L, 1, d // 2)
    c, s = torch.cos(a), torch.sin(a)
    x0, x1 = x[..., 0::2], x[..., 1::2]
    return torch.stack((x0 * c - x1 * s, x0 * s + x1 * c), -1).reshape(B, L, H, d)


def attention_chunk(L, chunk):
    """Length of one attention chunk: the whole sequence when L <= chunk."""
    if L <= chunk:
        return L
    assert L % chunk == 0, "sequence length must be < chunk or a multiple of it"
    return chunk


def chunk_attention(q, k, v, chunk):
    """Chunk-local causal softmax attention, no 1/sqrt(d) scale. q, k (B, L, H, dz),
    v (B, L, H, dv) -> (B, L, H*dv)."""
    B, L, H, dz = q.shape
    c = attention_chunk(L, chunk)
    n = L // c
    qc, kc = q.reshape(B, n, c, H, dz), k.reshape(B, n, c, H, dz)
    vc = v.reshape(B, n, c, H, -1)
    s = torch.einsum("bnihd,bnjhd->bnhij", qc, kc)
    causal = torch.ones(c, c, dtype=torch.bool).tril()
    a = torch.softmax(s.masked_fill(~causal, float("-inf")), -1)
    return torch.einsum("bnhij,bnjhd->bnihd", a, vc).reshape(B, L, -1)


def rms_norm(x, weight, eps):
    return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + eps) * (1 + weight)


def layer_norm(x, weight, bias, eps):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) * torch.rsqrt(var + eps) * (1 + weight) + bias


class MegalodonRef:
    """The whole model. params: name -> tensor (spec section 16 names and shapes; with share_emb
    TIED may be present and is ignored: the head uses embed.weight)."""

    def __init__(self, cfg, params):
        self.cfg = cfg
        self.p = params
        missing = [n for n in param_shapes(cfg) if n not in params]
        assert not missing, f"missing parameters: {missing}"
        for n, s in param_shapes(cfg).items():
            assert tuple(params[n].shape) == s, f"{n}: shape {tuple(params[n].shape)}, want {s}"

    def parameters(self):
        """The trained tensors, each once (the tied head is embed.weight)."""
        return [self.p[n] for n in param_shapes(self.cfg)]

    def block(self, i, x, state=None):
        """Megalodon block i (spec section 2) on x (B, L, D). state: None or a dict with 'tsn'
        (n0, mean0, var0) and 'cema' h0; returns y and the outgoing state dict."""
        cfg, eps = self.cfg, self.cfg["norm_eps"]
        B, L, D = x.shape
        H = cfg["n_heads"]
        dz = cfg["z_dim"] // H

        def P(name):
            return self.p[f"layers.{i}.{name}"]

        state = state or {}
        xh, tsn = timestep_norm(x, P("mega.timenorm.weight"), P("mega.timenorm.bias"),
                                cfg["groups"], eps, state.get("tsn"))
        xc, h = cema(xh, P("mega.cema.alpha"), P("mega.cema.delta"), P("mega.cema.theta"),
                     P("mega.cema.gamma"), P("mega.cema.omega"), state.get("cema"))
        m = rms_norm(xc, P("mega.rmsnorm.weight"), eps)
        zs = F.linear(m, P("mega.wz.weight"), P("mega.wz.bias")).reshape(B, L, H, dz)
        zt = zs * torch.rsqrt((zs * zs).mean(-1, keepdim=True) + eps)
        kappa = P("mega.gamma").reshape(2, H, dz)
        mu = P("mega.beta").reshape(2, H, dz)
        q = zt * (1 + kappa[0]) / math.sqrt(dz) + mu[0]
        k = zt * (1 + kappa[1]) / math.sqrt(dz) + mu[1]
        v = F.silu(F.linear(xh, P("mega.wv.weight"), P("mega.wv.bias")))
        r = F.silu(F.linear(m, P("mega.wr.weight"), P("mega.wr.bias")))
        C, base = cfg["chunk"], cfg["rope_base"]
        o = chunk_attention(rope(q, base, C), rope(k, base, C), v.reshape(B, L, H, -1), C)
        hh = F.linear(m, P("mega.wh1.weight"), P("mega.wh1.bias")) + \
            F.linear(r * o, P("mega.wh2.weight"))
        u = layer_norm(hh + x, P("nffn.norm.weight"), P("nffn.norm.bias"), eps)
        a = F.silu(F.linear(u, P("nffn.fc1.weight")))
        if cfg["swiglu"]:
            a = a * F.linear(u, P("nffn.fc3.weight"))
        y = F.linear(a, P("nffn.fc2.weight")) + x    # two-hop residual: X, not Y^
        return y, {"tsn": tsn, "cema": h}

    def forward(self, tokens, states=None):
        """tokens (B, L) int64 -> logits (B, L, vocab) and the outgoing states: a list with one
        block state dict per layer, then {'tsn': ...} of the final norm. states: the same
        structure coming in (None: start of the sequence)."""
        cfg = self.cfg
        states = states or [None] * (cfg["n_layers"] + 1)
        x = F.embedding(tokens, self.p["embed.weight"])
        if cfg["scale_emb"]:
            x = x * math.sqrt(cfg["d_model"])
        out = []
        for i in range(cfg["n_layers"]):
            x, s = self.block(i, x, states[i])
            out.append(s)
        fin = states[-1] or {}
        x, tsn = timestep_norm(x, self.p["output.final_norm.weight"],
                               self.p["output.final_norm.bias"], cfg["groups"],
                               cfg["norm_eps"], fin.get("tsn"))
        out.append({"tsn": tsn})
        head = self.p["embed.weight" if cfg["share_emb"] else TIED]
        return F.linear(x, head), out

    def loss(self, inputs, targets):
        """Mean cross-entropy over all B*L tokens."""
        logits, _ = self.forward(inputs)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def leaf_params(arrays, cfg, dtype=torch.float64):
    """Fresh leaf tensors (requires_grad) from name -> array-like, for the trained names."""
    return {n: torch.tensor(arrays[n], dtype=dtype).requires_grad_(True)
            for n in param_shapes(cfg)}


def grads_by_dump_name(model):
    """name -> gradient for every dump name (the tied head gets embed.weight's total)."""
    g = {n: model.p[n].grad for n in param_shapes(model.cfg)}
    if model.cfg["share_emb"]:
        g[TIED] = g["embed.weight"]
    return g


def train_adamw(model, inputs, targets, lrs, beta1, beta2, eps, weight_decay, grad_clip):
    """len(lrs) AdamW steps (torch.optim.AdamW, decay on every parameter, spec section 9) on one
    batch, with global-norm clipping (clip_grad_norm_; grad_clip <= 0 turns it off) before each
    step. Updates model.p in place; returns the loss before each step."""
    params = model.parameters()
    opt = torch.optim.AdamW(params, lr=float(lrs[0]), betas=(beta1, beta2), eps=eps,
                            weight_decay=weight_decay)
    losses = []
    for lr in lrs:
        for group in opt.param_groups:
            group["lr"] = float(lr)
        opt.zero_grad()
        loss = model.loss(inputs, targets)
        loss.backward()
        if grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(params, grad_clip)
        opt.step()
        losses.append(loss.item())
    return losses
