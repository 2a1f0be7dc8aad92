"""The benchmark scenarios. Each returns table rows (see Row) and verifies what it measures."""
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import time

import harness as H

LINE = 100


class Row:
    def __init__(self, scenario, case, metric, values, baseline="", ratio="", target="", met="", check=""):
        self.scenario = scenario
        self.case = case
        self.metric = metric
        self.values = values  # target name -> formatted value
        self.baseline = baseline
        self.ratio = ratio
        self.target = target
        self.met = met
        self.check = check


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(x, unit="", digits=None):
    if x is None:
        return "n/a"
    if isinstance(x, str):
        return x
    if digits is None:
        ax = abs(x)
        digits = 0 if ax >= 100 else 1 if ax >= 10 else 2 if ax >= 0.1 else 3
    return ("%.*f" % (digits, x)) + unit


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def rfmt(r, label=""):
    if r is None:
        return ""
    return "%s%.2f×" % (label + " " if label else "", r)


def verdict(ok):
    if ok is None:
        return "?"
    return "met" if ok else "MISSED"


class Context:
    def __init__(self, tools, root, shm_root, quick, selected, wanted=None):
        self.tools = tools
        self.root = root
        self.shm_root = shm_root
        self.quick = quick
        self.selected = selected
        self.targets = {t.name: t for t in H.targets(tools) if wanted is None or t.name in wanted}
        self.fleets = {}  # (target, n, ignore_term) -> list of results
        # stop_timeout / stopwaitsecs of every program; shorter in a quick run (supervisord stops serially)
        self.stop_timeout = 1 if quick else 3
        self.shutdown_sizes = [10] if quick else [10, 100]

    def names(self, multi_only=False):
        return [n for n, t in self.targets.items() if t.multi or not multi_only]

    # ---------------------------------------------------------------------------------------------------
    # a fleet of N sleeping programs: start-up, memory, idle wakeups and shutdown from one launch

    def fleet_run(self, name, n, ignore_term=False, idle_window=0, settle=None, stop_cap=40.0):
        target = self.targets[name]
        wd = H.workdir(self.root, "fleet-%s-%d" % (name, n))
        ann = H.Announcer(wd)
        if settle is None:
            settle = 1.1 if self.quick else 1.5
        progs = [H.Program("p%04d" % i, H.sleeper_argv(ann.path, ignore_term), restart="on-failure",
                           stop_timeout=self.stop_timeout) for i in range(n)]
        res = {"n": n}
        t0 = time.monotonic()
        proc = target.launch(wd, progs)
        try:
            t_all = ann.wait(n, timeout=60 + n * 0.2)
            res["started"] = len(ann.pids)
            res["startup"] = (t_all - t0) if t_all else None
            if t_all is None:
                H.log("%s: only %d of %d programs started (see %s)" % (name, len(ann.pids), n, wd))
                return res
            time.sleep(settle)  # let start_seconds pass so every program is RUNNING before measuring
            res["rss"], res["pss"] = H.smaps_rollup(proc.pid)
            if idle_window:
                c0 = H.ctx_switches(proc.pid)
                time.sleep(idle_window)
                res["wakeups"] = (H.ctx_switches(proc.pid) - c0) / idle_window
            if "shutdown" not in self.selected or n not in self.shutdown_sizes:
                return res  # killed below: a graceful stop is only timed by the shutdown scenario
            t1 = time.monotonic()
            os.kill(proc.pid, signal.SIGTERM)
            r = H.wait_exit(proc.pid, stop_cap)
            res["stop"] = (r[0] - t1) if r else None
            res["stop_capped"] = r is None
            res["survivors"] = sum(1 for p in ann.pids if H.alive(p))
            res["exit"] = r[2] if r else None
            if r:
                proc.returncode = r[2]
            return res
        finally:
            H.kill_everything(proc, ann.pids)
            ann.close()
            shutil.rmtree(wd, ignore_errors=True)

    def fleet(self, name, n, reps, ignore_term=False):
        key = (name, n, ignore_term)
        runs = self.fleets.setdefault(key, [])
        while len(runs) < reps:
            H.log("fleet %s n=%d%s run %d/%d" % (name, n, " ignoring TERM" if ignore_term else "",
                                                  len(runs) + 1, reps))
            runs.append(self.fleet_run(name, n, ignore_term=ignore_term))
        return runs

    def fleet_reps(self, n):
        if self.quick:
            return 1
        if "startup" not in self.selected and "shutdown" not in self.selected:
            return 1
        return {1: 5, 10: 5, 100: 3}.get(n, 2)


