"""tokenizer_corpus.py: a deterministic corpus of varied text for the tokenizer exactness tests and
the throughput benchmark: prose in several languages and scripts, emoji, code, numbers, control
characters, long runs of spaces, digits and newlines, special-token look-alikes and ill-formed
UTF-8. documents(seed, total) returns a list of bytes objects adding up to at least total bytes.
Run as a program, it writes the documents to a folder: tokenizer_corpus.py DIR [BYTES] [SEED]."""
import os
import random
import sys

WORDS = {
    "en": "the of and to in is was he for it with as his on be at by had are but from or have an they which "
          "one you were all we when there can been has more if no out do so what up its about into than them "
          "only other time new some could these two may first then any like my now over such our man me even "
          "most made after also did many before must through back years where much your way well down should "
          "because each just those people how too little state good very make world still own see men work long "
          "tokenizer merge vocabulary Megalodon pretraining gradient shard checkpoint".split(),
    "fr": "le la les de des un une être avoir été déjà très où garçon français naïve cœur ça événement "
          "forêt hôpital élève château".split(),
    "de": "der die das und ist nicht Straße größer Übung schön Mädchen heißen Fußgängerübergänge Äpfel "
          "Öl".split(),
    "ru": "и в не на я быть он с что а по это она этот к но они мы как из у который то за свой "
          "Москва привет ёлка объём".split(),
    "el": "και το της η να ο τα σε με που είναι για Αθήνα καλημέρα ψυχή ζωή".split(),
    "ar": "في من على إلى أن هذا التي الذي مع كان العربية مرحبا كتاب".split(),
    "he": "של את על זה לא הוא עם כל שלום ישראל".split(),
    "hi": "के है में की और से को का एक यह नमस्ते हिन्दी भाषा क्षत्रिय".split(),
    "zh": list("的一是不了在人有我他这个们中来上大为和国地到以说时要就出会可也你对生能而子那得于着下自之年过发后作里"),
    "ja": "これは ひらがな カタカナ 日本語 東京 ありがとう ございます ｶﾀｶﾅ ラーメン".split(),
    "ko": "한국어 안녕하세요 감사합니다 서울 사랑 하늘".split(),
    "th": "ภาษาไทย สวัสดี ขอบคุณ กรุงเทพ".split(),
}
EMOJI = ["😀", "👍🏽", "👨‍👩‍👧‍👦", "🇫🇷", "🏳️‍🌈", "❤️", "🤖", "✨", "🧑🏿‍💻", "😂😂😂", "🙈🙉🙊", "🫠"]
SYMBOLS = ["∑", "∫", "√", "≈", "≠", "→", "€", "£", "¥", "©", "®", "™", "§", "°", "±", "×", "÷", "…", "—", "–",
           "«", "»", "„", "“", "”", "‘", "’", "•", "※", "〈", "〉", "①", "Ⅻ", "²", "³", "½", "٣", "٤", "５", "𝟘",
           "\u0301", "\u200b", "\u200d", "\ufeff", "\ufffd", "𝒜", "𐍈", "\U000e0041", "\U0010fffd"]
CONTRACTIONS = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'T", "'RE", "'Ve", "'LL", "'D", "'ſ", "'x",
                "''", "'"]
SPECIALS = ["<|endoftext|>", "<|begin_of_text|>", "<|end_of_text|>", "<s>", "</s>", "<unk>", "<pad>", "<0x41>",
            "▁", "▁▁x", "Ġ", "Ċ"]
CONTROLS = ["\t", "\r", "\n", "\r\n", "\x0b", "\x0c", "\x00", "\x1b", "\x1c", "\x1d", "\x1e", "\x1f", "\x7f",
            "\x85", "\xa0", "\u2028", "\u2029", "\u3000", "\u1680", "\u2009", "\u202f", "\u205f"]
ILL_FORMED = [b"\x80", b"\xbf", b"\xc0\xaf", b"\xc1", b"\xc2", b"\xe0\x80\xaf", b"\xe0\xa0", b"\xe2\x82",
              b"\xed\xa0\x80", b"\xed\xbf\xbf", b"\xf0\x8f\xbf\xbf", b"\xf4\x90\x80\x80", b"\xf5", b"\xf8\x88",
              b"\xfe", b"\xff", b"\xf0\x9f\x98", b"\xf0\x9f", b"\xe2\x96", b"\xc3\x28", b"\xa0\xa1"]
