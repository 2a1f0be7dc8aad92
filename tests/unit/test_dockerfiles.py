"""Static checks of every Dockerfile under docker/: no engine needed.

Each Dockerfile is parsed (comments, line continuations, stages) and checked for the
properties the images promise: a non-root USER, exec-form CMD/ENTRYPOINT, dependencies
installed before the code is copied (so code edits keep the dependency layer cached),
apt-get update only together with install and cleanup, no pip caches, pysuper in its own
venv, an ignore file for the build context, and only syntax the podman/buildah of these
machines can build. The checkers themselves are tested on bad snippets, so a check that
cannot fail would show up here.
"""

import glob
import json
import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
DOCKERFILES = sorted(DOCKER.glob("*/Dockerfile"))
NODE_HELLO = DOCKER / "node-hello"


# --------------------------------------------------------------------------- parser ---
class Instruction:
    def __init__(self, keyword, args, line):
        self.keyword = keyword  # upper case: RUN, COPY, ...
        self.args = args  # the rest of the instruction, continuations joined
        self.line = line  # 1-based line where it starts

    def __repr__(self):
        return "line %d: %s %s" % (self.line, self.keyword, self.args)

    def flags(self):
        """Leading --flag=value options (COPY --from=..., RUN --mount=...)."""
        found = {}
        for word in self.args.split():
            if not word.startswith("--"):
                break
            name, _, value = word[2:].partition("=")
            found[name] = value
        return found

    def words(self):
        """The arguments without leading --flags, shell-split (exec form: the JSON array)."""
        if self.is_exec_form():
            return json.loads(self.args)
        words = shlex.split(self.args, comments=False, posix=True)
        while words and words[0].startswith("--"):
            words.pop(0)
        return words

    def is_exec_form(self):
        text = self.args.strip()
        if not text.startswith("["):
            return False
        try:
            value = json.loads(text)
        except ValueError:
            return False
        return isinstance(value, list) and all(isinstance(v, str) for v in value)


class Stage:
    def __init__(self, from_instruction, name):
        self.from_instruction = from_instruction
        self.name = name
        self.instructions = []

    def of(self, keyword):
        return [i for i in self.instructions if i.keyword == keyword]


class Dockerfile:
    def __init__(self, text, path="<string>"):
        self.path = path
        self.text = text
        self.instructions = parse(text)
        self.global_args = []  # ARGs before the first FROM
        self.stages = []
        for ins in self.instructions:
            if ins.keyword == "FROM":
                words = ins.args.split()
                name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
                self.stages.append(Stage(ins, name))
            elif not self.stages:
                self.global_args.append(ins)
            else:
                self.stages[-1].instructions.append(ins)

    @property
    def final(self):
        return self.stages[-1]


def parse(text):
    """Instructions of a Dockerfile: comments dropped, backslash continuations joined."""
    instructions = []
    pending = None  # (start line, [parts])
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if pending is None and (not stripped or stripped.startswith("#")):
            continue
        if pending is not None and stripped.startswith("#"):
            continue  # comment lines inside a continued instruction are ignored
        if pending is None:
            pending = (number, [])
        continued = stripped.endswith("\\")
        pending[1].append(stripped[:-1].rstrip() if continued else stripped)
        if not continued:
            start, parts = pending
            joined = " ".join(p for p in parts if p)
            keyword, _, args = joined.partition(" ")
            instructions.append(Instruction(keyword.upper(), args.strip(), start))
            pending = None
    if pending is not None:
        start, parts = pending
        keyword, _, args = " ".join(parts).partition(" ")
        instructions.append(Instruction(keyword.upper(), args.strip(), start))
    return instructions


def shell_commands(run):
    """The simple commands of a shell-form RUN, split on && ; || and |."""
    return [c.strip() for c in re.split(r"&&|\|\||;|\|", run.args) if c.strip()]


# ------------------------------------------------------------------------- checkers ---
# Each returns a list of problems (strings); an empty list means the property holds.

