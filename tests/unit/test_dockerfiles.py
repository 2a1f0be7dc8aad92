"""Every Dockerfile under docker/ passes the static checker (tests/dockerfile_checker.py), node-hello
keeps its contract, and each check rejects a bad example, so a check that cannot fail shows up here."""

import json
from pathlib import Path

import pytest
from dockerfile_checker import (TEXT_CHECKS, Dockerfile, check_apt, check_build_context, check_dependencies_before_code,
                                check_exec_form, check_node_version_arg, check_non_root_user, check_pip,
                                check_podman_compatible, check_pysuper_venv, problems)

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILES = sorted((ROOT / "docker").glob("*/Dockerfile"))
NODE_HELLO = ROOT / "docker" / "node-hello"


def test_dockerfiles_found():
    assert {"node-hello", "single"} <= {p.parent.name for p in DOCKERFILES}


@pytest.mark.parametrize("path", DOCKERFILES, ids=[p.parent.name for p in DOCKERFILES])
def test_dockerfile_passes_every_check(path):
    # Both images are built with the repository root as the context.
    assert problems(path, ROOT) == []


def test_node_hello_contract():
    final = Dockerfile((NODE_HELLO / "Dockerfile").read_text()).final
    assert [i.words() for i in final.of("CMD")] == [["pysuper"]]
    assert not final.of("ENTRYPOINT"), "the base image's entrypoint execs CMD, pysuper becomes PID 1"
    assert [i.args for i in final.of("EXPOSE")] == ["8080"]
    assert [i.args for i in final.of("USER")] == ["node"]
    health = final.of("HEALTHCHECK")
    assert len(health) == 1 and health[0].args.endswith('CMD ["pysuper", "ctl", "health"]')
    assert ["docker/node-hello/pysuper.toml", "/etc/pysuper/pysuper.toml"] in [i.words() for i in final.of("COPY")]
    assert [i.args for i in final.of("WORKDIR")] == ["${APP_DIR}"]
    assert "APP_DIR=/data/app" in " ".join(i.args for i in final.of("ENV"))
    assert any(i.args.startswith("email=") for i in final.of("ARG"))
    labels = " ".join(i.args for i in final.of("LABEL"))
    assert 'maintainer="${email}"' in labels and "rating=" in labels and "class=" in labels
    assert "install -d -o node -g node -m 0700 /run/pysuper" in " ".join(i.args for i in final.of("RUN"))


def test_node_hello_package_files_consistent():
    package = json.loads((NODE_HELLO / "package.json").read_text())
    lock = json.loads((NODE_HELLO / "package-lock.json").read_text())
    assert lock["name"] == package["name"] and lock["version"] == package["version"]
    assert lock["packages"][""].get("dependencies", {}) == package.get("dependencies", {})
    assert (NODE_HELLO / "index.js").is_file() and (NODE_HELLO / "worker.js").is_file()


def test_node_hello_config_is_valid():
    from pysuper import config
    cfg = config.load(str(NODE_HELLO / "pysuper.toml"))
    assert set(cfg.programs) == {"web", "worker"}
    web, worker = cfg.programs["web"], cfg.programs["worker"]
    assert web.critical and not worker.critical and tuple(web.command) == ("node", "index.js")
    # each program's stop fits in pysuper's budget, which fits docker stop's 10 s grace
    assert web.stop_timeout <= cfg.settings.shutdown_timeout < 10
    assert worker.stop_timeout <= cfg.settings.shutdown_timeout


