"""`pysuper export` on a dozen configs, compared byte for byte with golden files.

tests/golden/export/configs/NAME.toml -> tests/golden/export/NAME.TARGET.yaml (the output) and
NAME.TARGET.stderr (warnings and notes). Each Kubernetes golden is also checked with
kubernetes-validate in strict mode for the newest Kubernetes it knows; the Compose goldens are
checked by podman-compose in tests/integration/test_export_validate.py.

To rewrite the goldens after an intended change: PYSUPER_GOLDEN=write pytest tests/unit/test_export_golden.py
(then read the diff).
"""

import os

import pytest

from pysuper.export import command

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.join(os.path.dirname(HERE), "golden", "export")
CONFIGS = os.path.join(GOLDEN, "configs")
WRITE = os.environ.get("PYSUPER_GOLDEN") == "write"

# (config, golden suffix, export arguments)
CASES = [
    ("chain", "compose", ["compose", "--publish", "8080:8080"]),
    ("chain", "pod", ["kubernetes"]),
    ("chain", "deployments", ["kubernetes", "--layout", "deployments"]),
    ("oneshots", "compose", ["compose", "--publish", "8000:8000"]),
    ("oneshots", "pod", ["kubernetes", "--name", "tasks"]),
    ("oneshots", "deployments", ["kubernetes", "--layout", "deployments", "--name", "tasks"]),
    ("replicas", "compose", ["compose", "--publish", "8000:800", "--publish", "127.0.0.1:8001:801"]),
    ("replicas", "separate", ["compose", "--network", "separate", "--publish", "8001:801"]),
    ("replicas", "pod", ["kubernetes"]),
    ("replicas", "deployments", ["kubernetes", "--layout", "deployments"]),
    ("users", "compose", ["compose"]),
    ("users", "pod", ["kubernetes", "--image-passwd", "passwd"]),
    ("users", "deployments", ["kubernetes", "--layout", "deployments"]),
    ("signals", "compose", ["compose"]),
    ("signals", "pod", ["kubernetes"]),
    ("unsupported", "compose", ["compose"]),
    ("unsupported", "pod", ["kubernetes"]),
    ("unsupported", "deployments", ["kubernetes", "--layout", "deployments"]),
    ("env", "compose", ["compose", "--publish", "9000:9000"]),
    ("env", "pod", ["kubernetes"]),
    ("env", "deployments", ["kubernetes", "--layout", "deployments"]),
    ("exec-checks", "compose", ["compose", "--network", "separate", "--publish", "6379:6379",
                                "--publish", "9999:9999"]),
    ("exec-checks", "pod", ["kubernetes"]),
    ("started-list", "compose", ["compose"]),
    ("started-list", "deployments", ["kubernetes", "--layout", "deployments"]),
    ("names", "compose", ["compose"]),
    ("names", "pod", ["kubernetes"]),
    ("names", "deployments", ["kubernetes", "--layout", "deployments"]),
    ("envfile", "compose", ["compose"]),
    ("envfile", "pod", ["kubernetes"]),
    ("node-hello", "compose", ["compose", "--publish", "8080:8080"]),
    ("node-hello", "pod", ["kubernetes", "--name", "node-hello"]),
    ("node-hello", "deployments", ["kubernetes", "--layout", "deployments", "--name", "node-hello"]),
]
# configs that live elsewhere in the repository (relative to CONFIGS)
PATHS = {"node-hello": os.path.join("..", "..", "..", "..", "docker", "node-hello", "pysuper.toml")}
# values that are set while exporting and must never reach a file
SECRETS = {"API_TOKEN": "s3cr3t-token", "DB_PASSWORD": "hunter2-password", "PORT": "4711",
           "APP_DIR": "/home/someone/checkout", "REGION": "moon-1"}


def export(monkeypatch, capsys, config, args):
    """(stdout, stderr) of the export, run in the configs' directory (env_file paths are written
    relative to the current directory when the output goes to stdout)."""
    monkeypatch.chdir(CONFIGS)
    for key, value in SECRETS.items():
        monkeypatch.setenv(key, value)
    code = command.main([args[0], "-c", PATHS.get(config, config + ".toml"), "--image", "example/app:1.0"] + args[1:])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return captured.out, captured.err


@pytest.mark.parametrize("config,suffix,args", CASES, ids=["%s.%s" % (c, s) for c, s, _ in CASES])
def test_golden(monkeypatch, capsys, config, suffix, args):
    text, err = export(monkeypatch, capsys, config, args)
    stem = os.path.join(GOLDEN, "%s.%s" % (config, suffix))
    if WRITE:
        with open(stem + ".yaml", "w") as handle:
            handle.write(text)
        with open(stem + ".stderr", "w") as handle:
            handle.write(err)
    with open(stem + ".yaml") as handle:
        assert text == handle.read()
    with open(stem + ".stderr") as handle:
        assert err == handle.read()
    for value in SECRETS.values():
        assert value not in text and value not in err


def test_same_config_same_bytes(monkeypatch, capsys):
    first = export(monkeypatch, capsys, "env", ["kubernetes", "--layout", "deployments"])
    for key in SECRETS:
        monkeypatch.setenv(key, "other")
    second = export(monkeypatch, capsys, "env", ["kubernetes", "--layout", "deployments"])
    assert first == second


def kubernetes_goldens():
    return sorted(name for name in os.listdir(GOLDEN)
                  if name.endswith((".pod.yaml", ".deployments.yaml")))


@pytest.mark.parametrize("name", kubernetes_goldens())
def test_kubernetes_golden_is_valid(name):
    import kubernetes_validate
    import yaml
    from kubernetes_validate.utils import latest_version
    with open(os.path.join(GOLDEN, name)) as handle:
        documents = [doc for doc in yaml.safe_load_all(handle) if doc is not None]
    assert documents
    for document in documents:
        kubernetes_validate.validate(document, latest_version(), strict=True)
        labels = document["metadata"]["labels"]
        assert labels["app.kubernetes.io/managed-by"] == "pysuper" and labels["app.kubernetes.io/name"]


def test_every_golden_file_has_a_case():
    made = {"%s.%s.%s" % (c, s, ext) for c, s, _ in CASES for ext in ("yaml", "stderr")}
    present = {name for name in os.listdir(GOLDEN) if os.path.isfile(os.path.join(GOLDEN, name))}
    assert present <= made, present - made
    assert len({c for c, _, _ in CASES}) >= 12