def check_non_root_user(df):
    users = df.final.of("USER")
    if not users:
        return ["the final stage has no USER: the container would run as root"]
    user = users[-1].args.split(":")[0].strip()
    if user in ("root", "0"):
        return ["%r: the final USER is root" % users[-1]]
    return []


def check_exec_form(df):
    problems = []
    for ins in df.final.instructions:
        if ins.keyword in ("CMD", "ENTRYPOINT") and not ins.is_exec_form():
            problems.append("%r: use the exec form (a JSON array), or /bin/sh becomes PID 1 "
                            "and signals never reach the program" % ins)
        if ins.keyword == "HEALTHCHECK":
            cmd = re.split(r"\bCMD\b", ins.args, maxsplit=1)
            if len(cmd) == 2 and not Instruction("CMD", cmd[1].strip(), ins.line).is_exec_form():
                problems.append("%r: use the exec form for HEALTHCHECK CMD" % ins)
    if not df.final.of("CMD") and not df.final.of("ENTRYPOINT"):
        problems.append("the final stage sets neither CMD nor ENTRYPOINT")
    return problems


def _is_dependency_install(ins):
    return ins.keyword == "RUN" and re.search(r"\bnpm (ci|install|i)\b|\byarn( install)?\b", ins.args)


def _copies_manifest_only(ins):
    sources = ins.words()[:-1]
    return bool(sources) and all(re.search(r"package(-lock)?\*?\.json$|package\*\.json$", s) for s in sources)


def check_dependencies_before_code(df):
    """package*.json are copied and installed before the code is copied."""
    problems = []
    ins = df.final.instructions
    installs = [n for n, i in enumerate(ins) if _is_dependency_install(i)]
    if not installs:
        return []
    first_install = installs[0]
    manifest_copies = [n for n, i in enumerate(ins[:first_install])
                       if i.keyword == "COPY" and "from" not in i.flags() and _copies_manifest_only(i)]
    if not manifest_copies:
        problems.append("%r: copy package.json and package-lock.json on their own before "
                        "installing dependencies" % ins[first_install])
    for i in ins[:first_install]:
        if i.keyword in ("COPY", "ADD") and "from" not in i.flags() and not _copies_manifest_only(i):
            sources = i.words()[:-1]
            if any(s in (".", "./") or s.endswith(".js") or s.endswith("/") for s in sources):
                problems.append("%r copies code before the dependencies are installed (%r): "
                                "every code change would re-run the install" % (i, ins[first_install]))
    if not any(i.keyword in ("COPY", "ADD") and "from" not in i.flags() and not _copies_manifest_only(i)
               for i in ins[first_install:]):
        problems.append("no code is copied after the dependency install")
    return problems


def check_apt(df):
    problems = []
    for stage in df.stages:
        for ins in stage.of("RUN"):
            if "apt-get update" not in ins.args and "apt update" not in ins.args:
                if re.search(r"\bapt(-get)? install\b", ins.args):
                    problems.append("%r: apt-get install without apt-get update in the same RUN "
                                    "uses stale (or no) package lists" % ins)
                continue
            if not re.search(r"\bapt(-get)? install\b", ins.args):
                problems.append("%r: apt-get update in its own layer goes stale in the build "
                                "cache; run it in the same RUN as apt-get install" % ins)
            if "rm -rf /var/lib/apt/lists" not in ins.args:
                problems.append("%r: remove /var/lib/apt/lists/* in the same RUN" % ins)
            if "apt-get clean" not in ins.args and "/var/cache/apt" not in ins.args:
                problems.append("%r: apt-get clean in the same RUN (the package caches stay "
                                "in the layer otherwise)" % ins)
            if "--no-install-recommends" not in ins.args:
                problems.append("%r: apt-get install --no-install-recommends" % ins)
    return problems


