# test_tokenizers.py: megadata's tokenizers give the reference encoders' ids, every one of them, on
# more than 1 MB of varied text (tests/tokenizer_corpus.py: many scripts, emoji, control
# characters, runs of spaces, digits and newlines, ill-formed UTF-8). SentencePiece models trained
# by `megadata tokenizer train` (LLaMA-2's settings, and variants that flip the normalizer's flags,
# byte fallback, user-defined pieces, whitespace as suffix) against SentencePiece's own encoder
# (python3-sentencepiece); byte-level BPE tokenizer.json files (GPT-2 and LLaMA-3 style, trained
# here) against an independent reference written here (python3-regex for the pre-tokenizer
# expressions, GPT-2's published merge loop). `megadata tokenizer decode` gives back the text of
# those ids, id by id, as SentencePiece's decoder and a reference byte-level decoder do. Then a dataset built with a tokenizer holds those
# ids and records the tokenizer (read back with h5py); malformed tokenizer files are refused with
# one message, exit 2; the command line of megadata tokenizer, and tokenizer train on gzip JSON
# Lines.
import codecs
import collections
import gzip
import json
import os
import subprocess
import sys
import tempfile

import tokenizer_corpus
from tap import check, done

try:
    import h5py
    import regex
    import sentencepiece
except ImportError as e:  # not a SKIP, which would pass: without the references nothing is checked
    print(f"Bail out! {e.name} is missing (tools/install-deps.sh installs python3-h5py, python3-regex and "
          "python3-sentencepiece)")
    sys.exit(1)

top_builddir = os.environ.get("top_builddir", ".")
megadata = os.path.join(top_builddir, "megadata")


def run(*args):
    return subprocess.run([megadata, *args], capture_output=True)


def ours(tokenizer, paths):
    """megadata's ids for each file."""
    r = run("tokenizer", "encode", tokenizer, *paths)
    if r.returncode != 0:
        return None, r.stderr.decode(errors="replace")
    return [[int(x) for x in line.split()] for line in r.stdout.decode().split("\n")[:-1]], ""


def compare(what, tokenizer, paths, docs, reference, piece=str):
    """Every id of every document, megadata's against reference(bytes)."""
    got, err = ours(tokenizer, paths)
    if got is None:
        return check(False, what, err)
    nids = 0
    for path, doc, ids in zip(paths, docs, got):
        want = reference(doc)
        nids += len(want)
        if ids != want:
            k = next((i for i, (a, b) in enumerate(zip(ids, want)) if a != b), min(len(ids), len(want)))
            return check(False, what, f"{path}: id {k} differs: megadata {ids[max(0, k - 3):k + 4]}, reference "
                                      f"{want[max(0, k - 3):k + 4]} ({[piece(i) for i in want[max(0, k - 3):k + 4]]})")
    return check(len(got) == len(docs), f"{what}: {nids} ids of {len(docs)} documents, "
                                        f"{sum(map(len, docs))} bytes, all equal")


# ---- SentencePiece


def set_escape_whitespaces_off(data):
    """The model with normalizer_spec.escape_whitespaces (field 5 of field 3) false: spm_train has
    no flag for it. Protobuf wire format: the normalizer message is re-emitted with one field more."""

    def varint(n):
        out = bytearray()
        while True:
            out.append(n & 0x7F | (0x80 if n > 0x7F else 0))
            n >>= 7
            if not n:
                return bytes(out)

    def read_varint(b, i):
        n = shift = 0
        while True:
            n |= (b[i] & 0x7F) << shift
            shift += 7
            i += 1
            if not b[i - 1] & 0x80:
                return n, i

    out, i = bytearray(), 0
    while i < len(data):
        tag, j = read_varint(data, i)
        assert tag & 7 in (0, 2, 5)
        if tag & 7 == 0:
            _, j = read_varint(data, j)
        elif tag & 7 == 5:
            j += 4
        else:
            n, k = read_varint(data, j)
            j = k + n
            if tag >> 3 == 3:
                body = data[k:j] + b"\x28\x00"
                out += varint(tag) + varint(len(body)) + body
                i = j
                continue
        out += data[i:j]
        i = j
    return bytes(out)


