# test_ckpt_files.sh: what megatrain deletes in checkpoint.dir, and only that.
#  - an imported checkpoint symlinked in as step-00000000 (as doc/checkpoint.md suggests): the run
#    resumes from it, and when keep_last rotates it out only the link goes, never its target's files
#  - a file of the user's inside a checkpoint folder that is rotated out: megatrain's files go, the
#    user's stays, with a warning naming it
#  - the next save deletes exactly megatrain's leftovers (.step-N.tmp, .step-N.del.tmp, a symlink
#    of that name: the link only), never a user's .tmpcache/ or other dot entries; `megackpt ls`
#    lists as leftovers exactly what the save deletes
. "$top_srcdir/tests/tap.sh"
cd "$tap_tmp" || exit 1
. "$top_srcdir/tests/ckpt.sh"
ckpt_runfile run.yaml

# own_files DIR: its files that megatrain writes, one line
own_files() { (cd "$1" 2>/dev/null && ls meta.h5 rank-*.h5 shard-*.h5 2>/dev/null | tr '\n' ' '); }

run "$mt" run.yaml --set train.steps=2 --set checkpoint.dir=src --set log.metrics=src.jsonl
ok=$rc
run "$mc" export src/step-00000002 w.safetensors
ok=$((ok + rc))
run "$mc" import w.safetensors elsewhere/imp --config run.yaml --set parallel.pp=2
tap_ok $((ok + rc)) "an imported checkpoint (pp 2) in elsewhere/imp"
want=$(own_files elsewhere/imp)

# symlinked in as step 0, then rotated out by keep_last 1
mkdir ck && ln -s ../elsewhere/imp ck/step-00000000
run "$mt" run.yaml --set train.steps=4 --set checkpoint.every=2 --set checkpoint.dir=ck \
    --set checkpoint.keep_last=1 --set log.metrics=m.jsonl
grep -q "resumed from ck/step-00000000 (step 0," "$tap_tmp/out"
tap_ok $(($? + rc)) "a run resumes from the symlinked checkpoint and rotates it out (keep_last 1; exit $rc)"
tap_ok $([ "$(ls -A ck)" = "step-00000004" ] && echo 0 || echo 1) "... the link is gone ($(ls -A ck | tr '\n' ' '))"
tap_ok $([ "$(own_files elsewhere/imp)" = "$want" ] && echo 0 || echo 1) \
    "... and its target keeps every file ($(own_files elsewhere/imp))"
run "$mc" verify elsewhere/imp
tap_ok $rc "... which still verifies"

# a file of the user's in a checkpoint that is rotated out
echo "mine" >ck/step-00000004/notes.txt
run "$mt" run.yaml --set train.steps=6 --set checkpoint.every=2 --set checkpoint.dir=ck \
    --set checkpoint.keep_last=1 --set log.metrics=m.jsonl
tap_ok $rc "a run rotates out step 4, which holds notes.txt"
left=ck/.step-00000004.del.tmp
tap_ok $([ "$(cat $left/notes.txt 2>/dev/null)" = "mine" ] && [ -z "$(own_files $left)" ] && echo 0 || echo 1) \
    "... notes.txt stays (in $left), megatrain's files go ($(own_files $left))"
grep -q "warning: $left: left in place: it holds notes.txt, which megatrain did not write" "$tap_tmp/err"
tap_ok $? "... with a warning naming it"

# leftovers: megatrain's own go at the next save, nothing else
mv $left/notes.txt . && rmdir $left
mkdir ck/.tmpcache ck/.step-12.tmp ck/.step-00000012.tmp.bak ck/.step-00000010.tmp ck/.step-00000011.del.tmp \
    elsewhere/imp2
echo data >ck/.tmpcache/keep
echo data >ck/.notes.tmp
cp src/step-00000002/meta.h5 ck/.step-00000010.tmp/
cp src/step-00000002/rank-00000.h5 ck/.step-00000011.del.tmp/
echo data >elsewhere/imp2/meta.h5
ln -s ../elsewhere/imp2 ck/.step-00000009.tmp
run "$mc" ls ck
awk '$(NF - 1) == "incomplete" { print $NF }' "$tap_tmp/out" | sort | tr '\n' ' ' >listed.txt
tap_ok $([ "$(cat listed.txt)" = "ck/.step-00000009.tmp ck/.step-00000010.tmp ck/.step-00000011.del.tmp " ] &&
    echo 0 || echo 1) "ls: lists exactly megatrain's leftovers ($(cat listed.txt))"
run "$mt" run.yaml --set train.steps=8 --set checkpoint.every=2 --set checkpoint.dir=ck \
    --set checkpoint.keep_last=1 --set log.metrics=m.jsonl
tap_ok $rc "a run to step 8 saves a checkpoint beside them"
tap_ok $([ "$(ls -A ck | tr '\n' ' ')" = ".notes.tmp .step-00000012.tmp.bak .step-12.tmp .tmpcache step-00000008 " ] &&
    echo 0 || echo 1) "... its leftovers are gone, the user's entries stay ($(ls -A ck | tr '\n' ' '))"
tap_ok $([ "$(cat ck/.tmpcache/keep)" = data ] && [ "$(cat elsewhere/imp2/meta.h5)" = data ] && echo 0 || echo 1) \
    "... with their contents, and a leftover symlink's target keeps its files"
tap_done