def check_pip(df):
    problems = []
    no_cache_env = any(
        i.keyword == "ENV" and re.search(r"PIP_NO_CACHE_DIR=(1|true|yes|on)", i.args, re.I)
        for s in df.stages for i in s.instructions)
    for stage in df.stages:
        for ins in stage.of("RUN"):
            for cmd in shell_commands(ins):
                if not re.search(r"\bpip3?(\.\d+)? install\b|-m pip install\b", cmd):
                    continue
                if "--break-system-packages" in cmd:
                    problems.append("%r: --break-system-packages; install into a venv" % ins)
                if "--no-cache-dir" not in cmd and not no_cache_env:
                    problems.append("%r: pip install --no-cache-dir (or the layer keeps pip's cache)" % ins)
                exe = cmd.split()[0]
                if exe in ("pip", "pip3", "python3", "python") or exe.startswith("/usr/bin/"):
                    problems.append("%r: use the venv's own pip (e.g. /opt/pysuper/bin/pip)" % ins)
    return problems


def check_podman_compatible(df):
    """Syntax that podman 4.3 / buildah 1.28 cannot build."""
    problems = []
    for ins in df.instructions:
        if "<<" in ins.args and ins.keyword in ("RUN", "COPY"):
            problems.append("%r: heredocs do not build with buildah 1.28" % ins)
        if ins.keyword == "COPY" and "link" in ins.flags():
            problems.append("%r: COPY --link does not build with buildah 1.28" % ins)
    return problems


def check_ignore_file(path):
    here = path.parent
    names = [here / ".dockerignore", here / (path.name + ".dockerignore")]
    if not any(n.is_file() for n in names):
        return ["%s: no .dockerignore next to it" % path]
    return []


def check_copy_sources_exist(df, context):
    """Every COPY source (not --from) exists in the build context and is not ignored."""
    problems = []
    for stage in df.stages:
        for ins in stage.of("COPY") + stage.of("ADD"):
            if "from" in ins.flags():
                continue
            for source in ins.words()[:-1]:
                if not glob.glob(str(context / source)):
                    problems.append("%r: %s does not exist in the build context %s" % (ins, source, context))
    return problems


ALL_CHECKS = [check_non_root_user, check_exec_form, check_dependencies_before_code, check_apt,
              check_pip, check_podman_compatible]


# ---------------------------------------------------------------- every Dockerfile ---
def test_dockerfiles_found():
    names = [p.parent.name for p in DOCKERFILES]
    assert "node-hello" in names and "single" in names, names


@pytest.fixture(params=DOCKERFILES, ids=[p.parent.name for p in DOCKERFILES])
def dockerfile(request):
    return Dockerfile(request.param.read_text(), request.param)


@pytest.mark.parametrize("check", ALL_CHECKS, ids=[c.__name__ for c in ALL_CHECKS])
def test_property(dockerfile, check):
    assert check(dockerfile) == []


def test_ignore_file_present(dockerfile):
    assert check_ignore_file(dockerfile.path) == []


def test_copy_sources_exist_in_repo_root_context(dockerfile):
    # Both images are built with the repository root as the context.
    assert check_copy_sources_exist(dockerfile, ROOT) == []


def test_ignore_file_keeps_what_copy_needs(dockerfile):
    """The allow-list ignore file lets every COPY source through (and keeps .git out)."""
    for ignore in (dockerfile.path.parent / ".dockerignore",
                   dockerfile.path.parent / "Dockerfile.dockerignore"):
        lines = [ln.strip() for ln in ignore.read_text().splitlines()
                 if ln.strip() and not ln.lstrip().startswith("#")]
        assert lines[0] == "*", "%s: start the allow-list with '*'" % ignore
        allowed = [ln[1:].rstrip("/") for ln in lines if ln.startswith("!")]
        for stage in dockerfile.stages:
            for ins in stage.of("COPY"):
                if "from" in ins.flags():
                    continue
                for source in ins.words()[:-1]:
                    source = source.rstrip("/")
                    assert any(source == a or source.startswith(a + "/") for a in allowed), (
                        "%s: %r is ignored by %s" % (dockerfile.path, source, ignore))


