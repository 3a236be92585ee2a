# test_setup.sh: the setup scripts and the installation. tools/install-deps.sh waits for apt's
# locks while another package manager holds them, and fails at once on other errors;
# tools/check.sh says what it is doing and reports each test program as it finishes, ending with
# "N passed, N failed" and its status; `make install` installs every program. apt-get, dpkg-query,
# sudo, date, sleep and make are played by small scripts here: nothing is installed or built.
. "$top_srcdir/tests/tap.sh"
cd "$tap_tmp" || exit 1
mkdir fake
# fake NAME BODY: a command NAME on the PATH that runs the shell code BODY
fake() { printf '#!/bin/sh\n%s\n' "$2" >"fake/$1"; chmod +x "fake/$1"; }
# every package installed but gnuplot-nox; no waiting, a clock that advances 100 s a call
fake dpkg-query 'case "$*" in *gnuplot-nox) ;; *) echo "install ok installed" ;; esac'
fake sudo 'exec "$@"'
fake sleep ':'
fake date 'n=$(cat clock 2>/dev/null || echo 0); echo $((n + 100)) >clock; echo $((n + 100))'
# apt-get: its arguments logged; "update" meets a held lock $LOCKED times, then succeeds;
# "install" fails with $INSTALL_ERROR when set
fake apt-get 'echo "apt-get $*" >>apt.log
case "$*" in *update*)
    n=$(cat tries 2>/dev/null || echo 0); echo $((n + 1)) >tries
    if [ "$n" -lt "$LOCKED" ]; then
        echo "E: Could not get lock /var/lib/apt/lists/lock. It is held by process 4242 (apt-get)" >&2
        echo "E: Unable to lock directory /var/lib/apt/lists/" >&2
        exit 100
    fi ;;
*install*) [ -z "${INSTALL_ERROR:-}" ] || { echo "E: $INSTALL_ERROR" >&2; exit 100; } ;;
esac'
# deps LOCKED [INSTALL_ERROR]: tools/install-deps.sh with the fakes, in a fresh folder
deps() {
    rm -f apt.log tries clock
    run env PATH="$tap_tmp/fake:$PATH" LOCKED=$1 INSTALL_ERROR="${2:-}" sh "$top_srcdir/tools/install-deps.sh"
    sed 's/^/# /' out err
}

deps 2
tap_ok $([ $rc -eq 0 ] && [ "$(grep -c 'apt-get .*update' apt.log)" -eq 3 ] &&
    grep -q "^install-deps: waiting up to 10 minutes for another package manager to finish (Could not get lock /var/lib/apt/lists/lock. It is held by process 4242 (apt-get))$" out &&
    [ "$(grep -c waiting out)" -eq 1 ] && echo 0 || echo 1) \
    "install-deps.sh: apt-get update meets a held lock twice: says it waits, once, and tries again"
tap_ok $(grep -q "^apt-get -o DPkg::Lock::Timeout=[0-9]* install -y -q --no-install-recommends  *gnuplot-nox$" apt.log &&
    echo 0 || echo 1) "install-deps.sh: the missing package installed, apt-get waiting for dpkg's lock"
deps 1000
tap_ok $([ $rc -ne 0 ] && [ "$(grep -c 'apt-get .*update' apt.log)" -eq 6 ] && grep -q "^E: Could not get lock" err &&
    ! grep -q install apt.log && echo 0 || echo 1) \
    "install-deps.sh: a lock held for 10 minutes: gives up with apt's message, installs nothing"
deps 0 "Unable to locate package gnuplot-nox"
tap_ok $([ $rc -ne 0 ] && [ "$(grep -c 'apt-get .*install' apt.log)" -eq 1 ] &&
    grep -q "^E: Unable to locate package gnuplot-nox$" err && ! grep -q waiting out && echo 0 || echo 1) \
    "install-deps.sh: another error: fails at once with apt's message"

