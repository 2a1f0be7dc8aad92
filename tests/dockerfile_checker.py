"""A static checker for the Dockerfiles under docker/: no engine needed.

`Dockerfile(text)` parses a Dockerfile (comments, line continuations, stages). Each `check_*`
function returns a list of problems (strings; empty when the property holds):

- TEXT_CHECKS look at the text only: a non-root USER, exec-form CMD/ENTRYPOINT/HEALTHCHECK,
  dependencies installed before the code is copied (code edits keep the dependency layer cached),
  apt-get update only together with install and cleanup, no pip caches and the venv's own pip,
  only syntax the podman/buildah of these machines can build, pysuper in its own venv copied alone
  into the final stage, and a NODE_VERSION build argument;
- check_build_context(path, context) looks at the files: an allow-list ignore file next to the
  Dockerfile that lets every COPY source through, and every COPY source present in the context.

`problems(path, context)` runs them all on one file.
"""

import glob
import json
import re
import shlex


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

    def sources(self):
        """The sources of a COPY or ADD: every word but the destination."""
        return self.words()[:-1]

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

    def of(self, *keywords):
        return [i for i in self.instructions if i.keyword in keywords]


class Dockerfile:
    def __init__(self, text, path="<string>"):
        self.path = path
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

    def local_copies(self):
        """COPY and ADD instructions that read the build context (not --from another stage)."""
        return [i for s in self.stages for i in s.of("COPY", "ADD") if "from" not in i.flags()]


def parse(text):
    """Instructions of a Dockerfile: comments dropped, backslash continuations joined."""
    instructions = []
    pending = None  # (start line, [parts])
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if stripped.startswith("#") or (pending is None and not stripped):
            continue  # comment lines, also inside a continued instruction
        if pending is None:
            pending = (number, [])
        continued = stripped.endswith("\\")
        pending[1].append(stripped[:-1].rstrip() if continued else stripped)
        if not continued:
            instructions.append(_instruction(*pending))
            pending = None
    if pending is not None:
        instructions.append(_instruction(*pending))
    return instructions


def _instruction(start, parts):
    keyword, _, args = " ".join(p for p in parts if p).partition(" ")
    return Instruction(keyword.upper(), args.strip(), start)


def shell_commands(run):
    """The simple commands of a shell-form RUN, split on && ; || and |."""
    return [c.strip() for c in re.split(r"&&|\|\||;|\|", run.args) if c.strip()]


# -- checks of the text -------------------------------------------------------------------------
def check_non_root_user(df):
    users = df.final.of("USER")
    if not users:
        return ["the final stage has no USER: the container would run as root"]
    if users[-1].args.split(":")[0].strip() in ("root", "0"):
        return ["%r: the final USER is root" % users[-1]]
    return []


def check_exec_form(df):
    problems = []
    for ins in df.final.of("CMD", "ENTRYPOINT"):
        if not ins.is_exec_form():
            problems.append("%r: use the exec form (a JSON array), or /bin/sh becomes PID 1 "
                            "and signals never reach the program" % ins)
    for ins in df.final.of("HEALTHCHECK"):
        cmd = re.split(r"\bCMD\b", ins.args, maxsplit=1)
        if len(cmd) == 2 and not Instruction("CMD", cmd[1].strip(), ins.line).is_exec_form():
            problems.append("%r: use the exec form for HEALTHCHECK CMD" % ins)
    if not df.final.of("CMD", "ENTRYPOINT"):
        problems.append("the final stage sets neither CMD nor ENTRYPOINT")
    return problems


def _is_dependency_install(ins):
    return ins.keyword == "RUN" and re.search(r"\bnpm (ci|install|i)\b|\byarn( install)?\b", ins.args)


def _copies_manifest_only(ins):
    sources = ins.sources()
    return bool(sources) and all(re.search(r"package(-lock)?\*?\.json$|package\*\.json$", s) for s in sources)


def _copies_code(ins):
    return ins.keyword in ("COPY", "ADD") and "from" not in ins.flags() and not _copies_manifest_only(ins)


def check_dependencies_before_code(df):
    """package*.json are copied and installed before the code is copied."""
    ins = df.final.instructions
    installs = [n for n, i in enumerate(ins) if _is_dependency_install(i)]
    if not installs:
        return []
    first = installs[0]
    problems = []
    if not any(i.keyword == "COPY" and "from" not in i.flags() and _copies_manifest_only(i) for i in ins[:first]):
        problems.append("%r: copy package.json and package-lock.json on their own before "
                        "installing dependencies" % ins[first])
    for i in ins[:first]:
        if _copies_code(i) and any(s in (".", "./") or s.endswith(".js") or s.endswith("/") for s in i.sources()):
            problems.append("%r copies code before the dependencies are installed (%r): "
                            "every code change would re-run the install" % (i, ins[first]))
    if not any(_copies_code(i) for i in ins[first:]):
        problems.append("no code is copied after the dependency install")
    return problems


