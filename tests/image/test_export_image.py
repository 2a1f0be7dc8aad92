"""The Node.js sample exported and run on real engines: `podman-compose up -d` of the Compose
export (the server answers on the published port, the worker runs in the web's network namespace,
`podman-compose down` stops them cleanly) and `podman kube play` of the `--layout pod` export (the
server answers, `podman kube down` removes the Pod).

Needs what tests/image/test_node_hello_image.py needs (root, podman, the local base image) plus
podman-compose (the test extra); skipped with the reason otherwise, failed under
PYSUPER_IMAGE_TESTS=require. This podman (4.3) runs no health checks (no systemd timers), so
podman-compose starts the worker without waiting for `service_healthy`: the ordering is checked in
the generated file, and the health check's command is run once by hand with `podman healthcheck run`.
"""

import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid

import pytest
import yaml

from conftest import run_cli
from test_node_hello_image import BASE_20, DOCKER, ENV, REQUIRE, ROOT, build, free_port, podman, require

CONFIG = DOCKER / "node-hello" / "pysuper.toml"
TAG = "localhost/pysuper-test/node-hello:20"

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def image():
    require(BASE_20)
    build(DOCKER / "node-hello" / "Dockerfile", TAG, "email=ci@example.com")
    return TAG


def podman_compose():
    found = shutil.which("podman-compose", path=os.path.dirname(sys.executable)) or shutil.which("podman-compose")
    if found is None:
        problem = "podman-compose is not installed (pip install -e '.[test]')"
        if REQUIRE:
            pytest.fail(problem + " (PYSUPER_IMAGE_TESTS=require)")
        pytest.skip(problem)
    return found


def export(*args):
    # no PORT or APP_DIR from this machine: the defaults of the config apply, as in the image
    env = {key: value for key, value in ENV.items() if key not in ("PORT", "APP_DIR")}
    done = run_cli(["export"] + [str(a) for a in args] + ["-c", str(CONFIG), "--image", TAG], env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout


def get(url, timeout=30.0):
    """(status, body) of a GET, retried while the server starts."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)  # the server is in another network namespace; nothing to wait on


def wait_for_log(container, pattern, timeout=30.0):
    deadline = time.monotonic() + timeout
    while True:
        logs = podman("logs", container, check=False)
        text = (logs.stdout + logs.stderr).decode(errors="replace")
        if pattern in text:
            return text
        assert time.monotonic() < deadline, "no %r in the logs of %s:\n%s" % (pattern, container, text)
        time.sleep(0.2)  # podman logs has no event to wait on from here


def test_compose_up_serves_and_down_stops(image, tmp_path):
    tool = podman_compose()
    port = free_port()
    text = export("compose", "--publish", "127.0.0.1:%d:8080" % port)
    services = yaml.safe_load(text)["services"]
    # the ordering podman 4.3 cannot enforce, checked in the file
    assert services["worker"]["depends_on"] == {"web": {"condition": "service_healthy"}}
    assert services["worker"]["network_mode"] == "service:web"
    assert services["web"]["healthcheck"]["test"] == ["CMD", "pysuper", "probe", "http",
                                                      "http://127.0.0.1:${PORT:-8080}/"]
    path = tmp_path / "compose.yaml"
    path.write_text(text)
    project = "pysuper-export-%s" % uuid.uuid4().hex[:8]

    def compose(*args, timeout=180):
        return subprocess.run([tool, "-p", project, "-f", str(path)] + list(args), env=ENV, cwd=str(tmp_path),
                              capture_output=True, text=True, timeout=timeout)
    try:
        up = compose("up", "-d")
        assert up.returncode == 0, up.stdout + up.stderr
        status, body = get("http://127.0.0.1:%d/" % port)
        assert status == 200 and body.startswith("Hello World"), body
        web, worker = "%s_web_1" % project, "%s_worker_1" % project
        wait_for_log(worker, "heartbeat 1")
        # the worker shares the web's network namespace: 127.0.0.1:8080 is the web server
        reach = podman("exec", worker, "node", "-e",
                       "require('http').get('http://127.0.0.1:8080/', r => console.log(r.statusCode))")
        assert reach.stdout.decode().strip() == "200"
        if (ROOT / "pysuper" / "health.py").is_file():  # pysuper probe, inside the image, via the healthcheck
            check = podman("healthcheck", "run", web, check=False)
            assert check.returncode == 0, (check.stdout + check.stderr).decode(errors="replace")
        stop = compose("stop")
        assert stop.returncode == 0, stop.stdout + stop.stderr
        for name in (web, worker):  # both ended on SIGTERM by themselves (no SIGKILL: 137)
            assert podman("inspect", name, "--format", "{{.State.ExitCode}}").stdout.decode().strip() == "0"
        down = compose("down")
        assert down.returncode == 0, down.stdout + down.stderr
        left = podman("ps", "-a", "--filter", "label=io.podman.compose.project=%s" % project, "--format",
                      "{{.Names}}").stdout.decode().split()
        assert left == []
    finally:
        compose("down", "-t", "0", timeout=120)


def test_kube_play_pod_serves_and_down_removes(image, tmp_path):
    name = "pysuper-export-%s" % uuid.uuid4().hex[:8]
    text = export("kubernetes", "--layout", "pod", "--name", name)
    documents = [d for d in yaml.safe_load_all(text) if d]
    spec = documents[0]["spec"]["template"]["spec"]
    assert "initContainers" not in spec  # podman 4.3 cannot play those
    assert [c["name"] for c in spec["containers"]] == ["web", "worker"]
    path = tmp_path / "kube.yaml"
    path.write_text(text)
    try:
        play = podman("kube", "play", path, check=False, timeout=180)
        assert play.returncode == 0, (play.stdout + play.stderr).decode(errors="replace")
        pod = "%s-pod-0" % name
        infra = podman("pod", "inspect", pod, "--format", "{{.InfraContainerID}}").stdout.decode().strip()
        address = podman("inspect", infra, "--format",
                         "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}").stdout.decode().strip()
        assert address, "the Pod has no address"
        status, body = get("http://%s:8080/" % address)
        assert status == 200 and body.startswith("Hello World"), body
        wait_for_log("%s-worker" % pod, "heartbeat 1")
        down = podman("kube", "down", path, check=False, timeout=120)
        assert down.returncode == 0, (down.stdout + down.stderr).decode(errors="replace")
        assert podman("pod", "exists", pod, check=False).returncode != 0
    finally:
        podman("kube", "down", path, check=False, timeout=120)
