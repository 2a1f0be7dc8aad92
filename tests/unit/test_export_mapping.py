"""The mapping of each key, checked on the plain dicts (before any YAML), so the meaning is tested
and not only the bytes: podman-compose's own check is lax."""

import pytest
import yaml

from pysuper import config as configmod
from pysuper.export import common, compose, kubernetes, yamltext


def load(text):
    return configmod.parse(text, "test.toml", environ={"SECRET": "must-not-appear"}, expand=False)


def services(text, **options):
    export = compose.build(load(text), "img:1", **options)
    return export.documents[0]["services"], export


def pod(text, **options):
    export = kubernetes.build(load(text), "img:1", "app", **options)
    return export.documents[0]["spec"]["template"]["spec"], export


def comments_of(export, *path):
    return " | ".join(line for (doc, where), lines in export.comments.items() for line in lines
                      if where[:len(path)] == path)


CHAIN = """
[programs.migrate]
command = "migrate up"
type = "oneshot"
[programs.db]
command = "db"
ready = { tcp = 5432, start_timeout = 30 }
depends_on = { migrate = "completed" }
[programs.web]
command = "web"
ready = { http = "http://127.0.0.1:8080/health" }
depends_on = { db = "ready" }
[programs.worker]
command = "worker"
depends_on = ["web"]
"""


def test_compose_conditions_and_order():
    found, _ = services(CHAIN)
    assert list(found) == ["migrate", "db", "web", "worker"]
    assert found["db"]["depends_on"] == {"migrate": {"condition": "service_completed_successfully"}}
    assert found["web"]["depends_on"] == {"db": {"condition": "service_healthy"}}
    assert found["worker"]["depends_on"] == {"web": {"condition": "service_started"}}
    assert found["migrate"]["restart"] == "no" and found["web"]["restart"] == "on-failure"
    assert found["db"]["healthcheck"] == {"test": ["CMD", "pysuper", "probe", "tcp", "127.0.0.1:5432"],
                                          "interval": "1s", "timeout": "1s", "start_period": "30s"}


def test_compose_shared_network_anchor_is_first_service_not_oneshot():
    found, export = services(CHAIN, publish=["8080:8080"])
    assert "network_mode" not in found["db"] and found["db"]["ports"] == ["8080:8080"]
    assert found["web"]["network_mode"] == found["worker"]["network_mode"] == "service:db"
    # migrate runs before db: it cannot join db's network
    assert "network_mode" not in found["migrate"]
    assert "own network namespace" in comments_of(export, "services", "migrate")
    for service in found.values():
        target = service.get("network_mode", "service:db").split(":", 1)[1]
        assert target in found
        for dependency in service.get("depends_on", {}):
            assert dependency in found


def test_compose_separate_publishes_on_the_check_port_owner():
    found, export = services(CHAIN, publish=["80:8080", "5432:5432", "9:9"], network="separate")
    assert found["web"]["ports"] == ["80:8080"]
    assert found["db"]["ports"] == ["5432:5432", "9:9"]
    assert not any("network_mode" in s for s in found.values())
    assert any("no program's tcp/http check uses port 9" in w for w in export.warnings)
    assert any("service names" in w for w in export.warnings)


def test_compose_separate_names_localhost_users():
    _, export = services(CHAIN + 'environment = { DB = "postgres://localhost:5432" }\n', network="separate")
    assert any(w.endswith("(worker reaches others on 127.0.0.1)") for w in export.warnings), export.warnings


def test_compose_variables_stay_and_dollars_double():
    found, export = services("""
[programs.a]
command = "run ${TOKEN} $$HOME $PATH ${PORT:-80}"
directory = "${DIR:-/srv}"
environment = { X = "${SECRET}", Y = "a$$b", Z = "${Q:-$$x}" }
""")
    service = found["a"]
    assert service["command"] == ["run", "${TOKEN}", "$$HOME", "$$PATH", "${PORT:-80}"]
    assert service["working_dir"] == "${DIR:-/srv}"
    # pysuper keeps a default as written: its $$ stays two dollars, four for Compose
    assert service["environment"] == {"X": "${SECRET}", "Y": "a$$b", "Z": "${Q:-$$$$x}"}
    assert "must-not-appear" not in repr(export.documents)
    assert "${TOKEN}" in export.notes[0]