# -------------------------------------------------------------------------------------------------------------
# 1. footprint


def parse_importtime(text):
    """(total ms of self time, module count, {top-level module: cumulative ms}, set of all modules)"""
    total = 0
    count = 0
    top = {}
    every = set()
    for line in text.splitlines():
        m = re.match(r"import time:\s+(\d+)\s+\|\s+(\d+)\s+\|(\s+)(\S+)", line)
        if not m:
            continue
        total += int(m.group(1))
        count += 1
        every.add(m.group(4))
        if len(m.group(3)) == 1:
            top[m.group(4)] = top.get(m.group(4), 0) + int(m.group(2)) / 1000
    return total / 1000, count, top, every


# Modules worth a second look when they show up in a real run (whether the config uses them).
UNWANTED = ("asyncio", "psutil", "json", "watchfiles", "ssl", "email", "http", "xml", "logging", "argparse",
            "typing", "dataclasses", "socket", "subprocess", "threading", "concurrent", "ctypes", "shutil", "bz2",
            "lzma", "datetime", "inspect", "pathlib", "tempfile", "random", "uuid")


def importtime_run(ctx, name, settings=None):
    """Import cost of a real run with one program: python -X importtime, SIGTERM once the program runs."""
    tools = ctx.tools
    wd = H.workdir(ctx.root, "imp-%s" % name)
    ann = H.Announcer(wd)
    progs = [H.Program("p0", H.sleeper_argv(ann.path))]
    target = ctx.targets[name]
    argv = target.command(wd, progs, settings or {})
    module = {"pysuper": "pysuper", "supervisord": "supervisor.supervisord"}[name]
    python = tools.pysuper_python if name == "pysuper" else tools.python
    argv = [python, "-X", "importtime", "-m", module] + argv[1:]
    errf = os.path.join(wd, "stderr")
    with open(errf, "wb") as err:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                                start_new_session=True, cwd=wd)
    try:
        if ann.wait(1, 30) is not None:
            time.sleep(0.3)  # anything imported after the first start counts too
            if name == "pysuper":  # its imports on the way out count too
                os.kill(proc.pid, signal.SIGTERM)
                H.wait_exit(proc.pid, 15)
    finally:
        H.kill_everything(proc, ann.pids)
        ann.close()
    text = open(errf, errors="replace").read()
    shutil.rmtree(wd, ignore_errors=True)
    return parse_importtime(text)


def importtime_cmd(python, args):
    r = subprocess.run([python, "-X", "importtime"] + args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       text=True)
    return parse_importtime(r.stderr)


