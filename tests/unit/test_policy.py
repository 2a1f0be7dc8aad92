"""The restart decision, as a table: (config, exit, run length, reached RUNNING, counters) -> decision."""

import pytest

from pysuper.config import ProgramConfig
from pysuper.policy import (FAILED_START, FINISHED, GIVE_UP, RESTART_LATER, RESTART_NOW, after_exit,
                            backoff_delay)


def config(**overrides):
    values = dict(name="web", command=("web",), start_seconds=1.0, start_retries=3, backoff_max=30.0,
                  restart="on-failure", exit_codes=(0,))
    values.update(overrides)
    return ProgramConfig(**values)


# (config overrides, code, ran, running, failures, streak) -> (action, delay, failures, streak, expected)
TABLE = [
    # the restart policy says it is done
    ({}, 0, 5.0, True, 0, 0, (FINISHED, 0.0, 0, 0, True)),
    ({"exit_codes": (0, 3)}, 3, 5.0, True, 0, 0, (FINISHED, 0.0, 0, 0, True)),
    ({"restart": "never"}, 1, 5.0, True, 0, 0, (FINISHED, 0.0, 0, 0, False)),
    ({"restart": "never"}, 1, 0.1, False, 0, 0, (FINISHED, 0.0, 0, 0, False)),  # short, but final
    ({}, 0, 0.1, False, 2, 0, (FINISHED, 0.0, 2, 0, True)),  # an expected early exit is not a failure
    # a crash after a healthy run: at once, then 1 s, 2 s, 4 s ... capped
    ({}, 1, 5.0, True, 0, 0, (RESTART_NOW, 0.0, 0, 1, False)),
    ({"restart": "always"}, 0, 5.0, True, 0, 0, (RESTART_NOW, 0.0, 0, 1, True)),
    ({}, 1, 5.0, True, 0, 1, (RESTART_LATER, 1.0, 0, 2, False)),
    ({}, 1, 5.0, True, 0, 3, (RESTART_LATER, 4.0, 0, 4, False)),
    ({"backoff_max": 8.0}, 1, 5.0, True, 0, 9, (RESTART_LATER, 8.0, 0, 10, False)),
    ({"backoff_max": 8.0}, 1, 8.0, True, 0, 9, (RESTART_NOW, 0.0, 0, 1, False)),  # a long run resets
    ({"backoff_max": 0.0}, 1, 0.0, True, 0, 4, (RESTART_NOW, 0.0, 0, 1, False)),  # no backoff at all
    # ended before start_seconds: a failed start, FATAL after start_retries in a row
    ({}, 1, 0.5, False, 0, 0, (FAILED_START, 1.0, 1, 0, False)),
    ({}, 1, 0.5, False, 1, 2, (FAILED_START, 2.0, 2, 2, False)),
    ({}, 1, 0.5, False, 2, 0, (GIVE_UP, 0.0, 3, 0, False)),
    ({"start_retries": 0}, 1, 0.5, False, 0, 0, (GIVE_UP, 0.0, 1, 0, False)),
    ({"start_retries": 1}, 1, 0.5, False, 0, 0, (GIVE_UP, 0.0, 1, 0, False)),
    ({"restart": "always"}, 0, 0.5, False, 0, 0, (FAILED_START, 1.0, 1, 0, True)),
    # could not be started at all (code None): a failed start whatever `restart` says
    ({"restart": "never"}, None, 0.0, False, 0, 0, (FAILED_START, 1.0, 1, 0, None)),
    ({}, None, 0.0, False, 2, 0, (GIVE_UP, 0.0, 3, 0, None)),
]


@pytest.mark.parametrize("overrides,code,ran,running,failures,streak,expected", TABLE)
def test_after_exit(overrides, code, ran, running, failures, streak, expected):
    assert tuple(after_exit(config(**overrides), code, ran, running, failures, streak)) == expected


def test_backoff_delay_doubles_and_caps():
    assert [backoff_delay(n, 30) for n in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]
    assert backoff_delay(10 ** 6, 30) == 30
