"""TAP output for the Python tests: one "ok N - ..." line per check, the plan at the end, exit
status 1 when any check failed."""

import sys
import traceback


def rel_err(got, want):
    """Norm-wise relative error |got - want| / |want| (2-norms over the whole tensor)."""
    den = float(want.norm())
    return float((got - want).norm()) / (den if den > 0 else 1.0)


class Tap:
    def __init__(self):
        self.n = 0
        self.failed = 0

    def ok(self, cond, desc):
        self.n += 1
        self.failed += not cond
        print(f"{'ok' if cond else 'not ok'} {self.n} - {desc}", flush=True)
        return bool(cond)

    def close(self, desc, got, want, tol):
        """One check: relative error of got against the reference want within tol."""
        e = rel_err(got, want)
        return self.ok(e <= tol, f"{desc}: rel err {e:.2e} <= {tol:.0e}")

    def diag(self, msg):
        for line in str(msg).splitlines():
            print("# " + line, flush=True)

    def run(self, desc, fn, *args):
        """Run one group of checks; an exception in it becomes a failed check, not a crash."""
        try:
            return fn(*args)
        except Exception as e:  # noqa: BLE001 -- report anything and go on with the others
            self.ok(False, f"{desc}: {type(e).__name__}: {e}")
            self.diag(traceback.format_exc())
            return None

    def done(self):
        print(f"1..{self.n}", flush=True)
        sys.exit(1 if self.failed else 0)