def sentencepiece_tests(tmp, paths, docs):
    train = os.path.join(tmp, "train.txt")
    with open(train, "wb") as f:
        f.write(b"\n".join(docs))
    models = [
        ("LLaMA-2 settings", []),
        ("extra spaces removed, no dummy prefix, no byte fallback, user-defined pieces",
         ["--spm-option", "remove_extra_whitespaces=true", "--spm-option", "add_dummy_prefix=false",
          "--spm-option", "byte_fallback=false", "--spm-option", "user_defined_symbols=<|endoftext|>,ab,http://"]),
        ("whitespace as suffix, not split by whitespace", ["--spm-option", "treat_whitespace_as_suffix=true",
                                                           "--spm-option", "split_by_whitespace=false"]),
    ]
    for i, (name, options) in enumerate(models):
        model = os.path.join(tmp, f"sp{i}.model")
        r = run("tokenizer", "train", model, train, "--vocab", "4000", "--threads", "2", *options)
        if not check(r.returncode == 0 and os.path.exists(model), f"tokenizer train ({name}) writes {model}",
                     r.stderr.decode(errors="replace")[-2000:]):
            continue
        sp = sentencepiece.SentencePieceProcessor(model_file=model)
        info = run("tokenizer", "info", model).stdout.decode()
        want = f"kind      sentencepiece\nvocab     {sp.vocab_size()}\nbos       {sp.bos_id()}\neos       {sp.eos_id()}\n"
        check(info.startswith(want), f"tokenizer info: vocabulary, BOS and EOS ids as SentencePiece says ({name})",
              info + "\nexpected\n" + want)
        compare(f"SentencePiece ({name}) ids", model, paths, docs, sp.encode, sp.id_to_piece)
        if i == 0:
            noesc = os.path.join(tmp, "noescape.model")
            with open(model, "rb") as f, open(noesc, "wb") as g:
                g.write(set_escape_whitespaces_off(f.read()))
            sp = sentencepiece.SentencePieceProcessor(model_file=noesc)
            compare("SentencePiece (LLaMA-2 settings, escape_whitespaces off) ids", noesc, paths, docs, sp.encode,
                    sp.id_to_piece)
    return os.path.join(tmp, "sp0.model"), sentencepiece.SentencePieceProcessor(model_file=os.path.join(tmp, "sp0.model"))


# ---- byte-level BPE (tokenizer.json): an independent reference

GPT2 = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
LLAMA3 = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|"""
          r"""\s*[\r\n]+|\s+(?!\S)|\s+""")


def bytes_to_unicode():
    """GPT-2's byte-level alphabet (encoder.py): printable bytes stand for themselves."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


B2U = bytes_to_unicode()
U2B = {c: b for b, c in B2U.items()}


def split_isolated(pattern, text):
    """Hugging Face's Split with behavior Isolated: each match a piece, and so is each gap."""
    pieces, at = [], 0
    for m in regex.finditer(pattern, text):
        if m.start() > at:
            pieces.append(text[at:m.start()])
        pieces.append(m.group())
        at = m.end()
    return pieces + ([text[at:]] if at < len(text) else [])


def bpe(word, ranks):
    """GPT-2's merge loop: the lowest-ranked pair present merges everywhere, left to right."""
    word = list(word)
    while len(word) > 1:
        pairs = set(zip(word, word[1:]))
        best = min(pairs, key=lambda p: ranks.get(p, float("inf")))
        if best not in ranks:
            break
        merged, i = [], 0
        while i < len(word):
            if i + 1 < len(word) and (word[i], word[i + 1]) == best:
                merged.append(word[i] + word[i + 1])
                i += 2
            else:
                merged.append(word[i])
                i += 1
        word = merged
    return word


