"""The "ok - ..." / "not ok - ..." lines every packaging check prints and
tests/packaging/run.sh counts, and whether any was "not ok"."""

failed = 0


def report(what, problem):
    """problem: None (or empty) when the check holds, else what is wrong."""
    global failed
    if problem:
        failed = 1
        print(f"not ok - {what}: {problem}")
    else:
        print(f"ok - {what}")


def status():
    """The exit status: 1 if any check failed."""
    return failed