# tools/check.sh in a tree of its own: install-deps.sh and build.sh do nothing; make lists two
# tests and runs them, tests/b failing one check of two unless $PASS_ALL is set; a CUDA build
# (made only where nvcc is) compiles, and its megatrain, with no GPU, refuses to start
mkdir -p tree/tools
cp "$top_srcdir/tools/check.sh" tree/tools/
printf '#!/bin/sh\necho "installed"\n' >tree/tools/install-deps.sh
printf '#!/bin/sh\necho "built"\n' >tree/tools/build.sh
chmod +x tree/tools/*.sh
fake make 'case "$*" in
*--eval*) echo "tests/a.sh tests/b" ;;
*check*)
    mkdir -p tests
    echo "compiling the tests"
    printf ":global-test-result: PASS\n:test-result: PASS\n:test-result: PASS\n" >tests/a.trs
    printf "PASS: tests/a.sh 1 - one\nPASS: tests/a.sh 2 - two\n"
    b=FAIL; [ -z "${PASS_ALL:-}" ] || b=PASS
    printf ":global-test-result: $b\n:test-result: PASS\n:test-result: $b\n" >tests/b.trs
    printf "PASS: tests/b 1 - three\n$b: tests/b 2 - four\n"
    printf "# TOTAL: 4\n# PASS:  $([ $b = PASS ] && echo 4 || echo 3)\n# FAIL:  $([ $b = PASS ] && echo 0 || echo 1)\n# ERROR: 0\n# XPASS: 0\n" >test-suite.log
    [ $b = PASS ] ;;
*distdir*) mkdir -p build-cuda && printf "#!/bin/sh\n" >build-cuda/configure &&
    printf "#!/bin/sh\necho \"megatrain: error: train.device: cuda: no GPU is visible to this process (fake)\" >&2\nexit 2\n" \
        >build-cuda/megatrain && chmod +x build-cuda/configure build-cuda/megatrain ;;
esac'
fake nvidia-smi 'exit 9' # no GPU: the CUDA megatrain's refusal is checked too
cuda=0
if command -v nvcc >/dev/null || [ -x /usr/local/cuda/bin/nvcc ]; then cuda=2; fi
run env PATH="$tap_tmp/fake:$PATH" sh tree/tools/check.sh
sed 's/^/# /' out err
tap_ok $(grep -q "^check: installing the packages" out && grep -q "^check: configuring and building" out &&
    grep -q "^check: running the test suite: 2 test programs (make check; its output goes to make-check.log)$" out &&
    grep -q "^compiling the tests$" tree/make-check.log && echo 0 || echo 1) "check.sh: says each phase; make's output in make-check.log"
tap_ok $(grep -q "^check: \[1/2\] tests/a.sh: 2 passed$" out &&
    grep -q "^check: \[2/2\] tests/b: 1 passed, 1 FAILED (see tests/b.log)$" out && echo 0 || echo 1) \
    "check.sh: each test program as it finishes, with its checks passed and failed"
tap_ok $([ $rc -eq 1 ] && grep -q "^FAIL: tests/b 2 - four$" out && [ "$(tail -1 out)" = "$((3 + cuda)) passed, 1 failed" ] &&
    echo 0 || echo 1) "check.sh: a failed check: listed, last line '$((3 + cuda)) passed, 1 failed', exit 1"
run env PATH="$tap_tmp/fake:$PATH" PASS_ALL=1 sh tree/tools/check.sh
tap_ok $([ $rc -eq 0 ] && [ "$(tail -1 out)" = "$((4 + cuda)) passed, 0 failed" ] && echo 0 || echo 1) \
    "check.sh: all passed: last line '$((4 + cuda)) passed, 0 failed', exit 0"

# make install: every program, the scripts and the job files, runnable from where they land
run env -u MAKEFLAGS -u MFLAGS make -C "$top_builddir" install DESTDIR="$tap_tmp/root"
sed 's/^/# /' err
bin=$(dirname "$(find root -name megatrain -type f | head -1)")
missing=""
for p in megatrain megadata megackpt megaplot megasweep megabench brown-corpus.sh; do
    [ -x "$bin/$p" ] || missing="$missing $p"
done
tap_ok $([ $rc -eq 0 ] && [ -z "$missing" ] && echo 0 || echo 1) \
    "make install DESTDIR=...: every program and brown-corpus.sh in $bin${missing:+ (missing:$missing)}"
tap_ok $(find root -path '*/jobs/megatrain.sbatch' | grep -q . && find root -path '*/jobs/paper/sweep.tsv' | grep -q . &&
    echo 0 || echo 1) "make install: the Slurm script and the paper's run files"
fails=""
for p in megatrain megadata megackpt megaplot megasweep megabench brown-corpus.sh; do
    "$bin/$p" --help >/dev/null 2>"$p.err" || { fails="$fails $p"; sed "s/^/# $p: /" "$p.err"; }
done
tap_ok $([ -z "$fails" ] && echo 0 || echo 1) "the installed programs run (--help)${fails:+; failed:$fails}"
tap_done