class Reference:
    """Encodes as a tokenizer.json says, with the pieces above."""

    def __init__(self, tj):
        self.vocab = tj["model"]["vocab"]
        self.ranks = {tuple(m.split(" ") if isinstance(m, str) else m): i for i, m in enumerate(tj["model"]["merges"])}
        self.ignore_merges = tj["model"].get("ignore_merges", False)
        self.unk = tj["model"].get("unk_token")
        self.fuse_unk = tj["model"].get("fuse_unk", False)
        self.byte_fallback = tj["model"].get("byte_fallback", False)
        pre = tj["pre_tokenizer"]
        stages = pre["pretokenizers"] if pre["type"] == "Sequence" else [pre]
        self.patterns = [p["pattern"]["Regex"] if p["type"] == "Split" else GPT2 for p in stages
                         if p["type"] == "Split" or p.get("use_regex", True)]
        self.prefix = stages[-1].get("add_prefix_space", False)
        self.added = {t["id"] for t in tj["added_tokens"]}
        self.cache = {}

    def symbols(self, s):
        """What merges start from: a character missing from the vocabulary becomes its UTF-8 bytes'
        <0xXX> tokens (byte_fallback), else unk_token (consecutive ones fused with fuse_unk), else
        nothing."""
        out, unknown = [], None
        for ch in s:
            fallback = ["<0x%02X>" % b for b in ch.encode()]
            if ch in self.vocab:
                out += [unknown] if unknown else []
                out.append(ch)
                unknown = None
            elif self.byte_fallback and all(t in self.vocab for t in fallback):
                out += fallback
            elif self.unk:
                out += [unknown] if unknown and not self.fuse_unk else []
                unknown = self.unk
        return out + ([unknown] if unknown else [])

    def word(self, piece):
        if piece not in self.cache:
            s = "".join(B2U[b] for b in piece.encode())
            tokens = [s] if self.ignore_merges and s in self.vocab else bpe(self.symbols(s), self.ranks)
            self.cache[piece] = [self.vocab[t] for t in tokens]
        return self.cache[piece]

    def decode(self, ids):
        """The bytes of ids as the ByteLevel decoder gives them, added tokens skipped: each
        character's byte, or a token as it is when a character is no byte's."""
        inverse = {i: t for t, i in self.vocab.items()}
        tokens = [inverse[i] for i in ids if i not in self.added]
        return b"".join(bytes(U2B[c] for c in t) if all(c in U2B for c in t) else t.encode() for t in tokens)

    def encode(self, data):
        text = data.decode("utf-8", "replace")
        if not text:
            return []
        if self.prefix and not text.startswith(" "):
            text = " " + text
        pieces = [text]
        for p in self.patterns:
            pieces = [q for piece in pieces for q in split_isolated(p, piece)]
        return [i for piece in pieces for i in self.word(piece)]


def train_byte_level(docs, pattern, rounds, per_round, alphabet=range(256)):
    """A byte-level BPE from docs: the alphabet's bytes, then each round merges the most frequent
    pairs of the words as the merges so far cut them (frequency, then the pair, decide the order);
    a pair whose merged token exists already is left out."""
    words = collections.Counter()
    for d in docs:
        for w in regex.findall(pattern, d.decode("utf-8", "replace")):
            words["".join(B2U[b] for b in w.encode() if b in alphabet)] += 1
    vocab = {B2U[b]: i for i, b in enumerate(sorted(alphabet))}
    merges, ranks = [], {}
    for _ in range(rounds):
        pairs = collections.Counter()
        for w, c in words.items():
            sym = bpe(list(w), ranks)
            for p in zip(sym, sym[1:]):
                pairs[p] += c
        added = 0
        for (a, b), _ in sorted(pairs.items(), key=lambda kv: (-kv[1], kv[0])):
            if added == per_round:
                break
            if a + b not in vocab:
                vocab[a + b] = len(vocab)
                ranks[(a, b)] = len(merges)
                merges.append((a, b))
                added += 1
    return vocab, merges


def tokenizer_json(vocab, merges, style, **model):
    n = len(vocab)
    if style == "gpt2":
        pre = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
        added = [{"id": n, "content": "<|endoftext|>", "single_word": False, "lstrip": False, "rstrip": False,
                  "normalized": True, "special": True}]
        model_extra = {"merges": [f"{a} {b}" for a, b in merges]}
    else:
        pre = {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": LLAMA3}, "behavior": "Isolated", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]}
        added = [{"id": n + i, "content": c, "single_word": False, "lstrip": False, "rstrip": False,
                  "normalized": False, "special": True}
                 for i, c in enumerate(["<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>"])]
        model_extra = {"ignore_merges": True, "merges": [[a, b] for a, b in merges]}
    return {"version": "1.0", "truncation": None, "padding": None, "added_tokens": added, "normalizer": None,
            "pre_tokenizer": pre, "post_processor": None,
            "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
            "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                      "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "vocab": vocab,
                      **model_extra, **model}}