def check_apt(df):
    problems = []
    for ins in (i for s in df.stages for i in s.of("RUN")):
        installs = re.search(r"\bapt(-get)? install\b", ins.args)
        if "apt-get update" not in ins.args and "apt update" not in ins.args:
            if installs:
                problems.append("%r: apt-get install without apt-get update in the same RUN "
                                "uses stale (or no) package lists" % ins)
            continue
        if not installs:
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
    no_cache_env = any(i.keyword == "ENV" and re.search(r"PIP_NO_CACHE_DIR=(1|true|yes|on)", i.args, re.I)
                       for s in df.stages for i in s.instructions)
    for ins in (i for s in df.stages for i in s.of("RUN")):
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


def check_pysuper_venv(df):
    """pysuper is installed into /opt/pysuper with its own pip, and the final stage copies the venv."""
    runs = " ".join(i.args for s in df.stages for i in s.of("RUN"))
    problems = []
    if not re.search(r"python3 -m venv /opt/pysuper\b", runs) or "/opt/pysuper/bin/pip install" not in runs:
        problems.append("pysuper is not installed into its own venv /opt/pysuper with its pip")
    if not any(i.args.split()[0] == "--from=pysuper-build" and "/opt/pysuper" in i.args
               for i in df.final.of("COPY")):
        problems.append("the final stage does not copy the venv from the pysuper-build stage")
    if "pysuper" not in " ".join(w for i in df.final.of("CMD", "ENTRYPOINT") for w in i.words()):
        problems.append("neither CMD nor ENTRYPOINT runs pysuper")
    return problems


def check_node_version_arg(df):
    """ARG NODE_VERSION (e.g. 20-bookworm-slim) before the first FROM picks every node image."""
    args = {i.args.split("=")[0]: i.args.partition("=")[2] for i in df.global_args if i.keyword == "ARG"}
    if not re.match(r"\d+-\w+(-slim)?$", args.get("NODE_VERSION", "")):
        return ["no ARG NODE_VERSION=<major>-<distro>[-slim] before the first FROM"]
    problems = []
    for stage in df.stages:
        image = stage.from_instruction.args.split()[0]
        if image.startswith("node") and image != "node:${NODE_VERSION}":
            problems.append("%r: use node:${NODE_VERSION}" % stage.from_instruction)
    if df.stages[0].from_instruction.args.split()[0] != "node:${NODE_VERSION}":
        problems.append("the first stage is not FROM node:${NODE_VERSION}")
    return problems


TEXT_CHECKS = [check_non_root_user, check_exec_form, check_dependencies_before_code, check_apt, check_pip,
               check_podman_compatible, check_pysuper_venv, check_node_version_arg]


# -- checks of the build context ----------------------------------------------------------------
def check_build_context(df, context):
    """An allow-list ignore file next to the Dockerfile ('*' first, then '!path' lines) that lets
    every COPY source through, and every COPY source present in `context`."""
    here = df.path.parent
    ignores = [p for p in (here / ".dockerignore", here / (df.path.name + ".dockerignore")) if p.is_file()]
    problems = [] if ignores else ["%s: no .dockerignore next to it" % df.path]
    for ignore in ignores:
        lines = [ln.strip() for ln in ignore.read_text().splitlines() if ln.strip() and not ln.strip().startswith("#")]
        if not lines or lines[0] != "*":
            problems.append("%s: start the allow-list with '*'" % ignore)
        allowed = [ln[1:].rstrip("/") for ln in lines if ln.startswith("!")]
        for ins in df.local_copies():
            for source in (s.rstrip("/") for s in ins.sources()):
                if ins.keyword == "COPY" and not any(source == a or source.startswith(a + "/") for a in allowed):
                    problems.append("%r: %s is ignored by %s" % (ins, source, ignore))
    for ins in df.local_copies():
        for source in ins.sources():
            if not glob.glob(str(context / source)):
                problems.append("%r: %s does not exist in the build context %s" % (ins, source, context))
    return problems


def problems(path, context):
    """Every problem of the Dockerfile at `path` (a pathlib.Path) built with `context`."""
    df = Dockerfile(path.read_text(), path)
    return [p for check in TEXT_CHECKS for p in check(df)] + check_build_context(df, context)