def scenario_footprint(ctx):
    rows = []
    sizes = [1, 10] if ctx.quick else [1, 10, 100, 1000]
    res = {}
    for name in ctx.names():
        for n in sizes:
            if n > 1 and not ctx.targets[name].multi:
                continue
            res[(name, n)] = ctx.fleet(name, n, ctx.fleet_reps(n))
    for metric, key in (("RSS", "rss"), ("PSS", "pss")):
        for n in sizes:
            vals = {name: median([r.get(key) for r in res[(name, n)]]) for name in ctx.names() if (name, n) in res}
            started = {name: min(r.get("started", 0) for r in res[(name, n)]) for name in ctx.names()
                       if (name, n) in res}
            r = ratio(vals.get("pysuper"), vals.get("supervisord"))
            target = met = ""
            if metric == "RSS" and n == 10:
                target, met = "≤ 0.65× supervisord", verdict(r <= 0.65 if r is not None else None)
            rows.append(Row("footprint", "%d × sleep" % n, "%s (MB)" % metric,
                            {k: fmt(v / 1024 if v else None, digits=1) for k, v in vals.items()},
                            ratio=rfmt(r), target=target, met=met,
                            check="running: " + ", ".join("%s %d/%d" % (k, v, n) for k, v in started.items())))
    # growth per program
    if "pysuper" in ctx.targets:
        lo, hi = sizes[0], sizes[-1]
        growth = {}
        for name in ctx.names(multi_only=True):
            a = median([r.get("rss") for r in res[(name, lo)]])
            b = median([r.get("rss") for r in res[(name, hi)]])
            if a and b:
                growth[name] = (b - a) / (hi - lo)
        g = growth.get("pysuper")
        rows.append(Row("footprint", "%d → %d × sleep" % (lo, hi), "RSS growth per program (KB)",
                        {k: fmt(v, digits=1) for k, v in growth.items()},
                        ratio=rfmt(ratio(g, growth.get("supervisord"))),
                        target="≤ ~50 KB", met=verdict(g <= 55 if g is not None else None)))
    # import cost
    if ctx.tools.python:
        reps = 1 if ctx.quick else 3
        base = [importtime_cmd(ctx.tools.python, ["-c", "pass"]) for _ in range(reps)]
        pypy = ctx.tools.pysuper_python
        imp = {}
        tops = {}
        for name in ("pysuper", "supervisord"):
            if name in ctx.targets and (name != "pysuper" or os.path.exists(pypy or "")):
                runs = [importtime_run(ctx, name) for _ in range(reps)]
                imp[name] = (median([x[0] for x in runs]), runs[0][1])
                tops[name] = runs[0][2], runs[0][3]
        ver = None
        if "pysuper" in imp:
            ver = median([importtime_cmd(pypy, ["-m", "pysuper", "--version"])[0]
                          for _ in range(reps)])
        b = (median([x[0] for x in base]), base[0][1])
        check = ""
        if "pysuper" in tops:
            top, every = tops["pysuper"]
            got = sorted(m for m in every if m in UNWANTED)
            heavy = sorted(top.items(), key=lambda kv: -kv[1])[:6]
            check = "watch-list modules imported: %s; heaviest top-level: %s" % (", ".join(got) or "none",
                                                    ", ".join("%s %.1f ms" % kv for kv in heavy))
        rows.append(Row("footprint", "real run, 1 program", "imports (ms self-time, modules)",
                        {k: "%.1f (%d)" % v for k, v in imp.items()},
                        baseline="bare python %.1f (%d)" % b,
                        ratio=rfmt(ratio(imp.get("pysuper", (None,))[0], imp.get("supervisord", (None,))[0])),
                        target="nothing unused imported", check=check))
        if ver is not None:
            rows.append(Row("footprint", "`-m pysuper --version`", "imports (ms self-time)",
                            {"pysuper": fmt(ver, digits=1)}, baseline="bare python %.1f" % b[0]))
    return rows


# -------------------------------------------------------------------------------------------------------------
# 2. idle wakeups


def scenario_idle(ctx):
    window = 2.0 if ctx.quick else 20.0
    vals = {}
    checks = []
    for name in ctx.names():
        n = 100 if ctx.targets[name].multi else 1
        H.log("idle %s n=%d over %.0f s" % (name, n, window))
        r = ctx.fleet_run(name, n, idle_window=window)
        vals[name] = r.get("wakeups")
        checks.append("%s %d/%d" % (name, r.get("started", 0), n))
    p = vals.get("pysuper")
    return [Row("idle", "100 × sleep (tini/dumb-init: 1) over %.0f s" % window, "wakeups/s",
                {k: fmt(v, digits=2) for k, v in vals.items()},
                ratio=rfmt(ratio(p, vals.get("supervisord"))), target="0",
                met=verdict(p < 0.1 if p is not None else None), check="running: " + ", ".join(checks))]