GOOD = """\
# comment
ARG NODE_VERSION=20-bookworm-slim
FROM node:${NODE_VERSION} AS pysuper-build
RUN apt-get update \\
 # a comment inside a continuation
 && apt-get install -y --no-install-recommends python3 \\
 && apt-get clean \\
 && rm -rf /var/lib/apt/lists/*
ENV PIP_NO_CACHE_DIR=1
RUN python3 -m venv /opt/pysuper && /opt/pysuper/bin/pip install pysuper
FROM node:${NODE_VERSION}
COPY --from=pysuper-build /opt/pysuper /opt/pysuper
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev
COPY index.js ./
USER node
HEALTHCHECK --interval=5s CMD ["true"]
CMD ["pysuper"]
"""
BAD = {
    check_non_root_user: ['FROM node:20\nCMD ["node"]\n', 'FROM node:20\nUSER node\nFROM node:20\nCMD ["node"]\n',
                          'FROM node:20\nUSER 0\nCMD ["node"]\n'],
    check_exec_form: ["FROM node:20\nCMD pysuper\n", "FROM node:20\nENTRYPOINT pysuper --\n",
                      'FROM node:20\nHEALTHCHECK CMD pysuper ctl health\nCMD ["pysuper"]\n',
                      "FROM node:20\nRUN true\n"],
    check_dependencies_before_code: ["FROM node:20\nCOPY . /app\nRUN npm ci\n",
                                     "FROM node:20\nCOPY package.json index.js ./\nRUN npm ci\nCOPY worker.js ./\n",
                                     "FROM node:20\nRUN npm install\nCOPY index.js ./\n",
                                     "FROM node:20\nCOPY package*.json ./\nRUN npm ci\n"],
    check_apt: ["FROM node:20\nRUN apt-get update\nRUN apt-get install -y --no-install-recommends python3"
                " && rm -rf /var/lib/apt/lists/*\n",
                "FROM node:20\nRUN apt-get update && apt-get install -y --no-install-recommends python3\n",
                "FROM node:20\nRUN apt-get update \\\n && apt-get install -y python3 \\\n"
                " && apt-get clean && rm -rf /var/lib/apt/lists/*\n",
                "FROM node:20\nRUN apt-get install -y python3\n"],
    check_pip: ["FROM node:20\nRUN /opt/v/bin/pip install pysuper\n",
                "FROM node:20\nRUN pip install --no-cache-dir --break-system-packages pysuper\n",
                "FROM node:20\nRUN python3 -m venv /v && python3 -m pip install --no-cache-dir x\n"],
    check_podman_compatible: ["FROM node:20\nCOPY --link a b\n", "FROM node:20\nRUN <<EOF\necho hi\nEOF\n"],
    check_pysuper_venv: [GOOD.replace("/opt/pysuper/bin/pip", "pip"), GOOD.replace('CMD ["pysuper"]', 'CMD ["node"]'),
                         GOOD.replace("--from=pysuper-build", "--from=other")],
    check_node_version_arg: [GOOD.replace("ARG NODE_VERSION=20-bookworm-slim", "ARG NODE_VERSION"),
                             GOOD.replace("FROM node:${NODE_VERSION}\n", "FROM node:20\n")],
}


@pytest.mark.parametrize("check,text", [(c, t) for c, texts in BAD.items() for t in texts],
                         ids=["%s-%d" % (c.__name__, n) for c, texts in BAD.items() for n in range(len(texts))])
def test_check_rejects_bad_dockerfile(check, text):
    assert check(Dockerfile(text)), "%s accepted:\n%s" % (check.__name__, text)


@pytest.mark.parametrize("check", TEXT_CHECKS, ids=[c.__name__ for c in TEXT_CHECKS])
def test_check_accepts_good_dockerfile(check):
    assert check(Dockerfile(GOOD)) == []


def test_parser_joins_continuations_and_splits_stages():
    df = Dockerfile(GOOD)
    assert [s.name for s in df.stages] == ["pysuper-build", None]
    assert [i.keyword for i in df.global_args] == ["ARG"]
    run = df.stages[0].of("RUN")[0]
    assert run.line == 4 and run.args == ("apt-get update && apt-get install -y --no-install-recommends python3"
                                          " && apt-get clean && rm -rf /var/lib/apt/lists/*")
    assert df.final.of("CMD")[0].words() == ["pysuper"]


def test_build_context_check_rejects_missing_and_ignored_sources(tmp_path):
    path = tmp_path / "img" / "Dockerfile"
    path.parent.mkdir()
    path.write_text("FROM node:20\nCOPY here.js missing.js ./\n")
    (tmp_path / "here.js").write_text("")
    assert check_build_context(Dockerfile(path.read_text(), path), tmp_path) == [
        "%s: no .dockerignore next to it" % path,
        "line 2: COPY here.js missing.js ./: missing.js does not exist in the build context %s" % tmp_path]
    (path.parent / ".dockerignore").write_text("# allow-list\n*\n!here.js\n!missing.js\n")
    assert len(check_build_context(Dockerfile(path.read_text(), path), tmp_path)) == 1
    (path.parent / ".dockerignore").write_text("*\n!missing.js\n")
    assert "here.js is ignored by" in check_build_context(Dockerfile(path.read_text(), path), tmp_path)[0]
