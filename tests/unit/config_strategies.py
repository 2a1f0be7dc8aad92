"""Hypothesis strategies for config fuzzing: raw TOML values, plausible values per key, config texts."""

import json

from hypothesis import strategies as st

from pysuper import config

SCALARS = (st.booleans() | st.integers(min_value=-10 ** 30, max_value=10 ** 30)
           | st.integers(min_value=-10 ** 400, max_value=10 ** 400) | st.floats(allow_nan=True)
           | st.text(max_size=20) | st.sampled_from(["", "\0", "${PORT}", "${NOPE}", "$$", "a\nb", "0", "unlimited",
                                                       "127.0.0.1:${PYSUPER_REPLICA}", "http://h/", "(", "*.log"]))


RAW_VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                          | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)


def raw_values():
    return RAW_VALUES


NAMES = ["a", "b", "web", "db", "web-0", "x.y"]
PLAUSIBLE = {
    "command": st.sampled_from(['"true"', '["sleep", "0.1"]', '"sh -c \'exit 3\'"', '"echo ${PYSUPER_REPLICA}"']),
    "type": st.sampled_from(['"service"', '"oneshot"']),
    "restart": st.sampled_from(['"always"', '"on-failure"', '"never"']),
    "depends_on": st.sampled_from(['["a"]', '{ b = "ready" }', '{ web = "completed", a = "started" }', "[]"]),
    "ready": st.sampled_from(["{ tcp = 1 }", '{ http = "http://127.0.0.1:1/" }', '{ exec = "true" }',
                              '{ log = "x", timeout = 0.5 }', "{ notify = true }", '{ tcp = "h:${PORT}" }']),
    "health": st.sampled_from(["{ tcp = 65535, retries = 2 }", '{ exec = ["true"], interval = 1 }']),
    "replicas": st.integers(min_value=0, max_value=4).map(str),
    "start_seconds": st.floats(min_value=0, max_value=2).map(repr),
    "stop_timeout": st.floats(min_value=0, max_value=2).map(repr),
    "exit_codes": st.sampled_from(["[0, 3]", "0", "[]"]),
    "limits": st.sampled_from(["{ nofile = 256 }", '{ core = [0, "unlimited"] }', "{ nproc = 4096 }"]),
    "umask": st.sampled_from(['"027"', '"077"', '"0o22"']),
    "environment": st.sampled_from(['{ A = "1" }', '{ P = "${PORT}" }', '{ R = "${PYSUPER_REPLICA}" }']),
    "autostart": st.sampled_from(["true", "false"]),
    "no_new_privileges": st.sampled_from(["true", "false"]),
}


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[%s]" % ", ".join(toml_value(item) for item in value)
    return "{%s}" % ", ".join("%s = %s" % (json.dumps(key, ensure_ascii=False), toml_value(item))
                              for key, item in value.items())


KEY_LISTS = st.lists(st.sampled_from(sorted(config.PROGRAM_KEYS) + ["autorestart", "bogus"]), max_size=6,
                     unique=True)


@st.composite
def program_tables(draw, runnable=False):
    keys = draw(KEY_LISTS)
    lines = ["command = %s" % draw(PLAUSIBLE["command"])]
    for key in keys:
        if key == "command" or (runnable and key in ("critical", "user", "group", "groups", "watch", "directory")):
            continue
        plausible = PLAUSIBLE.get(key)
        if plausible is not None and (runnable or draw(st.booleans())):
            lines.append("%s = %s" % (key, draw(plausible)))
        elif not runnable:
            lines.append("%s = %s" % (key, toml_value(draw(raw_values()))))
    return "\n".join(lines) + "\n"


@st.composite
def config_texts(draw, runnable=False):
    names = draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=4, unique=True))
    parts = []
    if draw(st.booleans()):
        parts.append('[pysuper]\nshutdown_timeout = %s\n' % draw(st.sampled_from(["1", "0", "2.5", "-1", "1e300"])))
    for name in names:
        parts.append('[programs."%s"]\n%s' % (name, draw(program_tables(runnable=runnable))))
    return "\n".join(parts)
