"""Build the images under docker/ with podman and check them from the outside, as a user
of `docker run` would: PID 1 is pysuper running as `node`, the HTTP server answers on the
published port, `podman logs` shows both programs' prefixed lines on the right streams,
a killed worker comes back, and `podman stop` (SIGTERM) ends the container in time with
exit code 0 and a last line from pysuper that says why.

Needs root, podman and the local base images (there is no registry on these machines):
    bash ../shared/container/make-base-image.sh
    NODE_IMAGE=18.13.0 bash ../shared/container/make-base-image.sh
`.ci/images.sh` does all of it. Without them every test here is skipped with the reason,
or fails when PYSUPER_IMAGE_TESTS=require (as in CI, where skipping would hide a problem).
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from conftest import Stream

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
PODMAN = shutil.which("podman")
REQUIRE = os.environ.get("PYSUPER_IMAGE_TESTS") == "require"
LAB_CONF = Path(os.environ.get("PYSUPER_LAB_STATE", "/tmp/pysuper-lab")) / "containers.conf"
BASE_20 = "node:20-bookworm-slim"
BASE_18 = "node:18.13.0"
STOP_TIMEOUT = 10  # podman's and docker's default grace before SIGKILL

pytestmark = pytest.mark.timeout(600)  # a cold build downloads Debian packages and wheels


def _environment():
    env = dict(os.environ)
    if "CONTAINERS_CONF" not in env and LAB_CONF.is_file():
        # podman needs this machine's ulimit/runtime settings (shared/container/lib.sh)
        env["CONTAINERS_CONF"] = str(LAB_CONF)
    return env


ENV = _environment()


def podman(*args, check=True, timeout=120, **kwargs):
    done = subprocess.run([PODMAN] + [str(a) for a in args], env=ENV, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=timeout, **kwargs)
    if check and done.returncode != 0:
        raise AssertionError("podman %s failed (%d):\n%s%s" % (
            " ".join(map(str, args)), done.returncode, done.stdout.decode(errors="replace")[-3000:],
            done.stderr.decode(errors="replace")[-3000:]))
    return done


def _problem(base):
    if PODMAN is None:
        return "podman is not installed"
    if os.geteuid() != 0:
        return "the image tests use rootful podman and need root"
    if "CONTAINERS_CONF" not in ENV:
        return ("%s is missing: run `bash ../shared/container/make-base-image.sh` "
                "(it writes podman's settings for this machine)" % LAB_CONF)
    if podman("image", "exists", base, check=False, timeout=30).returncode != 0:
        hint = "NODE_IMAGE=18.13.0 " if base == BASE_18 else ""
        return ("base image %s is not available (no registry here): run "
                "`%sbash ../shared/container/make-base-image.sh`" % (base, hint))
    return None


def require(base):
    problem = _problem(base)
    if problem:
        if REQUIRE:
            pytest.fail(problem + " (PYSUPER_IMAGE_TESTS=require)")
        pytest.skip(problem)


def build(dockerfile, tag, *build_args):
    """podman build with the repository root as context; returns the seconds it took."""
    old = podman("image", "inspect", tag, "--format", "{{.Id}}", check=False).stdout.strip()
    args = []
    for arg in build_args:
        args += ["--build-arg", arg]
    started = time.monotonic()
    podman("build", "--pull=never", "--network=host", "--format=docker",
           "--ignorefile", dockerfile.parent / "Dockerfile.dockerignore",
           "-f", dockerfile, "-t", tag, *args, ROOT, timeout=540)
    took = time.monotonic() - started
    new = podman("image", "inspect", tag, "--format", "{{.Id}}").stdout.strip()
    if old and old != new:  # the image this build replaced, unless something still uses it
        podman("rmi", old.decode(), check=False)
    return took


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_get(port, path="/", timeout=20.0):
    """GET from the host through the published port; retries while the app starts."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=5) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode()
        except (OSError, ConnectionError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)  # nothing to wait on from outside the container's network


