#!/usr/bin/env python3
"""Benchmark pysuper side by side with supervisord, tini and dumb-init.

    python benchmarks/run.py [--quick] [--only SCENARIO[,SCENARIO...]] [--out FILE] [--no-install]

Installs or finds supervisord (PyPI, in benchmarks/.env), tini and dumb-init (Debian packages) and pysuper
(editable install of this repository into benchmarks/.env), runs every scenario against all of them in the
same run and prints a markdown table: absolute figures, the ratio pysuper/anchor, the target of the
scenario and its correctness check. Progress goes to stderr, the table to stdout (and to --out).
"""
import argparse
import os
import platform
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness as H  # noqa: E402
import scenarios as S  # noqa: E402

COLUMNS = ("pysuper", "supervisord", "tini", "dumb-init")


def esc(s):
    return str(s).replace("|", "\\|").replace("\n", " ")


def table(rows):
    head = ["scenario", "case", "metric"] + list(COLUMNS) + ["baseline", "ratio", "target", "met", "check"]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r.scenario, r.case, r.metric] + [r.values.get(c, "") for c in COLUMNS] + [
            r.baseline, r.ratio, r.target, r.met, r.check]
        out.append("| " + " | ".join(esc(c) for c in cells) + " |")
    return "\n".join(out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes and one repeat: a smoke run")
    ap.add_argument("--only", default="", help="comma-separated scenarios: " + ",".join(S.SCENARIOS))
    ap.add_argument("--targets", default="", help="comma-separated subset of: " + ",".join(COLUMNS))
    ap.add_argument("--out", help="also write the markdown table to FILE")
    ap.add_argument("--no-install", action="store_true", help="use what is installed; install nothing")
    ap.add_argument("--no-pysuper", action="store_true", help="measure the anchors only")
    ap.add_argument("--pysuper", metavar="EXE", help="measure this pysuper executable (e.g. another checkout's "
                    "virtualenv) instead of installing this repository into benchmarks/.env")
    args = ap.parse_args(argv)
    selected = [s.strip() for s in args.only.split(",") if s.strip()] or list(S.SCENARIOS)
    unknown = [s for s in selected if s not in S.SCENARIOS]
    if unknown:
        ap.error("unknown scenario %s; choose from %s" % (", ".join(unknown), ", ".join(S.SCENARIOS)))

    wanted = [s.strip() for s in args.targets.split(",") if s.strip()] or list(COLUMNS)
    unknown = [s for s in wanted if s not in COLUMNS]
    if unknown:
        ap.error("unknown target %s; choose from %s" % (", ".join(unknown), ", ".join(COLUMNS)))
    t0 = time.monotonic()
    tools = H.setup(install=not args.no_install, want_pysuper=not args.no_pysuper and "pysuper" in wanted,
                    pysuper_exe=args.pysuper)
    for note in tools.notes:
        H.log(note)
    if not tools.supervisord and not tools.pysuper:
        H.log("neither supervisord nor pysuper is available; nothing to measure")
        return 2
    root = tempfile.mkdtemp(prefix="pysuper-bench-")
    shm = "/dev/shm" if os.path.isdir("/dev/shm") and shutil.disk_usage("/dev/shm").free > 3 << 30 else None
    shm_root = tempfile.mkdtemp(prefix="pysuper-bench-", dir=shm)
    ctx = S.Context(tools, root, shm_root, args.quick, selected, wanted)
    rows = []
    try:
        for name in selected:
            ts = time.monotonic()
            H.log("== %s" % name)
            rows.extend(S.SCENARIOS[name](ctx))
            H.log("== %s took %.0f s" % (name, time.monotonic() - ts))
    finally:
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(shm_root, ignore_errors=True)
    elapsed = time.monotonic() - t0
    versions = ", ".join(x for x in (
        "pysuper %s" % (tools.pysuper_version or "not available"),
        tools.supervisor_version and "supervisord %s" % tools.supervisor_version,
        tools.tini and "tini (%s)" % tools.tini, tools.dumb_init and "dumb-init (%s)" % tools.dumb_init) if x)
    header = ("`python benchmarks/run.py%s` — %s, Python %s, %d CPUs, %s; %s; took %.0f s.\n" % (
        "".join(" " + a for a in (argv if argv is not None else sys.argv[1:])),
        time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), platform.python_version(), os.cpu_count(),
        platform.release(), versions, elapsed))
    text = header + "\n" + table(rows) + "\n"
    if tools.notes:
        text += "\n" + "\n".join("- " + n for n in tools.notes) + "\n"
    sys.stdout.write(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
