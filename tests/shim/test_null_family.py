#!/usr/bin/python3
"""The null interposer family (shim/interpose_null.c) is a working template: this test
builds it, exactly as a developer would build a copy, into a throwaway interposer of a
dummy shared library it also builds, runs a program that calls the dummy library (and
forks once) under LD_PRELOAD="libmoecap.so <the interposer>", and reads the records back
with `moecap dump`. Expected values come from the program's own calls: the arguments it
passes, the results the dummy library computes (3 * value + 1), the calls per process."""
import glob
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from preload import preload_env  # noqa: E402
from tap import FAILS, check_problems, skip  # noqa: E402

ROOT = os.environ.get("MOECAP_ROOT", os.path.abspath(os.path.join(os.path.dirname(__file__), "../..")))
BUILD = os.path.join(ROOT, os.environ.get("BUILD", "build"))
SHIM = os.path.join(BUILD, "lib", "libmoecap.so")
MOECAP = os.path.join(BUILD, "bin", "moecap")
CFLAGS = ["-std=c11", "-D_GNU_SOURCE", "-Wall", "-Wextra", "-Werror", "-fPIC", "-O2", "-g"]

DUMMY = "int moecap_null_example(int value) { return 3 * value + 1; }\n"
PARENT_VALUES = [5, -2, 7, 0, 11, 4, 9]
CHILD_VALUES = [100, 101]
PROGRAM = r"""
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
int moecap_null_example(int value);
static const int parent_values[] = {%s}, child_values[] = {%s};
int main(void)
{
    long sum = 0;
    for (unsigned i = 0; i < sizeof parent_values / sizeof parent_values[0]; i++)
        sum += moecap_null_example(parent_values[i]);
    fflush(stdout);
    pid_t p = fork();
    if (p == 0) {
        for (unsigned i = 0; i < sizeof child_values / sizeof child_values[0]; i++)
            moecap_null_example(child_values[i]);
        exit(0);
    }
    int st;
    if (p < 0 || waitpid(p, &st, 0) != p || !WIFEXITED(st) || WEXITSTATUS(st)) return 1;
    printf("sum %%ld\n", sum);
    return 0;
}
""" % (", ".join(map(str, PARENT_VALUES)), ", ".join(map(str, CHILD_VALUES)))


def cc(args):
    p = subprocess.run(["cc"] + CFLAGS + args, capture_output=True, text=True)
    if p.returncode:
        raise SystemExit("cc failed: %s\n%s" % (" ".join(args), p.stderr))


def main():
    if not os.path.exists(SHIM):
        skip("null family", "%s not built" % SHIM)
        return 0
    tmp = tempfile.mkdtemp(prefix="mc-null-")
    with open(os.path.join(tmp, "dummy.c"), "w") as f:
        f.write(DUMMY)
    with open(os.path.join(tmp, "prog.c"), "w") as f:
        f.write(PROGRAM)
    cc(["-shared", "-o", os.path.join(tmp, "libnulldummy.so"), os.path.join(tmp, "dummy.c")])
    cc(["-o", os.path.join(tmp, "prog"), os.path.join(tmp, "prog.c"), "-L" + tmp, "-lnulldummy",
        "-Wl,-rpath," + tmp])
    # The family, built against the core's header and linked to libmoecap.so (whose
    # constructor then runs first).
    family = os.path.join(tmp, "libmoecap_null.so")
    cc(["-shared", "-I" + os.path.join(ROOT, "include"), "-I" + os.path.join(ROOT, "shim"),
        "-o", family, os.path.join(ROOT, "shim", "interpose_null.c"),
        "-L" + os.path.dirname(SHIM), "-lmoecap", "-Wl,-rpath," + os.path.dirname(SHIM), "-lpthread"])
    out = os.path.join(tmp, "out")
    env = preload_env(SHIM)
    env["LD_PRELOAD"] += ":" + family
    env["MOECAP_OUT"] = out
    p = subprocess.run([os.path.join(tmp, "prog")], env=env, capture_output=True, text=True, timeout=60)
    want_sum = sum(3 * v + 1 for v in PARENT_VALUES)
    check_problems("program runs unchanged under the interposer",
                   [] if p.returncode == 0 and p.stdout == "sum %d\n" % want_sum else ["rc %d out %r err %r" % (p.returncode, p.stdout, p.stderr[-500:])])

    by_pid = {}
    for path in sorted(glob.glob(os.path.join(out, "*.mct"))):
        d = subprocess.run([MOECAP, "dump", path], capture_output=True, text=True)
        recs = [json.loads(line) for line in d.stdout.splitlines() if line.strip()]
        proc = [r for r in recs if r["type"] == "process"]
        if d.returncode or not proc:
            check_problems("dump " + os.path.basename(path), ["rc %d %s" % (d.returncode, d.stderr)])
            continue
        by_pid[proc[0]["pid"]] = (proc[0], recs)
    parents = [v for v in by_pid.values() if v[0]["ppid"] not in by_pid]
    children = [v for v in by_pid.values() if v[0]["ppid"] in by_pid]
    check_problems("one trace per process (parent and forked child)",
                   [] if len(parents) == 1 and len(children) == 1 else ["traces: %r" % sorted(by_pid)])
    if len(parents) != 1 or len(children) != 1:
        return 1
    for who, (proc, recs), values in (("parent", parents[0], PARENT_VALUES), ("child", children[0], CHILD_VALUES)):
        calls = [r for r in recs if r["type"] == "api" and r.get("name_str_text") == "moecap_null_example"]
        probs = []
        got = [(r["arg0"], r["result"]) for r in calls]
        want = [("0x%x" % (v & 0xffffffffffffffff), (3 * v + 1) & 0xffff) for v in values]
        if got != want:
            probs.append("calls (arg0, result) %r, want %r" % (got, want))
        threads = {r["tid"] for r in recs if r["type"] == "thread"}
        if any(r["tid"] != proc["pid"] for r in calls) or proc["pid"] not in threads:
            probs.append("tids %r, process %d" % ({r["tid"] for r in calls}, proc["pid"]))
        if any(r["t_end_ns"] < r["t_begin_ns"] for r in calls):
            probs.append("a call ends before it begins")
        check_problems("%s: one API record per call with its argument and result" % who, probs)
        ctr = [r["value"] for r in recs if r["type"] == "counter" and r.get("name_str_text") == "null.calls"]
        check_problems("%s: flush hook wrote the call count (fork hook reset it in the child)" % who,
                       [] if ctr and ctr[-1] == len(values) else ["null.calls counters %r, want last %d" % (ctr, len(values))])
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