def test_pysuper_in_its_own_venv(dockerfile):
    runs = " ".join(i.args for s in dockerfile.stages for i in s.of("RUN"))
    assert re.search(r"python3 -m venv /opt/pysuper\b", runs)
    assert "/opt/pysuper/bin/pip install" in runs
    assert any(i.args.split()[0] == "--from=pysuper-build" and "/opt/pysuper" in i.args
               for i in dockerfile.final.of("COPY")), "the final stage copies only the venv"
    assert "pysuper" in " ".join(
        w for i in dockerfile.final.of("CMD") + dockerfile.final.of("ENTRYPOINT") for w in i.words())


def test_node_version_arg_default_and_override(dockerfile):
    args = {i.args.split("=")[0]: i.args.partition("=")[2] for i in dockerfile.global_args
            if i.keyword == "ARG"}
    assert args.get("NODE_VERSION"), "ARG NODE_VERSION with a default before the first FROM"
    assert re.match(r"\d+-\w+(-slim)?$", args["NODE_VERSION"]), args["NODE_VERSION"]
    for stage in dockerfile.stages:
        image = stage.from_instruction.args.split()[0]
        assert image in ("node:${NODE_VERSION}", "base") or not image.startswith("node"), image
    assert dockerfile.stages[0].from_instruction.args.split()[0] == "node:${NODE_VERSION}"


# -------------------------------------------------------------- node-hello specifics ---
@pytest.fixture
def node_hello():
    path = NODE_HELLO / "Dockerfile"
    return Dockerfile(path.read_text(), path)


def test_node_hello_contract(node_hello):
    final = node_hello.final
    assert [i.words() for i in final.of("CMD")] == [["pysuper"]]
    assert not final.of("ENTRYPOINT"), "the base image's entrypoint execs CMD, pysuper becomes PID 1"
    assert [i.args for i in final.of("EXPOSE")] == ["8080"]
    assert [i.args for i in final.of("USER")] == ["node"]
    health = final.of("HEALTHCHECK")
    assert len(health) == 1 and health[0].args.endswith('CMD ["pysuper", "ctl", "health"]')
    copies = [i.words() for i in final.of("COPY")]
    assert ["docker/node-hello/pysuper.toml", "/etc/pysuper/pysuper.toml"] in copies
    assert [i.args for i in final.of("WORKDIR")] == ["${APP_DIR}"]
    env = " ".join(i.args for i in final.of("ENV"))
    assert "APP_DIR=/data/app" in env


def test_node_hello_labels(node_hello):
    assert any(i.args.startswith("email=") for i in node_hello.final.of("ARG"))
    labels = " ".join(i.args for i in node_hello.final.of("LABEL"))
    assert 'maintainer="${email}"' in labels
    assert "rating=" in labels and "class=" in labels


def test_node_hello_control_socket_dir_writable_by_node(node_hello):
    runs = " ".join(i.args for i in node_hello.final.of("RUN"))
    assert "install -d -o node -g node -m 0700 /run/pysuper" in runs


def test_node_hello_package_files_consistent():
    package = json.loads((NODE_HELLO / "package.json").read_text())
    lock = json.loads((NODE_HELLO / "package-lock.json").read_text())
    assert lock["name"] == package["name"] and lock["version"] == package["version"]
    assert lock["packages"][""].get("dependencies", {}) == package.get("dependencies", {})
    for script in ("index.js", "worker.js"):
        assert (NODE_HELLO / script).is_file()


def test_node_hello_config_is_valid():
    config = pytest.importorskip("pysuper.config")
    cfg = config.load(str(NODE_HELLO / "pysuper.toml"))
    assert set(cfg.programs) == {"web", "worker"}
    web, worker = cfg.programs["web"], cfg.programs["worker"]
    assert web.critical and not worker.critical
    assert tuple(web.command) == ("node", "index.js")
    # each program's stop fits in pysuper's budget, which fits docker stop's 10 s grace
    assert cfg.settings.shutdown_timeout < 10
    assert web.stop_timeout <= cfg.settings.shutdown_timeout
    assert worker.stop_timeout <= cfg.settings.shutdown_timeout