def byte_level_tests(tmp, paths, docs):
    """GPT-2 and LLaMA-3 style files over all 256 bytes; then GPT-2 style ones trained on ASCII only,
    whose missing bytes are dropped, unk_token (fused or not) or byte fallback tokens."""
    ascii_vocab, ascii_merges = train_byte_level(docs[::3], GPT2, 3, 100, alphabet=range(128))
    n = len(ascii_vocab)
    fallback = {"<0x%02X>" % b: n + 1 + b for b in range(256)}
    styles = [("gpt2", "gpt2", train_byte_level(docs[::3], GPT2, 6, 150), {}),
              ("llama3", "llama3", train_byte_level(docs[::3], LLAMA3, 6, 150), {}),
              ("ascii, the other bytes dropped", "gpt2", (ascii_vocab, ascii_merges), {}),
              ("ascii, unk_token", "gpt2", ({**ascii_vocab, "<unk>": n}, ascii_merges), {"unk_token": "<unk>"}),
              ("ascii, unk_token fused", "gpt2", ({**ascii_vocab, "<unk>": n}, ascii_merges),
               {"unk_token": "<unk>", "fuse_unk": True}),
              ("ascii, byte fallback", "gpt2", ({**ascii_vocab, "<unk>": n, **fallback}, ascii_merges),
               {"unk_token": "<unk>", "byte_fallback": True})]
    files, references = {}, {}
    for i, (name, style, (vocab, merges), model) in enumerate(styles):
        tj = tokenizer_json(vocab, merges, style, **model)
        path = files[name] = os.path.join(tmp, f"bpe{i}.json")
        with open(path, "w") as f:
            json.dump(tj, f, ensure_ascii=style == "gpt2", indent=1 if style == "gpt2" else None)
        ids = {t["content"]: t["id"] for t in tj["added_tokens"]}
        bos, eos = ("<|begin_of_text|>", "<|end_of_text|>") if style == "llama3" else ("", "<|endoftext|>")
        info = run("tokenizer", "info", path).stdout.decode()
        want = (f"kind      hf-bpe\nvocab     {max(ids.values()) + 1}\nbos       {ids.get(bos, -1)}\n"
                f"eos       {ids[eos]}\n")
        check(info.startswith(want), f"tokenizer info ({name} tokenizer.json, {len(merges)} merges)",
              info + "\nexpected\n" + want)
        inverse = {i: t for t, i in vocab.items()}
        references[name] = Reference(tj)
        compare(f"byte-level BPE ({name}) ids", path, paths, docs, references[name].encode, inverse.get)
    return files, references


# ---- decoding: each id's text


def replace_each_byte(e):
    """SentencePiece's way with ill-formed UTF-8: each byte one U+FFFD."""
    return "\ufffd", e.start + 1


codecs.register_error("each_byte", replace_each_byte)


def sp_text(doc):
    """A document as SentencePiece's decoder gives it back: each byte of ill-formed UTF-8 one
    U+FFFD, and U+2581, its space symbol, a space."""
    return doc.decode("utf-8", "each_byte").replace("\u2581", " ").encode()


def decode_test(what, tokenizer, tmp, docs, encode, decode, bos, eos, text):
    """megadata tokenizer decode on the ids of every document (BOS before it when there is one,
    EOS after it), all in one run, against decode(ids) of each; and decode(ids) is text(document),
    the document as the encoder saw it."""
    paths, want, lossless = [], [], True
    for i, d in enumerate(docs):
        ids = encode(d)
        paths.append(os.path.join(tmp, f"ids{i:05d}.txt"))
        with open(paths[-1], "w") as f:
            f.write(" ".join(map(str, ([bos] if bos >= 0 else []) + ids + [eos])))
        want.append(decode(ids))
        lossless &= want[-1] == text(d)
    r = run("tokenizer", "decode", tokenizer, *paths)
    got, at = r.stdout, 0
    for path, w in zip(paths, want):
        if got[at:at + len(w)] != w:
            k = next((i for i, (a, b) in enumerate(zip(got[at:], w)) if a != b), len(w))
            return check(False, what, f"{path}: byte {k} differs: megadata {got[at + k - 20:at + k + 20]}, "
                                      f"reference {w[k - 20:k + 20]}; {r.stderr.decode(errors='replace')}")
        at += len(w)
    check(r.returncode == 0 and at == len(got), f"{what}: the text of {len(docs)} documents' ids, {at} bytes",
          f"exit {r.returncode}, {len(got)} bytes for {at}: {r.stderr.decode(errors='replace')}")
    check(lossless, f"{what}: the reference's text is the documents' (ill-formed UTF-8 replaced)")


