"""Smoke run of the benchmark harness: the footprint scenario, small sizes, pysuper beside supervisord."""
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUN = os.path.join(ROOT, "benchmarks", "run.py")


def _supervisord():
    local = os.path.join(ROOT, "benchmarks", ".env", "bin", "supervisord")
    return local if os.path.exists(local) else shutil.which("supervisord")


def _pysuper():
    exe = os.path.join(os.path.dirname(sys.executable), "pysuper")
    return exe if os.path.exists(exe) else shutil.which("pysuper")


@pytest.mark.timeout(60)
def test_footprint_quick_run_measures_pysuper_and_supervisord(tmp_path):
    if not _supervisord():
        pytest.skip("supervisord is not installed (python benchmarks/run.py installs it into benchmarks/.env)")
    pysuper = _pysuper()
    if not pysuper:
        pytest.skip("the pysuper command is not installed in this environment")
    out = tmp_path / "table.md"
    r = subprocess.run(
        [sys.executable, RUN, "--quick", "--only", "footprint", "--targets", "pysuper,supervisord",
         "--no-install", "--pysuper", pysuper, "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=55)
    assert r.returncode == 0, r.stderr[-2000:]
    table = out.read_text()
    assert "| footprint | 10 × sleep | RSS (MB) |" in table
    assert "running: pysuper 10/10, supervisord 10/10" in table
    rss_row = next(line for line in table.splitlines() if line.startswith("| footprint | 10 × sleep | RSS"))
    pysuper_mb = float(rss_row.split("|")[4])
    assert 1 < pysuper_mb < 200