# -------------------------------------------------------------------------------------------------------------
# 3. start-up


def scenario_startup(ctx):
    rows = []
    sizes = [1, 10, 100] if ctx.quick else [1, 10, 100, 1000]
    targets = {1: 0.1, 100: 0.25}
    for n in sizes:
        vals = {}
        started = {}
        for name in ctx.names():
            if n > 1 and not ctx.targets[name].multi:
                continue
            runs = ctx.fleet(name, n, ctx.fleet_reps(n))
            vals[name] = median([r.get("startup") for r in runs])
            started[name] = min(r.get("started", 0) for r in runs)
        r = ratio(vals.get("pysuper"), vals.get("supervisord"))
        target = met = ""
        if n in targets:
            target = "≤ %.2g× supervisord" % targets[n]
            met = verdict(r <= targets[n] if r is not None else None)
        elif n == 1000:
            p = vals.get("pysuper")
            target, met = "a few seconds", verdict(p < 5 if p is not None else None)
        rows.append(Row("start-up", "%d × sleep" % n, "launch → all running (ms)",
                        {k: fmt(v * 1000 if v is not None else None, digits=0 if (v or 0) > 0.1 else 1)
                         for k, v in vals.items()},
                        ratio=rfmt(r), target=target, met=met,
                        check="running: " + ", ".join("%s %d/%d" % (k, v, n) for k, v in started.items())))
    return rows


# -------------------------------------------------------------------------------------------------------------
# 4. log relay


def verify_lines(path, mode, writers, per):
    """Count lines lost, torn (not a whole line) and mixed (labelled with another program)."""
    with open(path, "rb") as f:
        data = f.read()
    lines = data.split(b"\n")
    torn = mixed = dup = 0
    if lines[-1]:
        torn += 1
    lines.pop()
    seen = [bytearray(per) for _ in range(writers)]
    pad = b"x" * (LINE - 3 - 9 - 2)
    for line in lines:
        if mode == "prefix":
            i = line.find(b" | ")
            if i < 0:
                torn += 1
                continue
            label, payload = line[:i].strip(), line[i + 3:]
        elif mode == "json":
            try:
                obj = json.loads(line)
                label, payload = obj["program"].encode(), obj["message"].encode()
            except (ValueError, KeyError, TypeError, AttributeError):
                torn += 1
                continue
        else:
            label, payload = None, line
        if (len(payload) != LINE - 1 or payload[0] != 119 or payload[2] != 32 or payload[12] != 32
                or payload[13:] != pad or not payload[3:12].isdigit()):
            torn += 1
            continue
        w = payload[1] - 48
        seq = int(payload[3:12])
        if not (0 <= w < writers) or seq >= per:
            torn += 1
            continue
        if label is not None and label != payload[:2]:
            mixed += 1
            continue
        if seen[w][seq]:
            dup += 1
        else:
            seen[w][seq] = 1
    lost = writers * per - sum(s.count(1) for s in seen)
    return {"lost": lost, "torn": torn, "mixed": mixed, "dup": dup, "bytes": len(data)}