CODE = ["def f(x):\n    return x ** 2  # square\n", "for (int i = 0; i < n; i++) {\n\tsum += a[i];\n}\n",
        "SELECT id, name FROM users WHERE id = 42;\n", "<div class=\"x\">&amp;&lt;</div>\n",
        "{\"key\": [1, 2.5e-3, null, true]}\n", "x+=1;y-=2;z*=3;w/=4;\n", "    \n\t\t  \n"]


def sentence(rng, lang):
    words = WORDS[lang]
    sep = "" if lang in ("zh", "th") else " "
    n = rng.randint(3, 25)
    out = []
    for _ in range(n):
        w = rng.choice(words)
        if rng.random() < 0.1:
            w = w.capitalize()
        if rng.random() < 0.05:
            w = w.upper()
        if lang == "en" and rng.random() < 0.08:
            w += rng.choice(CONTRACTIONS)
        out.append(w)
    return sep.join(out) + rng.choice([".", "!", "?", "。", ",", ":", ";", "...", ""])


def chunk(rng):
    """One piece of a document, as str or bytes."""
    r = rng.random()
    if r < 0.45:
        return sentence(rng, rng.choice(list(WORDS)))
    if r < 0.50:
        return "".join(rng.choice(EMOJI) for _ in range(rng.randint(1, 6)))
    if r < 0.55:
        return "".join(rng.choice(SYMBOLS) for _ in range(rng.randint(1, 8)))
    if r < 0.60:
        return " " * rng.choice([1, 2, 3, 4, 5, 8, 16, 17, 64, 100, 300])
    if r < 0.64:
        return "".join(rng.choice("0123456789") for _ in range(rng.choice([1, 2, 3, 4, 5, 7, 10, 33, 100, 300])))
    if r < 0.68:
        return "".join(rng.choice(CONTROLS) for _ in range(rng.randint(1, 5)))
    if r < 0.71:
        return "\n" * rng.randint(1, 12) + " " * rng.randint(0, 3)
    if r < 0.75:
        return rng.choice(SPECIALS)
    if r < 0.79:
        return b"".join(rng.choice(ILL_FORMED) for _ in range(rng.randint(1, 3)))
    if r < 0.84:
        return rng.choice(CODE)
    if r < 0.86:
        return rng.choice("aZжか") * rng.randint(20, 120)
    if r < 0.90:
        return "%d.%d%%, %s, v%d.%d.%d, 1e%d" % (rng.randint(0, 10 ** 6), rng.randint(0, 99), rng.choice(["$1,234.56", "3/4", "10:30", "2026-12-05", "+33 1 23 45 67 89"]), rng.randint(0, 9), rng.randint(0, 99), rng.randint(0, 999), rng.randint(-9, 99))
    return rng.choice([" ", "  ", "\n", "\n\n", "\t", " \n"]) + rng.choice(CONTRACTIONS) + rng.choice(["", " ", "x"])


def document(rng, size):
    parts = []
    n = 0
    while n < size:
        c = chunk(rng)
        b = c if isinstance(c, bytes) else c.encode("utf-8")
        parts.append(b)
        parts.append(rng.choice([b" ", b" ", b" ", b"", b"\n", b"\n\n", b"  "]))
        n += len(b) + 1
    return b"".join(parts)


def documents(seed=1, total=1 << 20):
    rng = random.Random(seed)
    docs = [b"", b" ", b"a", b"\n", b"  leading and trailing  ", b"\xff", b"'s", b"\xe2\x96\x81"]
    n = sum(map(len, docs))
    while n < total:
        size = rng.choice([16, 100, 500, 2000, 8000, 20000])
        docs.append(document(rng, rng.randint(1, size)))
        n += len(docs[-1])
    return docs


if __name__ == "__main__":
    folder = sys.argv[1]
    total = int(sys.argv[2]) if len(sys.argv) > 2 else 1 << 20
    seed = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    os.makedirs(folder, exist_ok=True)
    for i, d in enumerate(documents(seed, total)):
        with open(os.path.join(folder, "doc%05d.txt" % i), "wb") as f:
            f.write(d)
