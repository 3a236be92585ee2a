# test_data_h5py.py: the dataset format as doc/data.md describes it, seen from h5py. Shards and the
# manifest that megadata writes read back in h5py as the documented attributes, tokens and
# checksums (recomputed here); shards written with h5py by the documented recipe (and with h5py's
# default variable-length strings) are refused by `megadata verify` until `megadata manifest`
# lists them, then pass it; broken ones (an id >= vocab_size, a missing attribute) are named with
# exit status 2.
import os
import subprocess
import sys
import tempfile

from tap import check, done

try:
    import h5py
    import numpy as np
except ImportError as e:  # not a SKIP, which would pass
    print(f"Bail out! {e.name} is missing (tools/install-deps.sh installs python3-h5py and python3-numpy)")
    sys.exit(1)


def fnv1a64(tokens, width):
    """The checksum attribute: FNV-1a (64-bit) of the tokens as width-byte little-endian values."""
    h = 0xCBF29CE484222325
    for byte in np.asarray(tokens).astype(f"<u{width}").tobytes():
        h = ((h ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def write_shard(path, tokens, vocab_size, eod_id, tokenizer, split, doc_offsets=None, bos_id=-1,
                tokenizer_checksum=0):
    """Write one shard as doc/data.md describes it (the recipe given there)."""
    dtype = np.uint16 if vocab_size <= 65536 else np.uint32
    tokens = np.asarray(tokens, dtype=dtype)
    # the 1.10 format checksums all metadata; fixed-length strings (np.bytes_) live in the
    # checksummed object header
    with h5py.File(path + ".tmp", "w", libver=("v110", "v110")) as f:
        f.create_dataset("tokens", data=tokens, chunks=(min(len(tokens), 16384),), maxshape=(None,),
                         fletcher32=True)
        if doc_offsets is not None:
            f.create_dataset("doc_offsets", data=np.asarray(doc_offsets, dtype=np.uint64),
                             fletcher32=True)
        f.attrs["format"] = np.bytes_("megatrain-tokens")
        f.attrs["format_version"] = 2
        f.attrs["vocab_size"] = vocab_size
        f.attrs["eod_id"] = eod_id
        f.attrs["bos_id"] = bos_id
        f.attrs["tokenizer"] = np.bytes_(tokenizer)
        f.attrs["tokenizer_checksum"] = np.uint64(tokenizer_checksum)
        f.attrs["split"] = np.bytes_(split)
        f.attrs["n_tokens"] = len(tokens)
        f.attrs["checksum"] = np.uint64(fnv1a64(tokens, tokens.itemsize))
    os.rename(path + ".tmp", path)  # readers never see half a shard


def megadata(*args, env=None):
    exe = os.path.join(os.environ.get("top_builddir", "."), "megadata")
    return subprocess.run([exe, *args], capture_output=True, text=True, env=env, timeout=120)


def damage_global_heap(path):
    """Set the size of the free space in the file's global heap (where variable-length strings
    live) to 0; HDF5 1.10 then loops forever reading such a string. Returns whether it found it."""
    b = bytearray(open(path, "rb").read())
    at = b.find(b"GCOL")
    if at < 0:
        return False
    end, p = at + int.from_bytes(b[at + 8:at + 16], "little"), at + 16
    while p + 16 <= end:  # objects: index (2), references (2), reserved (4), size (8), data padded to 8
        index, size = int.from_bytes(b[p:p + 2], "little"), int.from_bytes(b[p + 8:p + 16], "little")
        if index == 0:
            b[p + 8:p + 16] = bytes(8)
            open(path, "wb").write(b)
            return True
        p += 16 + (size + 7) // 8 * 8
    return False


def main():
    srcdir = os.environ.get("top_srcdir", ".")
    text = os.path.join(srcdir, "tests", "data", "text")
    with tempfile.TemporaryDirectory() as tmp:
        # megadata -> h5py
        out = os.path.join(tmp, "ds")
        r = megadata("build", out, text, "--val-fraction", "0", "--shard-tokens", "500")
        if not check(r.returncode == 0, "megadata builds the text fixture", r.stderr):
            return done()
        docs = []
        for root, dirs, files in os.walk(text):
            dirs.sort()
            docs += [os.path.join(root, name) for name in files if not name.startswith(".")]
        docs.sort(key=lambda p: os.path.relpath(p, text).split(os.sep))
        want = []
        for path in docs:
            want += list(open(path, "rb").read()) + [256]
        names = sorted(n for n in os.listdir(out) if n.startswith("train-"))
        stream, starts, attrs_ok, sums_ok = [], [], True, True
        for name in names:
            with h5py.File(os.path.join(out, name), "r") as f:
                a = f.attrs
                attrs_ok &= (a["format"].decode() == "megatrain-tokens" and a["format_version"] == 2
                             and a["vocab_size"] == 257 and a["eod_id"] == 256 and a["bos_id"] == -1
                             and a["tokenizer_checksum"] == 0
                             and a["tokenizer"].decode() == "bytes" and a["split"].decode() == "train"
                             and a["n_tokens"] == len(f["tokens"]) and f["tokens"].dtype == np.uint16)
                tokens = f["tokens"][:]
                sums_ok &= int(a["checksum"]) == fnv1a64(tokens, 2)
                starts += [len(stream) + int(o) for o in f["doc_offsets"][:]]
                stream += tokens.tolist()
        check(stream == want, f"h5py reads {len(names)} shards as the files' bytes, each followed by 256")
        check(attrs_ok, "h5py sees the documented attributes (strings as bytes)")
        check(sums_ok, "the checksum attribute is FNV-1a 64 of the little-endian tokens")
        check(starts == [0] + [i + 1 for i, t in enumerate(want[:-1]) if t == 256],
              "doc_offsets mark where each document starts")
        with h5py.File(os.path.join(out, "manifest.h5"), "r") as f:
            a, c = f.attrs, int(f.attrs["chunk_tokens"])
            want_sums, got_sums = [], list(f["chunk_checksums"][:])
            for name in names:
                with h5py.File(os.path.join(out, name), "r") as g:
                    tokens = g["tokens"][:]
                want_sums += [fnv1a64(tokens[k:k + c], 2) for k in range(0, len(tokens), c)]
            check(a["format"].decode() == "megatrain-dataset" and a["format_version"] == 2 and c == 16384
                  and [n.decode() for n in f["shards"][:]] == names
                  and list(f["n_tokens"][:]) == [len(h5py.File(os.path.join(out, n), "r")["tokens"]) for n in names]
                  and got_sums == want_sums,
                  "manifest.h5 lists the shards, their n_tokens, and FNV-1a 64 of every chunk of 16384 tokens")

        # h5py -> megadata
        rng = np.random.default_rng(7)
        own = os.path.join(tmp, "own")
        os.mkdir(own)
        for split, n in (("train", 3000), ("val", 500)):
            write_shard(os.path.join(own, f"{split}-00000.h5"), rng.integers(0, 50257, n), 50257, 50256,
                        "gpt2", split, doc_offsets=[0, n // 2])
        with h5py.File(os.path.join(own, "val-00000.h5"), "a") as f:
            f.attrs["tokenizer"] = "gpt2"  # a Python str: h5py's variable-length string
        r = megadata("verify", own)
        check(r.returncode == 2 and "own: no manifest.h5" in r.stderr and "megadata manifest" in r.stderr,
              "shards without a manifest: verify says to run megadata manifest, exit 2", r.stderr)
        r = megadata("manifest", own)
        check(r.returncode == 0 and "manifest.h5: 2 shards checked and added" in r.stdout,
              "megadata manifest checks and lists the h5py-written shards", r.stdout + r.stderr)
        r = megadata("verify", own)
        check(r.returncode == 0 and "split train: 1 shard, 3000 tokens, 2 documents" in r.stdout,
              "a shard written with h5py by the documented recipe passes megadata verify", r.stdout + r.stderr)
        r = megadata("info", own)
        check(r.returncode == 0 and "tokenizer  gpt2" in r.stdout and "vocab      50257" in r.stdout,
              "megadata info reads the h5py-written shards", r.stdout + r.stderr)
        tokens = rng.integers(0, 50257, 100)
        tokens[37] = 60000
        write_shard(os.path.join(own, "train-00001.h5"), tokens, 50257, 50256, "gpt2", "train")
        r = megadata("verify", own)
        check(r.returncode == 2 and "train-00001.h5: not listed in" in r.stderr,
              "a shard added without megadata manifest: verify names it, exit 2", r.stderr)
        r = megadata("manifest", own)
        check(r.returncode == 2 and "train-00001.h5: token 37 is 60000, not below vocab_size 50257" in r.stderr,
              "an id >= vocab_size written by h5py: megadata manifest names file and token, exit 2", r.stderr)
        os.remove(os.path.join(own, "train-00001.h5"))
        old = os.path.join(tmp, "old")  # format version 1: no bos_id, no tokenizer_checksum
        os.mkdir(old)
        write_shard(os.path.join(old, "train-00000.h5"), rng.integers(0, 50257, 100), 50257, 50256, "gpt2", "train")
        with h5py.File(os.path.join(old, "train-00000.h5"), "a") as f:
            f.attrs["format_version"] = 1
            del f.attrs["bos_id"], f.attrs["tokenizer_checksum"]
        r = megadata("manifest", old)
        r2 = megadata("info", old)
        check(r.returncode == 0 and "shards megatrain-tokens version 1" in r2.stdout and "bos        -1" in r2.stdout,
              "shards of format version 1 (before bos_id and tokenizer_checksum) are still read", r.stderr + r2.stderr)
        with h5py.File(os.path.join(own, "val-00000.h5"), "a") as f:
            del f.attrs["bos_id"]
        r = megadata("verify", own)
        check(r.returncode == 2 and "val-00000.h5: missing attribute 'bos_id'" in r.stderr,
              "version 2 without bos_id: verify names file and attribute, exit 2", r.stderr)
        with h5py.File(os.path.join(own, "val-00000.h5"), "a") as f:
            f.attrs["bos_id"] = -1
            del f.attrs["eod_id"]
        r = megadata("verify", own)
        check(r.returncode == 2 and "val-00000.h5: missing attribute 'eod_id'" in r.stderr
              and "HDF5-DIAG" not in r.stderr, "a missing attribute: verify names file and attribute, exit 2",
              r.stderr)

        # h5py's default strings live in the global heap, which has no checksum: damaged, HDF5 1.10
        # loops forever; the read's guard stops the job with exit 2 naming the file instead
        heap = os.path.join(tmp, "heap")
        os.mkdir(heap)
        shard = os.path.join(heap, "train-00000.h5")
        write_shard(shard, rng.integers(0, 50257, 3000), 50257, 50256, "gpt2", "train")
        with h5py.File(shard, "a") as f:
            for name, value in (("format", "megatrain-tokens"), ("tokenizer", "gpt2"), ("split", "train")):
                f.attrs[name] = value  # a Python str: variable-length
        r = megadata("manifest", heap)
        check(r.returncode == 0 and damage_global_heap(shard), "a shard with h5py's strings, listed, then its "
              "global heap's free space given size 0", r.stderr)
        guard = dict(os.environ, MEGATRAIN_TEST_H5_GUARD_SECONDS="3")
        r = megadata("verify", heap, env=guard)
        check(r.returncode == 2 and f"{shard}: HDF5 did not finish reading the file's metadata in 3 s" in r.stderr,
              "megadata verify on it: stops within the guard's time, naming the file, exit 2", r.stderr)
        exe = os.path.join(os.environ.get("top_builddir", "."), "megatrain")
        cfg = os.path.join(tmp, "run.yaml")
        with open(cfg, "w") as f:
            f.write("model: {n_layers: 1, d_model: 32, n_heads: 2, z_dim: 16, v_dim: 32, ffn_dim: 48, chunk: 8, "
                    "groups: 4}\ndata: {seq_len: 32, batch_size: 2}\ntrain: {steps: 1}\n")
        r = subprocess.run([exe, cfg, "--set", f"data.path={heap}"], capture_output=True, text=True, env=guard,
                           timeout=120)
        check(r.returncode == 2 and f"{shard}: HDF5 did not finish reading" in r.stderr,
              "megatrain on that dataset: the same, exit 2", r.stderr)
    return done()


sys.exit(main())