def relay_run(ctx, kind, writers, sink, mode, total_lines, block, verify):
    """kind: 'pysuper' (mode prefix/json/raw), 'supervisord' (file), 'pass' (programs straight to the sink)."""
    tools = ctx.tools
    wd = H.workdir(ctx.shm_root, "relay-%s-%s-%d-%s" % (kind, mode, writers, sink))
    out = os.path.join(wd, "out")
    per = total_lines // writers
    progs = []
    for w in range(writers):
        argv = tools.writer + ["w%d" % w, str(per), str(block), os.path.join(wd, "start.w%d" % w)]
        # start_seconds 0: a writer that is done within a second is not a failed start to be retried.
        progs.append(H.Program("w%d" % w, argv, restart="never", start_seconds=0))
    res = {}
    outf = open(out, "wb")
    cat = None
    if sink == "pipe":
        cat = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=outf)
        stdout = cat.stdin
    else:
        stdout = outf
    procs = []
    sup = None
    expected = total_lines // writers * writers * LINE
    try:
        if kind == "pass":
            for p in progs:
                procs.append(subprocess.Popen(p.argv, stdin=subprocess.DEVNULL, stdout=stdout, cwd=wd))
        elif kind == "pysuper":
            sup = ctx.targets["pysuper"].launch(wd, progs, settings={"log_format": mode}, stdout=stdout)
        else:
            sup = ctx.targets["supervisord"].launch(wd, progs, stdout=stdout)
        if cat is not None:
            cat.stdin.close()
        outf.close()
        # The end is the last write to the output file (its mtime), for every kind alike; a supervisor's
        # own exit or shutdown does not count. CPU is the supervisor's own, read once all output is there.
        cpu = None
        done = True
        if kind == "pass":
            for p in procs:
                done = H.wait_exit(p.pid, 300) is not None and done
                p.returncode = 0
        elif kind == "pysuper":
            r = H.wait_exit(sup.pid, 300)
            if r:
                cpu, sup.returncode = r[1], r[2]
                res["exit"] = r[2]
            else:
                done = False
                H.log("pysuper relay did not finish in 300 s (%s)" % wd)
        else:
            # supervisord never exits by itself: wait for all the bytes, or for the output to stall.
            last, last_change = -1, time.monotonic()
            while True:
                size = os.path.getsize(out)
                now = time.monotonic()
                if size != last:
                    last, last_change = size, now
                if size >= expected or now - last_change > 3.0:
                    break
                time.sleep(0.002)
            cpu = H.cpu_seconds(sup.pid)
            H.kill_everything(sup)
        if cat is not None:
            r = H.wait_exit(cat.pid, 60)
            cat.returncode = 0
        offset = time.time() - time.monotonic()
        t_end = os.stat(out).st_mtime_ns / 1e9 - offset if done else None
        starts = []
        for w in range(writers):
            try:
                starts.append(float(open(os.path.join(wd, "start.w%d" % w)).read()))
            except (OSError, ValueError):
                pass
        if t_end is not None and starts:
            secs = t_end - min(starts)
            mb = total_lines // writers * writers * LINE / 1e6
            res["mbps"] = mb / secs
            if cpu is not None:
                res["cpu100"] = cpu / (mb / 100)
        if verify:
            res.update(verify_lines(out, "raw" if kind != "pysuper" else mode, writers, per))
        else:
            size = os.path.getsize(out)
            res["bytes"] = size
        return res
    finally:
        if sup is not None:
            H.kill_everything(sup)
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        if cat is not None and cat.poll() is None:
            cat.kill()
            cat.wait()
        shutil.rmtree(wd, ignore_errors=True)


