"""Property-based fuzzing of the config loader: for any TOML text, parse returns a Config or raises
ConfigError, never anything else; whatever it accepts can be inspected (host problems, start order,
environment, repr) without an exception."""

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pysuper import config, graph
from pysuper.config import ConfigError

from config_strategies import config_texts, raw_values  # noqa: E402  (tests/unit is on sys.path)

FUZZ = settings(max_examples=int(os.environ.get("PYSUPER_FUZZ_EXAMPLES", "150")), deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
ENV = {"HOME": "/root", "PORT": "8080", "PATH": os.defpath}


def load(text):
    """Parse; on success exercise everything a user of the config calls."""
    try:
        cfg = config.parse(text, "fuzz.toml", ENV)
    except ConfigError as exc:
        assert exc.errors and all(isinstance(line, str) and line.startswith("fuzz.toml") for line in exc.errors)
        assert all("\0" not in line and "\n" not in line for line in exc.errors)
        return None
    assert cfg.programs
    for line in config.host_problems(cfg):
        assert isinstance(line, str) and "\n" not in line
    assert sorted(graph.start_order(cfg)) == sorted(cfg.programs)
    for program in cfg.programs.values():
        config.program_environment(program, {})
        repr(program)
        for name in program.depends_on:
            assert graph.instances_of(cfg, name)
    config.parse(text, "fuzz.toml", ENV, expand=False)
    return cfg


@FUZZ
@given(st.text(max_size=400))
def test_any_text(text):
    load(text)


@FUZZ
@given(config_texts())
def test_config_shaped_text(text):
    load(text)


@FUZZ
@given(st.dictionaries(st.sampled_from(sorted(config.PROGRAM_KEYS)), raw_values(), max_size=6))
def test_every_key_with_any_value(table):
    from config_strategies import toml_value
    table.setdefault("command", "true")
    load("[programs.fuzz]\n" + "".join("%s = %s\n" % (key, toml_value(value)) for key, value in table.items()))


def test_deep_nesting_is_a_config_error():
    for text in ("a = " + "[" * 100000 + "]" * 100000, "a = " + "{b = " * 50000 + "1" + "}" * 50000,
                 "[programs.a]\ncommand = " + "[" * 5000 + "]" * 5000):
        assert load(text) is None


def test_huge_numbers_are_config_errors():
    for key in ("start_seconds", "stop_timeout", "start_retries", "replicas", "exit_codes", "stop_signal"):
        assert load('[programs.a]\ncommand = "true"\n%s = %s\n' % (key, "9" * 400)) is None
    assert load("a = " + "9" * 5000) is None