def decode_tests(tmp, docs, model, sp, files, references):
    sp_decode = lambda ids: sp.decode(ids).encode()  # noqa: E731 (a document's first space dropped)
    decode_test("tokenizer decode (SentencePiece, LLaMA-2 settings) is SentencePiece's decode", model, tmp, docs,
                sp.encode, sp_decode, sp.bos_id(), sp.eos_id(), sp_text)
    for name in ("gpt2", "llama3"):
        tj = json.load(open(files[name]))
        ids = {t["content"]: t["id"] for t in tj["added_tokens"]}
        ref = references[name]
        decode_test(f"tokenizer decode ({name} tokenizer.json) is the reference ByteLevel decoder's", files[name],
                    tmp, docs, ref.encode, ref.decode, ids.get("<|begin_of_text|>", -1),
                    ids.get("<|end_of_text|>", ids.get("<|endoftext|>")),
                    lambda d: d.decode("utf-8", "replace").encode())
    bad = os.path.join(tmp, "bad-ids.txt")
    with open(bad, "w") as f:
        f.write("5 17 x9")
    r = run("tokenizer", "decode", model, bad)
    check(r.returncode == 2 and f"{bad}: at byte 5: expected an id from 0 to" in r.stderr.decode(),
          "tokenizer decode of a file that holds something else than ids: exit 2, where", r.stderr.decode())


# ---- a dataset built with a tokenizer


def fnv1a64(data):
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def dataset_tests(tmp, docs, tokenizers):
    folder = os.path.join(tmp, "some")
    os.mkdir(folder)
    for i, d in enumerate(docs[:40]):
        with open(os.path.join(folder, f"d{i:03d}.txt"), "wb") as f:
            f.write(d)
    for name, path, kind, reference in tokenizers:
        out = os.path.join(tmp, f"ds-{name}")
        r = run("build", out, folder, "--tokenizer", path, "--val-fraction", "0", "--shard-tokens", "5000")
        if not check(r.returncode == 0, f"build --tokenizer {name}", r.stderr.decode(errors="replace")):
            continue
        info = run("tokenizer", "info", path).stdout.decode().split()
        vocab, bos, eos = int(info[3]), int(info[5]), int(info[7])
        with open(path, "rb") as f:
            checksum = fnv1a64(f.read())
        want = [i for d in docs[:40] for i in reference(d) + [eos]]
        stream, attrs = [], []
        for shard in sorted(n for n in os.listdir(out) if n.startswith("train-")):
            with h5py.File(os.path.join(out, shard), "r") as f:
                stream += f["tokens"][:].tolist()
                a = f.attrs
                attrs.append((int(a["format_version"]), a["tokenizer"].decode(), int(a["vocab_size"]), int(a["eod_id"]),
                               int(a["bos_id"]), int(a["tokenizer_checksum"])))
        check(stream == want, f"build --tokenizer {name}: the shards hold the reference ids, EOS after each document "
                              f"({len(want)} tokens)")
        check(set(attrs) == {(2, kind, vocab, eos, bos, checksum)},
              f"build --tokenizer {name}: the shards record the tokenizer, vocabulary, EOS, BOS and the file's checksum",
              f"{set(attrs)}, expected {(2, kind, vocab, eos, bos, checksum)}")
        r = run("info", out)
        check(f"tokenizer  {kind} (checksum {checksum:016x})" in r.stdout.decode(), f"info {name}: tokenizer and checksum",
              r.stdout.decode())


# ---- the command line


