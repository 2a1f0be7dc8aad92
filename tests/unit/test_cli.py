"""The one reading of -c FILE (used by `pysuper` and `pysuper ctl`), without running anything."""

import pytest

from pysuper.cli import UsageError, _parse_config_flag, config_option


@pytest.mark.parametrize("args,expected", [
    (["-c", "a.toml", "check"], ("a.toml", ["check"])),
    (["check", "--config", "a.toml"], ("a.toml", ["check"])),
    (["-ca.toml"], ("a.toml", [])),
    (["--config=a.toml", "run"], ("a.toml", ["run"])),
    (["check"], (None, ["check"])),
    (["-c", "a.toml", "-c", "b.toml"], ("b.toml", [])),  # the last one wins
])
def test_config_flag_anywhere(args, expected):
    assert _parse_config_flag(args) == expected


@pytest.mark.parametrize("arg", ["-c", "--config"])
def test_config_flag_without_a_file(arg):
    with pytest.raises(UsageError, match="%s needs a file name" % arg):
        config_option(arg, [])


def test_config_option_takes_only_its_own_value():
    rest = ["a.toml", "status"]
    assert config_option("-c", rest) == "a.toml" and rest == ["status"]
    assert config_option("--socket", rest) is None and rest == ["status"]
