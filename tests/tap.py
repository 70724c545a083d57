"""Shared helpers of the Python tests: the case lines tests/run-tests.sh counts, the build
paths, waiting for a server's port file, keeping a failed test's temporary directory. Tests import it after
`sys.path.insert(0, <tests folder>)`."""
import os
import shutil
import sys
import time

ROOT = os.environ.get("MOECAP_ROOT", os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
BUILD = os.environ.get("BUILD", "build")
FAILS = []


def _detail(detail):
    if detail:
        print("# " + str(detail)[:2000].replace("\n", "\n# "))


def check(cond, name, detail=""):
    """Prints `ok - name` or `not ok - name` (with detail as # lines); returns cond."""
    print(("ok - " if cond else "not ok - ") + name)
    if not cond:
        _detail(detail)
        FAILS.append(name)
    sys.stdout.flush()
    return cond


def check_problems(name, problems):
    """check() of a case that collected what is wrong in a list: ok iff it is empty, each
    problem a # line."""
    return check(not problems, name, "\n".join(map(str, problems)))


def skip(name, why="", detail=""):
    """Prints `skip - name (why)` for a case this machine cannot run (detail as # lines)."""
    print("skip - " + name + (" (%s)" % why if why else ""))
    _detail(detail)
    sys.stdout.flush()


def finish(*tmpdirs):
    """Removes the temporary directories when every check passed, else names them; returns
    the exit status."""
    for d in tmpdirs:
        if FAILS:
            print("# files kept in " + d)
        else:
            shutil.rmtree(d, ignore_errors=True)
    return 1 if FAILS else 0


def wait_port(portf, proc, seconds=10.0):
    """The port a server wrote to portf (it writes the file whole, by rename), or None when
    proc exited or nothing came within `seconds`."""
    end = time.time() + seconds
    while time.time() < end and proc.poll() is None:
        if os.path.exists(portf):
            return int(open(portf).read())
        time.sleep(0.05)
    return int(open(portf).read()) if os.path.exists(portf) else None