# ------------------------------------------------------ the checkers catch mistakes ---
BAD = {
    check_non_root_user: [
        "FROM node:20\nCMD [\"node\"]\n",
        "FROM node:20\nUSER node\nFROM node:20\nCMD [\"node\"]\n",
        "FROM node:20\nUSER 0\nCMD [\"node\"]\n",
    ],
    check_exec_form: [
        "FROM node:20\nCMD pysuper\n",
        "FROM node:20\nENTRYPOINT pysuper --\n",
        "FROM node:20\nHEALTHCHECK CMD pysuper ctl health\nCMD [\"pysuper\"]\n",
        "FROM node:20\nRUN true\n",
    ],
    check_dependencies_before_code: [
        "FROM node:20\nCOPY . /app\nRUN npm ci\n",
        "FROM node:20\nCOPY package.json index.js ./\nRUN npm ci\nCOPY worker.js ./\n",
        "FROM node:20\nRUN npm install\nCOPY index.js ./\n",
        "FROM node:20\nCOPY package*.json ./\nRUN npm ci\n",
    ],
    check_apt: [
        "FROM node:20\nRUN apt-get update\nRUN apt-get install -y --no-install-recommends python3"
        " && rm -rf /var/lib/apt/lists/*\n",
        "FROM node:20\nRUN apt-get update && apt-get install -y --no-install-recommends python3\n",
        "FROM node:20\nRUN apt-get update \\\n && apt-get install -y python3 \\\n"
        " && apt-get clean && rm -rf /var/lib/apt/lists/*\n",
        "FROM node:20\nRUN apt-get install -y python3\n",
    ],
    check_pip: [
        "FROM node:20\nRUN /opt/v/bin/pip install pysuper\n",
        "FROM node:20\nRUN pip install --no-cache-dir --break-system-packages pysuper\n",
        "FROM node:20\nRUN python3 -m venv /v && python3 -m pip install --no-cache-dir x\n",
    ],
    check_podman_compatible: [
        "FROM node:20\nCOPY --link a b\n",
        "FROM node:20\nRUN <<EOF\necho hi\nEOF\n",
    ],
}
GOOD = """\
# comment
ARG NODE_VERSION=20-bookworm-slim
FROM node:${NODE_VERSION} AS base
RUN apt-get update \\
 # a comment inside a continuation
 && apt-get install -y --no-install-recommends python3 \\
 && apt-get clean \\
 && rm -rf /var/lib/apt/lists/*
FROM base
ENV PIP_NO_CACHE_DIR=1
RUN python3 -m venv /opt/v && /opt/v/bin/pip install x
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev
COPY index.js ./
USER node
HEALTHCHECK --interval=5s CMD ["true"]
CMD ["node", "index.js"]
"""


@pytest.mark.parametrize(
    "check,text", [(c, t) for c, texts in BAD.items() for t in texts],
    ids=["%s-%d" % (c.__name__, n) for c, texts in BAD.items() for n in range(len(texts))])
def test_checker_rejects_bad_dockerfile(check, text):
    assert check(Dockerfile(text)), "%s accepted:\n%s" % (check.__name__, text)


@pytest.mark.parametrize("check", ALL_CHECKS, ids=[c.__name__ for c in ALL_CHECKS])
def test_checker_accepts_good_dockerfile(check):
    assert check(Dockerfile(GOOD)) == []


def test_parser_joins_continuations_and_splits_stages():
    df = Dockerfile(GOOD)
    assert [s.name for s in df.stages] == ["base", None]
    assert [i.keyword for i in df.global_args] == ["ARG"]
    run = df.stages[0].of("RUN")[0]
    assert run.line == 4
    assert run.args == ("apt-get update && apt-get install -y --no-install-recommends python3"
                        " && apt-get clean && rm -rf /var/lib/apt/lists/*")
    assert df.final.of("CMD")[0].words() == ["node", "index.js"]
