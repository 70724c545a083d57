"""Shared helpers of the Python tests: the case lines tests/run-tests.sh counts, the build
paths, and keeping a failed test's temporary directory. Tests import it after
`sys.path.insert(0, <tests folder>)`."""
import os
import shutil
import sys

ROOT = os.environ.get("MOECAP_ROOT", os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
BUILD = os.environ.get("BUILD", "build")
FAILS = []


def check(cond, name, detail=""):
    """Prints `ok - name` or `not ok - name` (with detail as # lines); returns cond."""
    print(("ok - " if cond else "not ok - ") + name)
    if not cond:
        if detail:
            print("# " + str(detail)[:2000].replace("\n", "\n# "))
        FAILS.append(name)
    sys.stdout.flush()
    return cond


def finish(*tmpdirs):
    """Removes the temporary directories when every check passed, else names them; returns
    the exit status."""
    for d in tmpdirs:
        if FAILS:
            print("# files kept in " + d)
        else:
            shutil.rmtree(d, ignore_errors=True)
    return 1 if FAILS else 0
