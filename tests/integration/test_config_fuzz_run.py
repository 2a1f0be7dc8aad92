"""Configs the loader accepts do not crash pysuper: a sample of fuzzed configs is checked and run
briefly (start, SIGTERM), and pysuper exits 0, 1 or 2 with no traceback and no internal error."""

import os
import signal
import sys
import tempfile

from hypothesis import HealthCheck, assume, given, settings

from conftest import Pysuper, run_cli

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "unit"))
from config_strategies import config_texts  # noqa: E402

from pysuper import config  # noqa: E402

ENV = {"PORT": "8080"}
RUNS = settings(max_examples=int(os.environ.get("PYSUPER_FUZZ_RUNS", "6")), deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


def clean(text):
    assert "Traceback" not in text and "internal error" not in text, text


def checked(text, directory):
    """Write the config into directory and run `pysuper check` on it: exit 0, 1 or 2, no traceback."""
    path = os.path.join(directory, "pysuper.toml")
    with open(path, "w") as handle:
        handle.write(text)
    result = run_cli(["check", path], cwd=directory, env=ENV)
    assert result.returncode in (0, 1, 2), result.stderr
    clean(result.stderr)
    return path


@RUNS
@given(config_texts(runnable=True))
def test_accepted_fuzzed_configs_run_and_stop(text):
    try:
        config.parse(text, "fuzz.toml", dict(os.environ, **ENV))
    except config.ConfigError:
        assume(False)
    with tempfile.TemporaryDirectory(prefix="pysuper-fuzz-") as directory:
        process = Pysuper(["-c", checked(text, directory)], cwd=directory, env=ENV)
        try:
            try:
                # pysuper handles signals once it logs "starting" (before, SIGTERM simply ends it);
                # a config with no autostart program logs no such line: SIGTERM after the deadline.
                process.err.search(r"pysuper \| starting |error|exiting", timeout=5)
            except AssertionError:
                pass
            if process.proc.poll() is None:
                process.signal(signal.SIGTERM)
            code = process.wait(timeout=30)
        finally:
            process.kill()
        assert code in (0, 1, 2), "exit %d for\n%s\n%s" % (code, text, process.err.text())
        clean(process.err.text())
        clean(process.out.text())


@RUNS
@given(config_texts())
def test_check_only_exits_0_1_or_2(text):
    with tempfile.TemporaryDirectory(prefix="pysuper-fuzz-") as directory:
        checked(text, directory)