def cli_tests(tmp):
    for args, out in [(["tokenizer", "--help"], "usage: megadata tokenizer train|info|encode|decode|bench"),
                      (["tokenizer", "train", "--help"], "usage: megadata tokenizer train OUT.model"),
                      (["tokenizer", "info", "--help"], "usage: megadata tokenizer info T"),
                      (["tokenizer", "encode", "--help"], "usage: megadata tokenizer encode T FILE"),
                      (["tokenizer", "decode", "--help"], "usage: megadata tokenizer decode T FILE"),
                      (["tokenizer", "bench", "--help"], "usage: megadata tokenizer bench T FILE"),
                      (["build", "--help"], "--tokenizer T")]:
        r = run(*args)
        check(r.returncode == 0 and out in r.stdout.decode(), f"megadata {' '.join(args)}", r.stderr.decode())
    text = os.path.join(tmp, "doc00000.txt")
    for args, err in [(["tokenizer"], "usage: megadata tokenizer"),
                      (["tokenizer", "frobnicate"], "unknown command 'tokenizer frobnicate'"),
                      (["tokenizer", "encode", "bytes"], "needs the tokenizer and at least one file"),
                      (["tokenizer", "info", "bytes", "--x"], "unknown option '--x'"),
                      (["tokenizer", "train", "out.model"], "needs OUT.model and at least one input file"),
                      (["tokenizer", "train", "out.bin", text], "must end in .model"),
                      (["tokenizer", "train", "o.model", text, "--vocab", "12"], "--vocab"),
                      (["tokenizer", "train", "o.model", text, "--spm-option", "vocab_size"], "expected NAME=VALUE"),
                      (["tokenizer", "train", "o.model", os.path.join(tmp, "none")], "cannot read input"),
                      (["build", os.path.join(tmp, "out"), text, "--kind", "uint16", "--vocab", "9", "--tokenizer",
                        "bytes"], "--tokenizer is for text")]:
        r = run(*args)
        check(r.returncode == 2 and err in r.stderr.decode(), f"megadata {' '.join(args[:3])}...: exit 2, '{err}'",
              f"exit {r.returncode}: {r.stderr.decode()}")


def train_from_jsonl_tests(tmp, docs):
    """tokenizer train on JSON Lines (gzip, in a folder) learns what it learns from the same
    documents as plain text, a line each."""
    texts = [d.decode("utf-8", "replace").replace("\0", "") for d in docs[:60]]
    plain = os.path.join(tmp, "plain.txt")
    with open(plain, "w", encoding="utf-8") as f:
        f.write("".join(t + "\n" for t in texts))
    folder = os.path.join(tmp, "jl")
    os.mkdir(folder)
    with gzip.open(os.path.join(folder, "part.jsonl.gz"), "wt", encoding="utf-8") as f:
        f.write("".join(json.dumps({"id": i, "body": t}) + "\n" for i, t in enumerate(texts)))
    a, b = os.path.join(tmp, "plain.model"), os.path.join(tmp, "jsonl.model")
    ra = run("tokenizer", "train", a, plain, "--vocab", "1000", "--threads", "1")
    rb = run("tokenizer", "train", b, folder, "--text-field", "body", "--vocab", "1000", "--threads", "1")
    ok = ra.returncode == 0 and rb.returncode == 0
    pieces = [[(p.id_to_piece(i), p.get_score(i)) for i in range(p.vocab_size())]
              for p in (sentencepiece.SentencePieceProcessor(model_file=m) for m in (a, b))] if ok else [[], [0]]
    check(ok and pieces[0] == pieces[1] and not [n for n in os.listdir(tmp) if ".tmp" in n],
          "tokenizer train on a folder of gzip JSON Lines (--text-field): the pieces of the same text as plain lines",
          (ra.stderr + rb.stderr).decode(errors="replace")[-2000:])


# ---- malformed files: one message naming the file, exit 2


def refused(what, path, expect=""):
    r = run("tokenizer", "info", path)
    err = r.stderr.decode(errors="replace")
    check(r.returncode == 2 and err.startswith(f"megadata: error: {path}") and err.count("\n") == 1 and expect in err,
          f"{what}: exit 2, one message naming the file", f"exit {r.returncode}, stderr: {err[:500]}")