def scenario_relay(ctx):
    rows = []
    total = 200_000 if ctx.quick else 2_000_000
    reps = 1 if ctx.quick else 3
    have_p = "pysuper" in ctx.targets
    have_s = "supervisord" in ctx.targets

    def measure_all(variants, writers, sink, block):
        """Runs every (kind, mode) variant once per repeat, repeats interleaved so that a burst of load on
        the machine hits all of them alike. Correctness is verified on the first repeat."""
        runs = {v: [] for v in variants}
        for i in range(reps):
            for kind, mode in variants:
                H.log("relay %s %s, %d writer(s), %d-byte writes → %s, run %d/%d" % (
                    kind, mode, writers, block, sink, i + 1, reps))
                runs[(kind, mode)].append(relay_run(ctx, kind, writers, sink, mode, total, block, verify=(i == 0)))
        out = {}
        for v, rs in runs.items():
            first = rs[0]
            out[v] = {"mbps": median([r.get("mbps") for r in rs]), "cpu100": median([r.get("cpu100") for r in rs]),
                      "lost": first.get("lost"), "torn": first.get("torn"), "mixed": first.get("mixed"),
                      "dup": first.get("dup")}
        return out

    def check(m):
        if m.get("lost") is None:
            return ""
        s = "lost %d, torn %d, mixed %d" % (m["lost"], m["torn"], m["mixed"])
        if m.get("dup"):
            s += ", duplicated %d" % m["dup"]
        return s

    def both(m):
        return "%s; %s" % (fmt(m["mbps"]), fmt(m["cpu100"]))

    # 100-byte writes: a line-buffered program, one write(2) per line.
    # 64 KiB writes: a program with a large output buffer; lines straddle writes, and writes larger than
    # PIPE_BUF (4096) are not atomic, so programs sharing one stdout tear each other's lines.
    for block, wlabel in ((100, "line writes"), (65536, "64 KiB writes")):
        for writers in (1, 4):
            for sink in ("file", "pipe"):
                case = "%d writer%s, %s → %s" % (writers, "s" if writers > 1 else "", wlabel, sink)
                variants = [("pass", "raw")] + ([("supervisord", "raw")] if have_s else []) + (
                    [("pysuper", m) for m in ("prefix", "json", "raw")] if have_p else [])
                res = measure_all(variants, writers, sink, block)
                base = res[("pass", "raw")]
                rows.append(Row("log relay", case + ": pass-through", "MB/s", {}, baseline=fmt(base["mbps"]),
                                check=check(base)))
                sd = res.get(("supervisord", "raw"))
                if sd:
                    rows.append(Row("log relay", case + ": supervisord", "MB/s; CPU s/100 MB",
                                    {"supervisord": both(sd)}, baseline=fmt(base["mbps"]),
                                    ratio=rfmt(ratio(sd["mbps"], base["mbps"]), "vs pass"), check=check(sd)))
                if not have_p:
                    continue
                for mode in ("prefix", "json", "raw"):
                    m = res[("pysuper", mode)]
                    parts = [rfmt(ratio(m["mbps"], base["mbps"]), "vs pass")]
                    target, ok = "", None
                    if mode == "prefix":
                        target = "≥ 0.5× pass"
                        ok = m["mbps"] is not None and m["mbps"] >= 0.5 * base["mbps"]
                        if sd and sd["mbps"] and sd["cpu100"]:
                            parts.append(rfmt(ratio(m["mbps"], sd["mbps"]), "MB/s vs sd"))
                            parts.append(rfmt(ratio(m["cpu100"], sd["cpu100"]), "CPU vs sd"))
                            target += ", ≥ 1× sd MB/s at ≤ 0.6× its CPU"
                            ok = ok and m["mbps"] >= sd["mbps"] and (ratio(m["cpu100"], sd["cpu100"]) or 9) <= 0.6
                    elif mode == "raw":
                        # Raw mode shares one stdout like pass-through: same bytes, same tearing.
                        target = "within 5% of pass"
                        r = ratio(m["mbps"], base["mbps"])
                        ok = r is not None and r >= 0.95
                    if mode in ("prefix", "json"):
                        target = (target + ", " if target else "") + "0 lost/torn/mixed"
                        ok = ok if mode == "prefix" else True
                        ok = ok and m.get("lost") == 0 and m.get("torn") == 0 and m.get("mixed") == 0
                    rows.append(Row("log relay", "%s: pysuper %s" % (case, mode), "MB/s; CPU s/100 MB",
                                    {"pysuper": both(m)}, baseline=fmt(base["mbps"]),
                                    ratio="; ".join(p for p in parts if p), target=target, met=verdict(ok),
                                    check=check(m)))
    return rows


# -------------------------------------------------------------------------------------------------------------
# 5. reaping