class Container:
    """A detached container with the port published on 127.0.0.1 and its logs followed."""

    def __init__(self, image, *run_args):
        self.name = "pysuper-test-%s" % uuid.uuid4().hex[:10]
        self.port = free_port()
        podman("run", "-d", "--name", self.name, "-p", "127.0.0.1:%d:8080" % self.port,
               *run_args, image)
        self.logs = subprocess.Popen([PODMAN, "logs", "-f", self.name], env=ENV,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.out = Stream(self.logs.stdout, "stdout")
        self.err = Stream(self.logs.stderr, "stderr")

    def top(self, *fields):
        """Rows of `podman top` (process table seen from the outside)."""
        text = podman("top", self.name, *fields).stdout.decode()
        rows = [line.split(None, len(fields) - 1) for line in text.splitlines()[1:] if line.strip()]
        return [dict(zip(fields, row)) for row in rows]

    def inspect(self, template):
        return podman("inspect", self.name, "--format", template).stdout.decode().strip()

    def stop(self):
        """`podman stop`: SIGTERM to PID 1, SIGKILL after STOP_TIMEOUT; (exit code, seconds)."""
        started = time.monotonic()
        podman("stop", "-t", STOP_TIMEOUT, self.name, timeout=STOP_TIMEOUT + 30)
        took = time.monotonic() - started
        code = int(podman("wait", self.name, timeout=30).stdout.decode().strip())
        self.logs.wait(30)
        return code, took

    def remove(self):
        podman("rm", "-f", "-t", "0", self.name, check=False)
        if self.logs.poll() is None:
            self.logs.kill()
            self.logs.wait(10)
        self.out.join()
        self.err.join()


# -------------------------------------------------------------------- node-hello ---
@pytest.fixture(scope="module")
def node_hello_image():
    require(BASE_20)
    tag = "localhost/pysuper-test/node-hello:20"
    build(DOCKER / "node-hello" / "Dockerfile", tag, "email=ci@example.com")
    return tag


@pytest.fixture
def hello(node_hello_image):
    container = Container(node_hello_image, "-e", "HEARTBEAT_MS=500")
    yield container
    container.remove()


def wait_ready(c):
    c.out.wait_for(r"^web\s*\| listening on http://0\.0\.0\.0:8080")
    c.out.wait_for(r"^worker\s*\| heartbeat 1$")
    c.err.wait_for(r"^worker\s*\| worker started \(pid \d+\)")


def test_image_metadata(node_hello_image):
    info = json.loads(podman("image", "inspect", node_hello_image).stdout)[0]
    config = info["Config"]
    assert config["User"] == "node"
    assert config["Cmd"] == ["pysuper"]
    assert "8080/tcp" in config["ExposedPorts"]
    assert config["Labels"]["maintainer"] == "ci@example.com"
    assert config["Labels"]["rating"] and config["Labels"]["class"]
    health = info.get("Healthcheck") or config.get("Healthcheck")  # podman puts it at the top
    assert health["Test"] == ["CMD", "pysuper", "ctl", "health"]
    assert "APP_DIR=/data/app" in config["Env"]
    assert config["WorkingDir"] == "/data/app"
    # what the Dockerfile adds on top of the base image stays small: no apt lists or
    # caches, no pip cache, no build tools
    base = json.loads(podman("image", "inspect", BASE_20).stdout)[0]
    added = (info["Size"] - base["Size"]) / 1e6
    assert added < 30, "the image adds %.0f MB to %s" % (added, BASE_20)


def test_image_files(node_hello_image):
    script = ("set -e; "
              "test -z \"$(ls -A /var/lib/apt/lists | grep -v -e '^lock$' -e '^partial$' || true)\"; "
              "test ! -e /var/cache/apt/pkgcache.bin; "
              "test ! -e /root/.cache/pip; test ! -e /src; "
              "test -x /opt/pysuper/bin/python; readlink /usr/local/bin/pysuper; "
              "stat -c '%U %a' /run/pysuper; stat -c '%U' /data/app/index.js; "
              "test -f /etc/pysuper/pysuper.toml; pysuper check")
    done = podman("run", "--rm", "--network=none", "--user", "root", "--entrypoint", "sh",
                  node_hello_image, "-c", script)
    out = done.stdout.decode()
    assert "/opt/pysuper/bin/pysuper" in out
    assert "node 700" in out
    assert "root" in out.splitlines()[2]  # the app's files are not writable by the app


def test_pid1_is_pysuper_as_node(hello):
    wait_ready(hello)
    rows = hello.top("pid", "user", "args")
    pid1 = [r for r in rows if r["pid"] == "1"]
    assert pid1 and "pysuper" in pid1[0]["args"], rows
    assert {r["user"] for r in rows} == {"node"}, rows
    args = " ".join(r["args"] for r in rows)
    assert "index.js" in args and "worker.js" in args
    # and from the host's side: the container's PID 1 has uid 1000
    host_pid = int(hello.inspect("{{.State.Pid}}"))
    with open("/proc/%d/status" % host_pid) as f:
        uids = [line.split()[1:] for line in f if line.startswith("Uid:")][0]
    assert set(uids) == {"1000"}, uids


def test_http_and_prefixed_logs_on_the_right_streams(hello):
    wait_ready(hello)
    status, body = http_get(hello.port)
    assert status == 200 and body.startswith("Hello World. Greetings from ")
    assert http_get(hello.port, "/nope")[0] == 404
    hello.out.wait_for(r"^web\s*\| GET / 200$")
    hello.err.wait_for(r"^web\s*\| GET /nope 404 not found$")
    hello.out.wait_for(r"^worker\s*\| heartbeat 2$")
    for line in list(hello.out.lines):
        assert re.match(r"^(web|worker)\s*\| ", line), line
    for line in list(hello.err.lines):
        assert re.match(r"^(web|worker|pysuper)\b", line), line
    assert not [ln for ln in hello.out.lines if "worker started" in ln or "404" in ln]
    assert not [ln for ln in hello.err.lines if re.match(r"^worker\s*\| heartbeat", ln)]


def test_killed_worker_is_restarted(hello):
    wait_ready(hello)
    rows = hello.top("pid", "hpid", "args")
    worker = [r for r in rows if "worker.js" in r["args"]]
    assert len(worker) == 1, rows
    mark_err, mark_out = len(hello.err.lines), len(hello.out.lines)
    os.kill(int(worker[0]["hpid"]), signal.SIGKILL)  # from outside the container
    hello.err.wait_for(r"^pysuper\b.*\bworker\b.*SIGKILL", start=mark_err)
    _, started = hello.err.search(r"^worker\s*\| worker started \(pid (\d+)\)", start=mark_err)
    assert started.group(1) != worker[0]["pid"]
    hello.out.wait_for(r"^worker\s*\| heartbeat 1$", start=mark_out)
    assert [r["pid"] for r in hello.top("pid", "args") if "worker.js" in r["args"]] == [started.group(1)]
    assert http_get(hello.port)[0] == 200


def test_podman_stop_exits_0_in_time(hello):
    wait_ready(hello)
    code, took = hello.stop()
    err = hello.err.join()
    assert code == 0, "exit code %d; stderr:\n%s" % (code, "\n".join(err))
    assert took < STOP_TIMEOUT - 0.5, "podman stop took %.1f s (SIGKILL at %d s)" % (took, STOP_TIMEOUT)
    assert any(re.match(r"^web\s*\| SIGTERM received, closing the server$", ln) for ln in err), err
    assert any(re.match(r"^worker\s*\| SIGTERM received after \d+ heartbeats", ln) for ln in err), err
    last = [ln for ln in err if ln.strip()][-1]
    assert last.startswith("pysuper") and "SIGTERM" in last and re.search(r"\b0\b", last), last


def test_healthcheck_runs_pysuper_ctl_health(hello):
    if not (ROOT / "pysuper" / "ctl.py").is_file():
        pytest.skip("`pysuper ctl` is not part of this source tree (pysuper/ctl.py)")
    wait_ready(hello)
    # unhealthy while the programs are STARTING (start_seconds = 1), then healthy
    deadline = time.monotonic() + 10
    while True:
        probe = podman("exec", hello.name, "pysuper", "ctl", "health", check=False)
        text = (probe.stdout + probe.stderr).decode(errors="replace")
        if probe.returncode == 0 or time.monotonic() > deadline:
            break
        assert probe.returncode == 1 and "STARTING" in text, text
        time.sleep(0.2)  # polling a state from outside; there is no event to wait on
    assert probe.returncode == 0, text
    # the image's HEALTHCHECK (kept by --format=docker) runs the same command
    check = podman("healthcheck", "run", hello.name, check=False)
    assert check.returncode == 0, (check.stdout + check.stderr).decode(errors="replace")


# ------------------------------------------------------- the original sample's base ---
def test_node_18_13_0_base_python_3_9():
    require(BASE_18)
    tag = "localhost/pysuper-test/node-hello:18.13.0"
    build(DOCKER / "node-hello" / "Dockerfile", tag, "NODE_VERSION=18.13.0")
    versions = podman("run", "--rm", "--network=none", "--entrypoint", "sh", tag, "-c",
                      "node --version; /opt/pysuper/bin/python --version").stdout.decode()
    assert versions.split() == ["v18.13.0", "Python", "3.9.2"], versions
    container = Container(tag, "-e", "HEARTBEAT_MS=500")
    try:
        wait_ready(container)
        pid1 = [r for r in container.top("pid", "user", "args") if r["pid"] == "1"]
        assert pid1 and "pysuper" in pid1[0]["args"] and pid1[0]["user"] == "node"
        assert http_get(container.port)[0] == 200
        code, took = container.stop()
        assert code == 0, "\n".join(container.err.join())
        assert took < STOP_TIMEOUT - 0.5
    finally:
        container.remove()


# ------------------------------------------------------------ single-program mode ---
def test_single_program_entrypoint():
    require(BASE_20)
    tag = "localhost/pysuper-test/single:20"
    build(DOCKER / "single" / "Dockerfile", tag)
    container = Container(tag)
    try:
        # no prefixes: the child writes to the container's stdout itself
        container.out.wait_for(r"^listening on http://0\.0\.0\.0:8080 \(pid \d+\)$")
        rows = container.top("pid", "user", "args")
        pid1 = [r for r in rows if r["pid"] == "1"]
        assert pid1 and "pysuper -- node index.js" in pid1[0]["args"], rows
        assert {r["user"] for r in rows} == {"node"}, rows
        status, body = http_get(container.port)
        assert status == 200 and "Hello World" in body
        container.out.wait_for(r"^GET / 200$")
        code, took = container.stop()
        # the child exits 0 on the forwarded SIGTERM, and pysuper exits with its code
        assert code == 0, "\n".join(container.err.join())
        assert took < STOP_TIMEOUT - 0.5
        container.err.wait_for(r"^SIGTERM received, closing the server$")
    finally:
        container.remove()