def malformed_tests(tmp, model, tokenizer_json):
    with open(model, "rb") as f:
        data = f.read()
    rng = tokenizer_corpus.random.Random(7)
    bad = os.path.join(tmp, "bad.model")
    cases = [("an empty file", b""), ("garbage", bytes(rng.randrange(256) for _ in range(5000)))]
    cases += [(f"a .model cut at byte {n}", data[:n]) for n in (1, 2, 7, 100, len(data) // 2, len(data) - 1)]
    cases += [("a .model with a byte changed at %d" % n, data[:n] + bytes([data[n] ^ 0xA5]) + data[n + 1:])
              for n in (0, 3, len(data) // 3, len(data) - 40)]
    for what, content in cases:
        with open(bad, "wb") as f:
            f.write(content)
        r = run("tokenizer", "info", bad)
        err = r.stderr.decode(errors="replace")
        # a changed byte may leave a valid model (a changed score or character): then it loads
        check(r.returncode == 2 and err.startswith(f"megadata: error: {bad}") and err.count("\n") == 1
              or (r.returncode == 0 and "byte changed" in what), f"{what}: refused with one message, exit 2",
              f"exit {r.returncode}, stderr: {err[:500]}")
    train = os.path.join(tmp, "train.txt")
    r = subprocess.run([megadata, "tokenizer", "train", os.path.join(tmp, "x.model"), train],
                       capture_output=True, env={**os.environ, "PATH": "/nonexistent"})
    check(r.returncode == 1 and b"spm_train not found on PATH" in r.stderr and b"sentencepiece" in r.stderr
          and not os.path.exists(os.path.join(tmp, "x.model")),
          "tokenizer train without spm_train: says which package to install, exit 1", r.stderr.decode())
    unigram = os.path.join(tmp, "unigram.model")
    run("tokenizer", "train", unigram, train, "--vocab", "1000", "--spm-option", "model_type=unigram")
    refused("a unigram SentencePiece model", unigram, "megadata encodes BPE models")
    nfkc = os.path.join(tmp, "nfkc.model")
    run("tokenizer", "train", nfkc, train, "--vocab", "1000", "--spm-option", "normalization_rule_name=nmt_nfkc")
    refused("a SentencePiece model that maps characters (nmt_nfkc)", nfkc, "precompiled character map")
    with open(tokenizer_json) as f:
        text = f.read()
    tj = json.loads(text)
    bad = os.path.join(tmp, "bad.json")
    for n in (1, 50, len(text) // 2, len(text) - 1):
        with open(bad, "w") as f:
            f.write(text[:n])
        refused(f"a tokenizer.json cut at byte {n}", bad, "not a tokenizer.json")
    edits = [
        ("model type WordPiece", lambda t: t["model"].update(type="WordPiece"), "megadata encodes BPE models"),
        ("an unknown pre-tokenizer expression",
         lambda t: t["pre_tokenizer"].update(type="Split", pattern={"Regex": "\\w+"}, behavior="Isolated",
                                             invert=False), "not supported"),
        ("a normalizer", lambda t: t.update(normalizer={"type": "NFC"}), "normalizer 'NFC'"),
        ("no vocabulary", lambda t: t["model"].update(vocab={}), "no model.vocab"),
        ("an unk_token missing from the vocabulary", lambda t: t["model"].update(unk_token="<nope>"),
         "unk_token '<nope>' is not in the vocabulary"),
        ("a merge of unknown tokens", lambda t: t["model"]["merges"].append("x\u00e9 y"), "not in the vocabulary"),
        ("a merge that is not two tokens", lambda t: t["model"]["merges"].append("abc"), "expected two tokens"),
        ("a negative id", lambda t: t["model"]["vocab"].update(zz=-3), "should be a token id"),
        # no integer holds it: converting it before the range check was undefined (UBSan, fuzz_tokenizer)
        ("an id of 1.5e46", lambda t: t["model"]["vocab"].update(zz=1.5e46), "should be a token id"),
        ("an added token that is not special", lambda t: t["added_tokens"][0].update(special=False), "not special"),
        ("BPE dropout", lambda t: t["model"].update(dropout=0.1), "dropout"),
    ]
    for what, edit, expect in edits:
        t = json.loads(text)
        edit(t)
        with open(bad, "w") as f:
            json.dump(t, f)
        refused(f"a tokenizer.json with {what}", bad, expect)


def main():
    docs = tokenizer_corpus.documents(1, 1 << 20)
    with tempfile.TemporaryDirectory(prefix="megatrain-tok.") as tmp:
        paths = []
        for i, d in enumerate(docs):
            paths.append(os.path.join(tmp, f"doc{i:05d}.txt"))
            with open(paths[-1], "wb") as f:
                f.write(d)
        model, sp = sentencepiece_tests(tmp, paths, docs)
        files, references = byte_level_tests(tmp, paths, docs)
        decode_tests(tmp, docs, model, sp, files, references)
        dataset_tests(tmp, docs, [("sp0.model", model, "sentencepiece", sp.encode),
                                  ("llama3.json", files["llama3"], "hf-bpe", references["llama3"].encode)])
        malformed_tests(tmp, model, files["gpt2"])
        cli_tests(tmp)
        train_from_jsonl_tests(tmp, docs)
    sys.exit(done())


if __name__ == "__main__":
    main()