def reap_run(ctx, name, count, cap):
    tools = ctx.tools
    wd = H.workdir(ctx.root, "reap-%s-%d" % (name, count))
    ann = H.Announcer(wd)
    batch = 1 if tools.helper[0].endswith("bench-helper") else 100
    prog = H.Program("orphans", tools.helper + ["orphans", str(count), str(batch), ann.path], restart="never")
    proc = ctx.targets[name].launch(wd, [prog], pid1=True)
    res = {}
    try:
        sup = proc.sup_pid
        if sup is None or ann.wait(1, 120) is None:
            H.log("reaping %s: orphan maker did not finish (%s)" % (name, wd))
            return res
        t_done = float(ann.lines[0].split()[1])
        live = 1  # the orphan maker itself stays
        t_clear = None
        while True:
            now = time.monotonic()
            n = len(H.children(sup))
            if n <= live:
                t_clear = now
                break
            if now - t_done > cap:
                break
            time.sleep(0.001)
        res["clear"] = (t_clear - t_done) if t_clear is not None else None
        res["left"] = H.zombies_of(sup)
        return res
    finally:
        H.kill_everything(proc)
        ann.close()
        shutil.rmtree(wd, ignore_errors=True)


def scenario_reaping(ctx):
    if not ctx.tools.unshare_ok:
        return [Row("reaping", "", "", {}, check="skipped: unshare --pid not permitted")]
    rows = []
    counts = [1000] if ctx.quick else [1000, 10000]
    cap = 3.0 if ctx.quick else 15.0
    reps = 1 if ctx.quick else 3
    for count in counts:
        vals = {}
        left = {}
        for name in ctx.names():
            n_reps = 1 if name == "supervisord" else reps
            runs = []
            for i in range(n_reps):
                H.log("reaping %s %d orphans run %d/%d" % (name, count, i + 1, n_reps))
                runs.append(reap_run(ctx, name, count, cap))
            clears = [r.get("clear") for r in runs]
            vals[name] = median(clears) if all(c is not None for c in clears) else None
            left[name] = max((r.get("left") or 0) for r in runs)
            if vals[name] is None:
                vals[name] = "> %.0f s (%d left)" % (cap, left[name])
        p = vals.get("pysuper")
        numeric = {k: v for k, v in vals.items() if not isinstance(v, str)}
        rows.append(Row("reaping (PID 1)", "%d double-forked orphans" % count, "last exit → no zombie (ms)",
                        {k: (fmt(v * 1000, digits=1) if not isinstance(v, str) else v) for k, v in vals.items()},
                        ratio=rfmt(ratio(numeric.get("pysuper"), numeric.get("tini")), "vs tini"),
                        target="≤ 200 ms" if count >= 10000 else "",
                        met=verdict(p <= 0.2 if isinstance(p, float) else (False if p else None))
                        if count >= 10000 else "",
                        check="zombies left: " + ", ".join("%s %d" % kv for kv in left.items())))
    return rows


# -------------------------------------------------------------------------------------------------------------
# 6. shutdown


def scenario_shutdown(ctx):
    rows = []
    sizes = ctx.shutdown_sizes
    for ignore in (False, True):
        for n in sizes:
            vals = {}
            checks = []
            for name in ctx.names(multi_only=True):
                reps = ctx.fleet_reps(n)
                if ignore:
                    reps = 1 if (name == "supervisord" or ctx.quick) else 3
                runs = ctx.fleet(name, n, reps, ignore_term=ignore)
                if any(r.get("stop_capped") for r in runs):
                    vals[name] = "> 40 s"
                else:
                    vals[name] = median([r.get("stop") for r in runs])
                checks.append("%s exit %s, survivors %d" % (
                    name, ",".join(str(r.get("exit")) for r in runs), max(r.get("survivors", 0) for r in runs)))
            p = vals.get("pysuper")
            pn = p if not isinstance(p, str) else None
            sd = vals.get("supervisord")
            sdn = sd if not isinstance(sd, str) else None
            target = met = ""
            if not ignore and n == 10:
                target, met = "≤ 0.3 s", verdict(pn <= 0.3 if pn is not None else None)
            st = ctx.stop_timeout
            if ignore:
                target = "≤ %g s (stop_timeout + 0.3 s)" % (st + 0.3)
                met = verdict(pn <= st + 0.3 if pn is not None else None)
            rows.append(Row("shutdown", "%d × sleep %s" % (n, "ignoring TERM (stop_timeout %g s)" % st if ignore
                                                           else "exiting on TERM"),
                            "SIGTERM → supervisor exit (s)",
                            {k: (fmt(v, digits=2) if not isinstance(v, str) else v) for k, v in vals.items()},
                            ratio=rfmt(ratio(pn, sdn)), target=target, met=met, check="; ".join(checks)))
    return rows


