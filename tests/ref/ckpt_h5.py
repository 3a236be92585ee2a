"""ckpt_h5.py: megatrain checkpoints read with h5py alone, as doc/checkpoint.md describes them, for
the tests: meta.h5's checksum, every tensor of a group assembled whole (every checksum checked),
and a format 4 checkpoint rewritten as format 2 (one file per tp rank, pp 1), as megatrain
wrote them before, to test that they still load.

    python3 ckpt_h5.py to-v2 CKPT     rewrites CKPT in place as format 2"""

import glob
import os
import struct
import sys

import h5py
import numpy as np

GROUPS = ("params", "adam_m", "adam_v")
META_INTS = ["format_version", "step", "cursor", "seed", "tp", "pp", "dp", "cp", "vocab_size", "n_layers",
             "d_model", "n_heads", "z_dim", "v_dim", "ffn_dim", "swiglu", "chunk", "groups", "cema_ndim",
             "scale_emb", "share_emb", "data_fingerprint"]


def fnv1a64(data):
    h = 0xcbf29ce484222325
    for b in bytes(data):
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


def u64(v):
    return int(v) & 0xFFFFFFFFFFFFFFFF


def meta_checksum(f):
    """The fnv1a64 of meta.h5 (an open h5py file) as doc/checkpoint.md defines it for its version."""
    v4 = int(f.attrs["format_version"][0]) >= 4
    ints = META_INTS + (["files"] if v4 else [])
    strings = ["format", "time", "git", "config"] + (["tensor_names"] if v4 else [])
    data = b"".join(k.encode() + b"\0" + struct.pack("<q", int(f.attrs[k][0])) for k in ints)
    data += b"".join(k.encode() + b"\0" + struct.pack("<d", float(f.attrs[k])) for k in ("rope_base", "norm_eps"))
    data += b"".join(k.encode() + b"\0" + bytes(f.attrs[k]) + b"\0" for k in strings)
    if v4:
        data += b"".join(k.encode() + b"\0" + f[k][...].astype("<i8").tobytes() for k in ("tensors", "slices"))
    return fnv1a64(data)


def meta_good(ckpt, version):
    """meta.h5 is of that format version and its fnv1a64 matches its values."""
    with h5py.File(os.path.join(ckpt, "meta.h5"), "r") as f:
        return int(f.attrs["format_version"][0]) == version and meta_checksum(f) == u64(f.attrs["fnv1a64"][0])


def read_v4(ckpt, group):
    """name -> global tensor from the rank files, slice by slice through meta.h5's index."""
    with h5py.File(os.path.join(ckpt, "meta.h5"), "r") as m:
        names = bytes(m.attrs["tensor_names"]).decode().split("\n")
        tensors, slices, tp = m["tensors"][...], m["slices"][...], int(m.attrs["tp"][0])
    flat, bad = {}, []
    for t, shard, lo, hi, file, offset, *sums in slices:
        ndim, split = tensors[t][0], tensors[t][4]
        n = int(np.prod(tensors[t][1:1 + ndim])) // (tp if split >= 0 else 1)
        part = flat.setdefault((t, shard), np.full(n, np.nan, np.float32))
        with h5py.File(os.path.join(ckpt, f"rank-{file:05d}.h5"), "r") as f:
            a = f[group][offset:offset + hi - lo]
        if fnv1a64(a.astype("<f4").tobytes()) != u64(sums[GROUPS.index(group)]):
            bad.append(f"rank-{file:05d}.h5:{names[t]}[{lo}:{hi}]")
        part[lo:hi] = a
    assert not bad, f"checksum mismatch: {bad}"
    out = {}
    for (t, shard), part in flat.items():
        ndim, split = tensors[t][0], tensors[t][4]
        shape = tuple(int(s) for s in tensors[t][1:1 + ndim])
        local = list(shape)
        index = [slice(None)] * ndim
        if split >= 0:
            local[split] //= tp
            index[split] = slice(shard * local[split], (shard + 1) * local[split])
        out.setdefault(names[t], np.full(shape, np.nan, np.float32))[tuple(index)] = part.reshape(local)
    return out


def read_v2(ckpt, group):
    """name -> global tensor from the shard files, placed by each dataset's attributes."""
    out, bad = {}, []
    for file in sorted(glob.glob(os.path.join(ckpt, "shard-*.h5"))):
        with h5py.File(file, "r") as f:
            for name, d in f[group].items():
                a = d[...]
                shape = tuple(d.attrs["global_shape"])
                dim, tp, rank = d.attrs["split_tp_rank"]
                if fnv1a64(a.astype("<f4").tobytes()) != u64(d.attrs["fnv1a64"][0]):
                    bad.append(f"{os.path.basename(file)}:{name}")
                g = out.setdefault(name, np.full(shape, np.nan, np.float32))
                index = [slice(None)] * len(shape)
                if dim >= 0:
                    index[dim] = slice(rank * a.shape[dim], (rank + 1) * a.shape[dim])
                g[tuple(index)] = a
    assert not bad, f"checksum mismatch: {bad}"
    return out


def read_checkpoint(ckpt, group="params"):
    """name -> global tensor of one group (the tied head is stored once, as embed.weight); checks
    every checksum."""
    with h5py.File(os.path.join(ckpt, "meta.h5"), "r") as f:
        v4 = int(f.attrs["format_version"][0]) >= 4
    return read_v4(ckpt, group) if v4 else read_v2(ckpt, group)


def to_v2(ckpt):
    """Rewrite a format 4 checkpoint in place as format 2, laid out for its tp and pp 1."""
    with h5py.File(os.path.join(ckpt, "meta.h5"), "r") as m:
        tp = int(m.attrs["tp"][0])
        names = bytes(m.attrs["tensor_names"]).decode().split("\n")
        splits = {n: int(row[4]) for n, row in zip(names, m["tensors"][...])}
    data = {g: read_v4(ckpt, g) for g in GROUPS}
    for r in range(tp):
        with h5py.File(os.path.join(ckpt, f"shard-pp000-tp{r:03d}.h5"), "w") as f:
            for g in GROUPS:
                for name, a in data[g].items():
                    dim = splits[name]
                    if dim >= 0:
                        a = np.split(a, tp, axis=dim)[r]
                    a = np.ascontiguousarray(a, "<f4")
                    d = f.create_dataset(f"{g}/{name}", data=a)
                    d.attrs["global_shape"] = np.array(data[g][name].shape, np.int64)
                    d.attrs["split_tp_rank"] = np.array([dim, tp, r], np.int64)
                    d.attrs["fnv1a64"] = np.array([fnv1a64(a.tobytes())], np.uint64).view(np.int64)
    for file in glob.glob(os.path.join(ckpt, "rank-*.h5")):
        os.remove(file)
    path = os.path.join(ckpt, "meta.h5")
    with h5py.File(path, "r") as f:
        attrs = {k: f.attrs[k] for k in f.attrs if k not in ("files", "tensor_names", "fnv1a64")}
    attrs["format_version"] = np.array([2], np.int64)
    attrs["pp"] = np.array([1], np.int64)
    with h5py.File(path + ".new", "w") as f:  # as format 2 was written: no user block, no seal
        for k, v in attrs.items():
            f.attrs[k] = v
        f.attrs["fnv1a64"] = np.array([meta_checksum(f)], np.uint64).view(np.int64)
    os.replace(path + ".new", path)

if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "to-v2":
        sys.exit(__doc__)
    to_v2(sys.argv[2])