def test_compose_replicas_with_and_without_index():
    found, _ = services("""
[programs.web]
command = "serve --port 80${PYSUPER_REPLICA}"
replicas = 2
[programs.job]
command = "work"
replicas = 3
depends_on = ["web"]
""")
    assert list(found) == ["web-0", "web-1", "job"]
    assert found["web-1"]["command"] == ["serve", "--port", "801"]
    assert found["web-1"]["environment"] == {"PYSUPER_REPLICA": "1"}
    assert "deploy" not in found["web-0"]
    assert found["job"]["deploy"] == {"replicas": 3} and "environment" not in found["job"]
    assert set(found["job"]["depends_on"]) == {"web-0", "web-1"}


def test_compose_users_signals_grace_and_no_equivalents():
    found, export = services("""
[programs.a]
command = "a"
user = "www"
group = "staff"
stop_signal = "QUIT"
stop_timeout = 2.5
critical = true
watch = ["src"]
autostart = false
limits = { nofile = [1024, 4096] }
no_new_privileges = true
""")
    service = found["a"]
    assert service["user"] == "www:staff"
    assert service["stop_signal"] == "SIGQUIT" and service["stop_grace_period"] == "2500ms"
    assert service["profiles"] == ["manual"]
    assert service["ulimits"] == {"nofile": {"soft": 1024, "hard": 4096}}
    assert service["security_opt"] == ["no-new-privileges:true"]
    text = comments_of(export, "services", "a")
    assert "critical = true" in text and "watch" in text and "autostart = false" in text


def test_compose_health_wins_over_ready():
    found, export = services("""
[programs.a]
command = "a"
ready = { tcp = 1, start_timeout = 9 }
health = { exec = "check -q", interval = 5, timeout = 3, retries = 7 }
""")
    assert found["a"]["healthcheck"] == {"test": ["CMD", "check", "-q"], "interval": "5s", "timeout": "3s",
                                         "retries": 7, "start_period": "9s"}
    assert "ready = { tcp" in comments_of(export, "services", "a")


def test_kubernetes_pod_layout():
    spec, export = pod(CHAIN.replace('command = "web"', 'command = "web ${SECRET} $$5"')
                       + 'stop_timeout = 25\nstop_signal = "INT"\n')
    assert [c["name"] for c in spec["initContainers"]] == ["migrate"]
    assert [c["name"] for c in spec["containers"]] == ["db", "web", "worker"]
    assert spec["terminationGracePeriodSeconds"] == 25
    db, web = spec["containers"][0], spec["containers"][1]
    assert db["readinessProbe"] == {"tcpSocket": {"port": 5432}, "periodSeconds": 1, "timeoutSeconds": 1}
    assert db["startupProbe"]["failureThreshold"] == 30
    assert web["readinessProbe"]["httpGet"] == {"path": "/health", "port": 8080}
    assert web["command"] == ["web"] and web["args"] == ["$(SECRET)", "$$5"]
    assert web["env"] == [{"name": "SECRET", "valueFrom": {"secretKeyRef": {
        "name": "app-env", "key": "SECRET", "optional": True}}}]
    assert export.notes[-1] == "kubectl create secret generic app-env --from-literal=SECRET=..."
    assert "must-not-appear" not in repr(export.documents)
    assert "SIGTERM" in comments_of(export, "spec", "template", "spec", "containers", 2)
    assert "start together" in comments_of(export, "spec", "template", "spec", "containers", 1)


def test_kubernetes_liveness_from_health():
    spec, _ = pod('[programs.a]\ncommand = "a"\nstart_seconds = 2\n'
                  'health = { http = "https://10.0.0.1:8443/h?x=1", interval = 10, timeout = 2, retries = 5 }\n')
    live = spec["containers"][0]["livenessProbe"]
    assert live == {"httpGet": {"path": "/h?x=1", "port": 8443, "scheme": "HTTPS", "host": "10.0.0.1"},
                    "periodSeconds": 10, "timeoutSeconds": 2, "failureThreshold": 5, "initialDelaySeconds": 2}