# -------------------------------------------------------------------------------------------------------------
# 7. restart


def read_crash_log(path):
    starts, ends = [], []
    try:
        with open(path) as f:
            for line in f:
                tag, t = line.split()[:2]
                (starts if tag == "S" else ends).append(float(t))
    except FileNotFoundError:
        pass
    return starts, ends


def crash_run(ctx, name, run_seconds, keep_after, window, start_seconds=1, start_retries=3):
    """Start one crashing program; return (starts, ends) monotonic times over the window."""
    wd = H.workdir(ctx.root, "crash-%s" % name)
    logf = os.path.join(wd, "crash.log")
    prog = H.Program("crasher", ctx.tools.helper + ["crash", logf, str(run_seconds), "1", str(keep_after)],
                     restart="on-failure", start_seconds=start_seconds, start_retries=start_retries)
    proc = ctx.targets[name].launch(wd, [prog])
    try:
        deadline = time.monotonic() + window
        while time.monotonic() < deadline:
            starts, _ = read_crash_log(logf)
            if keep_after and len(starts) > keep_after:
                break
            if proc.poll() is not None:
                break
            time.sleep(0.005)
        return read_crash_log(logf)
    finally:
        H.kill_everything(proc)
        shutil.rmtree(wd, ignore_errors=True)


def delays(starts, ends):
    return [(s - e) for s, e in zip(starts[1:], ends)]


def scenario_restart(ctx):
    rows = []
    reps = 1 if ctx.quick else 3
    names = ctx.names(multi_only=True)
    first = {}
    for name in names:
        ds = []
        for i in range(reps):
            H.log("restart %s first restart run %d/%d" % (name, i + 1, reps))
            starts, ends = crash_run(ctx, name, 1.3, 1, 15)
            d = delays(starts, ends)
            ds.append(d[0] if d else None)
        first[name] = median(ds)
    p = first.get("pysuper")
    rows.append(Row("restart", "RUNNING program (up 1.3 s) crashes", "exit → next exec (ms)",
                    {k: fmt(v * 1000 if v is not None else None, digits=1) for k, v in first.items()},
                    ratio=rfmt(ratio(p, first.get("supervisord"))), target="≤ 20 ms",
                    met=verdict(p <= 0.02 if p is not None else None)))
    window = 3.0 if ctx.quick else 10.0
    loops = [("crash loop, each run 1.1 s (past start_seconds 1)", 1.1, {}),
             ("crash loop, immediate exit (failed starts; retries 100)", 0.0, {"start_retries": 100})]
    for label, run_s, kw in loops[:1] if ctx.quick else loops:
        vals = {}
        for name in names:
            H.log("restart %s %s over %.0f s" % (name, label, window))
            starts, ends = crash_run(ctx, name, run_s, 0, window, **kw)
            d = delays(starts, ends)
            vals[name] = "%d runs; delays ms: %s" % (len(starts), ", ".join("%.0f" % (x * 1000) for x in d))
        rows.append(Row("restart", label + ", %.0f s" % window, "restart delays", vals,
                        target="backoff: growing, jittered, capped" if run_s else ""))
    return rows


SCENARIOS = {
    "footprint": scenario_footprint,
    "idle": scenario_idle,
    "startup": scenario_startup,
    "relay": scenario_relay,
    "reaping": scenario_reaping,
    "shutdown": scenario_shutdown,
    "restart": scenario_restart,
}

# The orchestration scenarios (pysuper only) live in their own module, which imports this one.
from orchestration import SCENARIOS as _ORCHESTRATION  # noqa: E402

SCENARIOS.update(_ORCHESTRATION)
