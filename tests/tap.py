"""tap.py: TAP output for the Python tests: check() prints "ok N - what" or "not ok N - what" (the
detail below it as comments) and returns ok; done() prints the plan and returns the exit status."""
count = 0
failed = 0


def check(ok, what, detail=""):
    global count, failed
    count += 1
    failed += not ok
    print(("ok" if ok else "not ok") + f" {count} - {what}")
    if not ok and detail:
        print("# " + detail.replace("\n", "\n# "))
    return ok


def done():
    print(f"1..{count}")
    return 1 if failed else 0