def test_kubernetes_users_need_numbers(tmp_path):
    text = '[programs.a]\ncommand = "a"\nuser = "app"\n[programs.b]\ncommand = "b"\nuser = 7\ngroup = 8\n'
    spec, export = pod(text)
    assert "securityContext" not in spec["containers"][0]
    assert spec["containers"][1]["securityContext"] == {"runAsUser": 7, "runAsGroup": 8}
    assert any("app" in w and "--image-passwd" in w for w in export.warnings)
    (tmp_path / "passwd").write_text("app:x:1000:1001::/home/app:/bin/sh\n")
    spec, export = pod(text, passwd=kubernetes.read_passwd(str(tmp_path / "passwd")))
    assert spec["containers"][0]["securityContext"] == {"runAsUser": 1000, "runAsGroup": 1001}
    assert not export.warnings


def test_kubernetes_deployments_layout():
    export = kubernetes.build(load(CHAIN), "img:1", "app", layout="deployments")
    kinds = [(d["kind"], d["metadata"]["name"]) for d in export.documents]
    assert kinds == [("Job", "app-migrate"), ("Deployment", "app-db"), ("Service", "app-db"),
                     ("Deployment", "app-web"), ("Service", "app-web"), ("Deployment", "app-worker")]
    service = export.documents[2]
    assert service["spec"]["ports"] == [{"name": "port-5432", "port": 5432, "targetPort": 5432, "protocol": "TCP"}]
    assert service["spec"]["selector"] == export.documents[1]["spec"]["selector"]["matchLabels"]
    assert export.documents[0]["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    assert any("Service names (app-db, app-web)" in w for w in export.warnings)


def test_kubernetes_replicas():
    text = '[programs.w]\ncommand = "w ${PYSUPER_REPLICA}"\nreplicas = 3\n[programs.q]\ncommand = "q"\nreplicas = 2\n'
    spec, _ = pod(text)
    assert [c["name"] for c in spec["containers"]] == ["w-0", "w-1", "w-2", "q-0", "q-1"]
    export = kubernetes.build(load(text), "img:1", "app", layout="deployments")
    replicas = {d["metadata"]["name"]: d["spec"]["replicas"] for d in export.documents}
    assert replicas == {"app-w-0": 1, "app-w-1": 1, "app-w-2": 1, "app-q": 2}


def test_kubernetes_name_clash_is_an_error():
    with pytest.raises(common.ExportError, match="both become 'a-b'"):
        pod('[programs.a_b]\ncommand = "x"\n[programs."a.b"]\ncommand = "y"\n')


def test_comments_sit_next_to_their_service():
    export = compose.build(load('[programs.a]\ncommand = "a"\ncritical = true\n[programs.b]\ncommand = "b"\n'),
                           "img:1")
    text = yamltext.render(export, ["head"], separators=False)
    lines = text.splitlines()
    assert lines[0] == "# head"
    index = lines.index("  a:")
    assert lines[index + 1].startswith("    # critical = true")
    assert yaml.safe_load(text) == export.documents[0]


def test_comment_markers_cannot_be_faked_by_values():
    export = compose.build(load('[programs.a]\ncommand = "pysuper-comment-0"\ncritical = true\n'), "img:1")
    text = yamltext.render(export, [], separators=False)
    assert yaml.safe_load(text) == export.documents[0]
    assert "# critical" in text


def test_missing_pyyaml_names_the_extra(monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "yaml", None)
    with pytest.raises(common.ExportError, match=r"pip install 'pysuper\[export\]'"):
        yamltext.render(common.Export(), [], separators=False)


def test_regression_unlimited_limits():
    """The config keeps "unlimited" as RLIM_INFINITY: Compose gets -1, comments say "unlimited"."""
    found, export = services('[programs.a]\ncommand = "a"\nlimits = { core = [0, "unlimited"], as = "unlimited" }\n')
    assert found["a"]["ulimits"] == {"core": {"soft": 0, "hard": -1}}
    assert 'limits.as = "unlimited"' in comments_of(export, "services", "a")
    spec, export = pod('[programs.a]\ncommand = "a"\nlimits = { core = [0, "unlimited"] }\n')
    assert 'core = [0, "unlimited"]' in comments_of(export, "spec")
