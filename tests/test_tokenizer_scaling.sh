# test_tokenizer_scaling.sh: tools/tokenizer-scaling.sh on a few small texts, byte tokenizer.
#  - --copies 3 --ranks "1 2": exit 0, a table row for 1 and 2 ranks, the manifests identical, the
#    datasets removed and the corpus kept; a rerun keeps the corpus as it is
#  - the corpus: every copy holds each text as a document; two copies differ, letter for letter
#    through one permutation that keeps case, with every other byte and each document's length
#  - builds whose manifests differ (another --seed on 2 ranks): exit 1 saying so
#  - a progress line rewritten after \r, as on a terminal, is read too
#  - --help exits 0; a missing argument, a bad --copies, an unknown option: exit 2
. "$top_srcdir/tests/tap.sh"
cd "$tap_tmp" || exit 1
scaling="$top_srcdir/tools/tokenizer-scaling.sh"
MEGADATA="$top_builddir/megadata"
export MEGADATA

mkdir in
printf 'The quick brown Fox, "jumps" over\tthe lazy dog.\n' >in/a.txt
printf 'Caf\303\251 na\303\257ve, \\ and a stray \377 byte.\n' >>in/a.txt
$PYTHON_REF -c '
import random
random.seed(4)
words = "the of and to a in that is was he for it with as his on be at by I Mr. Grand Jury 1961".split()
for i in range(4):
    open("in/t%d.txt" % i, "w").write(" ".join(random.choice(words) for _ in range(300)) + "\n")'
: >in/empty.txt

run "$scaling" --help
[ "$rc" -eq 0 ] && grep -q '^tokenizer-scaling.sh: how megadata build' out
tap_ok $? "--help: exit 0, the header"
run "$scaling" bytes o1
expect_fail 2 "TOKENIZER, OUT_DIR and at least one TEXT are needed" "no TEXT: exit 2"
run "$scaling" bytes o1 in/a.txt --copies 0
expect_fail 2 "--copies: '0' is not a positive number" "--copies 0: exit 2"
run "$scaling" bytes o1 in/a.txt --bogus
expect_fail 2 "unknown option --bogus" "an unknown option: exit 2"
[ ! -e o1 ]
tap_ok $? "a usage error writes nothing"

run "$scaling" bytes o in/*.txt --copies 3 --ranks "1 2"
tap_ok $rc "--copies 3 --ranks \"1 2\": exit $rc"
grep -q '^| 1 | [0-9.]* | [0-9.]* | [0-9.]* | [0-9.]* | 1\.00 | 100% |$' out &&
    grep -q '^| 2 | [0-9.]* | [0-9.]*-[0-9.]* | [0-9.]* | [0-9.]* | [0-9.]* | [0-9]*% |$' out
tap_ok $? "a table row for 1 and for 2 ranks (2: the fastest and slowest rank's seconds)"
grep -q '^manifest.h5: identical on ranks 1 2$' out
tap_ok $? "the manifests of 1 and 2 ranks are identical"
[ "$(ls o)" = "$(printf 'build-1.log\nbuild-2.log\ncorpus')" ] && [ "$(ls o/corpus | wc -l)" -eq 3 ]
tap_ok $? "the datasets are removed; the corpus of 3 copies and the build logs stay"

verdict=$($PYTHON_REF - in/*.txt <<'P'
import json, sys
texts = [open(f, "rb").read().decode("utf-8", "replace") for f in sys.argv[1:]]
copies = [[json.loads(l)["text"] for l in open("o/corpus/copy-%04d.jsonl" % k, encoding="utf-8")]
          for k in (1, 2, 3)]
bad, perms = [], []
if not all(len(c) == len(texts) for c in copies):
    bad.append("not one document per text")
for k in range(3):
    perm = {}
    for d, t in zip(copies[k], texts):
        if len(d.encode()) != len(t.encode()):
            bad.append("copy %d: a document of another length" % (k + 1))
        for x, y in zip(d, t):
            if y.isascii() and y.isalpha():
                if not (x.isascii() and x.isalpha() and x.isupper() == y.isupper()) or \
                        perm.setdefault(y.lower(), x.lower()) != x.lower():
                    bad.append("copy %d: %r for %r is not one case-keeping letter permutation" % (k + 1, x, y))
                    break
            elif x != y:
                bad.append("copy %d: %r for the non-letter %r" % (k + 1, x, y))
                break
    if len(set(perm.values())) != len(perm):
        bad.append("copy %d: two letters have one image" % (k + 1))
    perms.append(perm)
for j, k in (0, 1), (0, 2), (1, 2):
    if perms[j] == perms[k] or any(a == b for a, b, t in zip(copies[j], copies[k], texts) if t.strip()):
        bad.append("copies %d and %d have the same text" % (j + 1, k + 1))
print("; ".join(bad) or "ok")
P
)
[ "$verdict" = ok ]
tap_ok $? "the copies: the texts, each through its own letter permutation, lengths kept: $verdict"

cp -p o/corpus/copy-0002.jsonl before.jsonl
run "$scaling" bytes o in/*.txt --copies 3 --ranks 2
grep -q "corpus o/corpus is there (3 copies)" out && cmp -s before.jsonl o/corpus/copy-0002.jsonl &&
    grep -q '^| 2 |' out
tap_ok $(($? + rc)) "a rerun with the same copies keeps the corpus (and runs 1 rank first)"

# a megadata that builds another val split on more than one rank
cat >other-seed <<EOF
#!/bin/sh
if [ "\${OMPI_COMM_WORLD_SIZE:-\${PMI_SIZE:-1}}" -gt 1 ]; then exec "$MEGADATA" "\$@" --seed 2; fi
exec "$MEGADATA" "\$@"
EOF
chmod +x other-seed
MEGADATA=$PWD/other-seed run "$scaling" bytes o in/*.txt --copies 3 --ranks "1 2"
[ "$rc" -eq 1 ] && grep -q "^manifest.h5: DIFFERS from 1 rank's on 2 ranks" out && [ -d o/ds-1 ] && [ -d o/ds-2 ]
tap_ok $? "manifests that differ: exit 1 saying so, the datasets kept (exit $rc)"

# a megadata whose progress line is rewritten after \r, as on a terminal
cat >as-terminal <<EOF
#!/bin/sh
"$MEGADATA" "\$@" 2>"$PWD/term.err.\$\$" || exit
while IFS= read -r l; do
    case \$l in
    *'tokenizing 100.0%'*) printf '\\rmegadata: tokenizing  40.0%% | ETA 0:00:01\\033[K\\r%s\\033[K\\n' "\$l" ;;
    *) printf '%s\\n' "\$l" ;;
    esac
done <"$PWD/term.err.\$\$" >&2
EOF
chmod +x as-terminal
MEGADATA=$PWD/as-terminal run "$scaling" bytes o in/*.txt --copies 3 --ranks 1
grep -q "$(printf '\r')" o/build-1.log && grep -q '^| 1 | [0-9.]* | [0-9.]* |' out
tap_ok $(($? + rc)) "a progress line after \\r (a terminal's) is read"
tap_done
