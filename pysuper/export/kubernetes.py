"""A pysuper config -> Kubernetes manifests (Deployments, Services, Jobs), as plain dicts in an Export.

`pod` layout: one Deployment whose Pod holds a container per program instance (they share
localhost as inside one container); oneshots are initContainers in dependency order.
`deployments` layout: a Deployment per program, a Service per program with a tcp/http check port,
a Job per oneshot.

${VAR} in command, args and env becomes $(VAR), with VAR read from the Secret `<name>-env`
(optional), so no value from the machine running export is written. Probes use the native
tcpSocket/httpGet/exec forms; Kubernetes expands no variables there, nor in workingDir, so those
take the ${VAR:-default} defaults, or are left out with a comment.
"""

import math
import os
import re
import signal
from urllib.parse import urlsplit

from pysuper.export import common
from pysuper.export.common import Export, ExportError, setting

NAME_LABEL = "app.kubernetes.io/name"
COMPONENT_LABEL = "app.kubernetes.io/component"
MANAGED = {"app.kubernetes.io/managed-by": "pysuper"}
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
LAYOUTS = ("pod", "deployments")
LOCAL_PROBE_NOTE = ("the kubelet probes the Pod's address, not 127.0.0.1: the program must listen on all "
                    "addresses (0.0.0.0)")
DEPLOYMENTS_WARNING = ("each program runs in its own Pod: programs that reached each other on 127.0.0.1 "
                       "must now use the Service names")


def dns_label(name: str) -> str:
    """A program name as a Kubernetes object/container name (RFC 1123 label)."""
    return re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")


def valid_name(name: str) -> bool:
    return len(name) <= 63 and bool(DNS_LABEL.match(name))


def seconds(value: float, minimum: int = 1) -> int:
    return max(minimum, int(math.ceil(value)))


def labels(name: str, component=None) -> dict:
    found = {NAME_LABEL: name}
    if component:
        found[COMPONENT_LABEL] = component
    found.update(MANAGED)
    return found


def read_passwd(path: str):
    """({user: (uid, gid)}, {group: gid}) from an image's /etc/passwd (and the `group` file beside it)."""
    users, groups = {}, {}
    for filename, target in ((path, users), (os.path.join(os.path.dirname(path) or ".", "group"), groups)):
        try:
            with open(filename, encoding="utf-8", errors="replace") as handle:
                lines = handle.read().splitlines()
        except OSError as exc:
            if target is users:
                raise ExportError("--image-passwd %s: cannot read it: %s" % (path, exc.strerror or exc)) from None
            continue
        for line in lines:
            fields = line.split(":")
            if line.startswith("#") or len(fields) < 4 or not fields[2].isdigit():
                continue
            if target is users and fields[3].isdigit():
                users[fields[0]] = (int(fields[2]), int(fields[3]))
            elif target is groups:
                groups[fields[0]] = int(fields[2])
    return users, groups


class _Secrets:
    """The keys the Secret `<name>-env` should hold, with the config's defaults as hints."""

    def __init__(self, secret):
        self.secret = secret
        self.keys = {}

    def note(self, name, default):
        if name not in self.keys or self.keys[name] is None:
            self.keys[name] = default

    def command(self):
        import shlex
        words = ["kubectl", "create", "secret", "generic", self.secret]
        for name, default in self.keys.items():
            words.append(shlex.quote("--from-literal=%s=%s" % (name, "..." if default is None else default)))
        return " ".join(words)


class _Builder:
    def __init__(self, config, image, name, passwd, export):
        self.config = config
        self.image = image
        self.name = name
        self.users, self.groups = passwd if passwd else ({}, {})
        self.passwd_given = passwd is not None
        self.export = export
        self.secrets = _Secrets("%s-env" % name)
        self.unresolved = []

    # ------------------------------------------------------------------ one container
    def container(self, unit, cname, notes, pod_groups=None, job=False):
        program = unit.program
        used = []

        def text(value):
            def variable(var, default):
                if var not in [u[0] for u in used]:
                    used.append((var, default))
                self.secrets.note(var, default)
                return "$(%s)" % var
            return common.translate(value, variable, lambda piece: piece.replace("$", "$$"))

        container = {"name": cname, "image": self.image, "command": [text(program.command[0])]}
        if len(program.command) > 1:
            container["args"] = [text(word) for word in program.command[1:]]
        if program.directory:
            directory = common.with_defaults(program.directory)
            if directory is None:
                notes.append("%s: Kubernetes expands no variables in workingDir; set it in the image"
                             % setting("directory", program.directory))
                self.export.warn("%s: directory = %s cannot be written (no default for its variables)"
                                 % (unit.name, common.show(program.directory)))
            else:
                if directory != program.directory:
                    notes.append("%s: written with its defaults (Kubernetes expands no variables in "
                                 "workingDir)" % setting("directory", program.directory))
                container["workingDir"] = directory
        ports = common.check_ports(program)
        if ports:
            container["ports"] = [{"containerPort": port, "protocol": "TCP"} for port in ports]
        env = self._environment(unit, program, text, used, notes)
        if env:
            container["env"] = env
        if program.env_file:
            secret = "%s-%s-env-file" % (self.name, cname)
            optional = not any(required for _, required in program.env_file)
            container["envFrom"] = [{"secretRef": {"name": secret, "optional": optional}}]
            paths = " ".join("--from-env-file=%s" % os.path.relpath(path) for path, _ in program.env_file)
            self.export.notes.append("kubectl create secret generic %s %s" % (secret, paths))
        security = self._security(unit, program, notes, pod_groups)
        if security:
            container["securityContext"] = security
        self._probes(container, unit, program, notes)
        if program.stop_signal != signal.SIGTERM:
            notes.append("stop_signal = \"%s\": Kubernetes stops containers with SIGTERM (or the image's "
                         "STOPSIGNAL); there is no portable setting" % common.stop_signal_name(program)[3:])
        if program.exit_codes != (0,):
            notes.append("%s: Kubernetes counts only exit code 0 as success"
                         % setting("exit_codes", program.exit_codes))
        if program.limits:
            notes.append("%s: Kubernetes has no per-container rlimits; set them in the runtime or the command"
                         % setting("limits", common.limits_as_written(program)))
        notes.extend(common.program_comments(program, restarts_managed=not job))
        return container

    def _environment(self, unit, program, text, used, notes):
        """Secret references first (for the ${VAR}s the container uses), then its own variables.
        KEY = "${KEY}" or "${KEY:-default}" is just the Secret's KEY."""
        own, from_secret = {}, []
        for key, value in program.environment.items():
            refs = common.variables_of(value)
            if len(refs) == 1 and refs[0][0] == key and value in ("${%s}" % key, "${%s:-%s}" % refs[0]):
                self.secrets.note(key, refs[0][1])
                from_secret.append(key)
                if refs[0][1] is not None:
                    notes.append("%s: from the Secret %s when it has %s, else the image's own %s (Kubernetes "
                                 "applies no default)" % (setting(key, value), self.secrets.secret, key, key))
                continue
            own[key] = value
        values = [{"name": key, "value": text(value)} for key, value in own.items()]
        if any(default is not None for _, default in used):
            notes.append("${VAR:-default}: Kubernetes applies no defaults; a key missing from the Secret %s "
                         "leaves $(VAR) as written" % self.secrets.secret)
        entries = []
        for var in from_secret + [name for name, _ in used if name not in from_secret]:
            if var in own:
                self.export.warn("%s: ${%s} would read the program's own %s=%s in Kubernetes, not the "
                                 "Secret" % (unit.name, var, var, common.show(own[var])))
                continue
            entries.append({"name": var, "valueFrom": {"secretKeyRef": {
                "name": self.secrets.secret, "key": var, "optional": True}}})
        return entries + values

    def _security(self, unit, program, notes, pod_groups):
        security = {}
        if program.user is not None:
            uid = gid = None
            if program.user.isdigit():
                uid = int(program.user)
                gid = next((g for u, g in self.users.values() if u == uid), None)
            elif program.user in self.users:
                uid, gid = self.users[program.user]
            else:
                self._unresolved(program.user, unit, notes, "user")
            if program.group is not None:
                if program.group.isdigit():
                    gid = int(program.group)
                elif program.group in self.groups:
                    gid = self.groups[program.group]
                else:
                    gid = None
                    self._unresolved(program.group, unit, notes, "group")
            if uid is not None:
                security["runAsUser"] = uid
            if gid is not None and uid is not None:
                security["runAsGroup"] = gid
        if program.groups:
            numeric = []
            for group in program.groups:
                group = str(group)
                if group.isdigit():
                    numeric.append(int(group))
                elif group in self.groups:
                    numeric.append(self.groups[group])
                else:
                    self._unresolved(group, unit, notes, "groups")
            if pod_groups is not None:
                pod_groups.extend(g for g in numeric if g not in pod_groups)
                if numeric:
                    notes.append("%s: supplementalGroups of the Pod (every container gets them)"
                                 % setting("groups", list(program.groups)))
        if program.no_new_privileges:
            security["allowPrivilegeEscalation"] = False
        return security

    def _unresolved(self, name, unit, notes, key):
        notes.append("%s %s: Kubernetes needs a numeric id; %s" % (
            key, common.show(name), "it is not in --image-passwd" if self.passwd_given else
            "pass --image-passwd FILE (the image's /etc/passwd) or write the id"))
        if name not in self.unresolved:
            self.unresolved.append(name)

    # ------------------------------------------------------------------ probes
    def _probes(self, container, unit, program, notes):
        local = False
        if program.ready is not None:
            probe, is_local = self._probe(program.ready, "ready", unit, notes)
            if probe is not None:
                local |= is_local
                container["readinessProbe"] = dict(probe, periodSeconds=seconds(program.ready.interval),
                                                   timeoutSeconds=seconds(program.ready.timeout))
                if program.ready.start_timeout is not None:
                    period = seconds(program.ready.interval)
                    container["startupProbe"] = dict(probe, periodSeconds=period,
                                                     timeoutSeconds=seconds(program.ready.timeout),
                                                     failureThreshold=seconds(program.ready.start_timeout / period))
        if program.health is not None:
            probe, is_local = self._probe(program.health, "health", unit, notes)
            if probe is not None:
                local |= is_local
                live = dict(probe, periodSeconds=seconds(program.health.interval),
                            timeoutSeconds=seconds(program.health.timeout),
                            failureThreshold=max(1, program.health.retries or 1))
                if "startupProbe" not in container and program.start_seconds > 0:
                    live["initialDelaySeconds"] = seconds(program.start_seconds)
                container["livenessProbe"] = live
        if local:
            notes.append(LOCAL_PROBE_NOTE)

    def _probe(self, check, key, unit, notes):
        """(native probe dict or None, whether it replaced 127.0.0.1 by the Pod's address)."""
        def lost(why):
            notes.append("%s = %s: %s" % (key, common.describe_check(check), why))
            self.export.warn("%s: %s = %s is not exported (%s)" % (unit.name, key, common.describe_check(check), why))
            return None, False
        if check.kind in ("log", "notify"):
            return lost("Kubernetes has no such probe")
        if check.kind == "exec":
            words = [common.with_defaults(word) for word in check.target]
            if None in words:
                return lost("Kubernetes expands no variables in probes")
            return {"exec": {"command": words}}, False
        if check.kind == "tcp":
            host = common.with_defaults(str(check.target[0]))
            if host is None:
                return lost("Kubernetes expands no variables in probes")
            probe = {"port": check.target[1]}
            if not common.is_local(host):
                probe = {"host": host, "port": check.target[1]}
            return {"tcpSocket": probe}, common.is_local(host)
        url = common.with_defaults(check.target)
        if url is None:
            return lost("Kubernetes expands no variables in probes")
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        probe = {"path": (parts.path or "/") + ("?" + parts.query if parts.query else ""), "port": port}
        if parts.scheme == "https":
            probe["scheme"] = "HTTPS"
        host = parts.hostname or "127.0.0.1"
        if not common.is_local(host):
            probe["host"] = host
        return {"httpGet": probe}, common.is_local(host)

    # ------------------------------------------------------------------ names
    def container_names(self, all_units):
        names = {}
        for unit in all_units:
            cname = dns_label(unit.name)
            if not valid_name(cname):
                raise ExportError("program %s: cannot make a Kubernetes name of it (%r)" % (unit.name, cname))
            if cname in names.values():
                clash = next(k for k, v in names.items() if v == cname)
                raise ExportError("programs %s and %s both become %r in Kubernetes: rename one"
                                  % (clash, unit.name, cname))
            names[unit.name] = cname
        return names


def build(config, image: str, name: str, layout: str = "pod", passwd=None) -> Export:
    """The manifests for config. passwd: read_passwd()'s answer, or None."""
    export = Export()
    builder = _Builder(config, image, name, passwd, export)
    for line in common.settings_comments(config):
        export.header.append(line)
    if layout == "pod":
        _pod(builder, export)
    else:
        _deployments(builder, export)
    if builder.unresolved:
        export.warn("runAsUser/runAsGroup need numeric ids: %s %s" % (
            ", ".join(builder.unresolved),
            "are not in --image-passwd" if builder.passwd_given else
            "need ids (pass --image-passwd FILE with the image's /etc/passwd, or write the ids in the config)"))
    if builder.secrets.keys:
        export.notes.append("the containers read %s from the Secret %s (optional); create it with:"
                            % (", ".join(builder.secrets.keys), builder.secrets.secret))
        export.notes.append(builder.secrets.command())
    return export


def _restart_note(program, oneshot_policy):
    if program.restart != "always" and not oneshot_policy:
        return ("%s: a Deployment restarts every container that ends (restartPolicy: Always)"
                % setting("restart", program.restart))
    return None


def _pod(builder, export):
    config, name = builder.config, builder.name
    all_units = common.units(config, per_instance=True)
    cnames = builder.container_names(all_units)
    by_name = {unit.name: unit for unit in all_units}
    init, containers, pod_groups, skipped = [], [], [], []
    comments = []
    grace = 0.0
    for unit in all_units:
        program = unit.program
        if not program.autostart:
            skipped.append("%s (%s)" % (unit.name, " ".join(program.command)))
            continue
        notes = []
        if cnames[unit.name] != unit.name:
            notes.append("program %s" % unit.name)
        container = builder.container(unit, cnames[unit.name], notes, pod_groups)
        note = _restart_note(program, unit.oneshot)
        if note:
            notes.append(note)
        if unit.oneshot and program.restart == "never":
            notes.append("restart = \"never\": the Pod retries a failed init container")
        for dependency, condition in unit.dependencies.items():
            if not by_name[dependency].oneshot:
                notes.append("depends_on %s = \"%s\": the containers of a Pod start together; it must retry "
                             "until %s answers" % (dependency, condition, dependency))
        grace = max(grace, program.stop_timeout)
        target = init if unit.oneshot else containers
        comments.append(("initContainers" if unit.oneshot else "containers", len(target), notes))
        target.append(container)
    if not containers:
        raise ExportError("no long-running program to put in the Pod (only oneshots or autostart = false)")
    spec = {"terminationGracePeriodSeconds": seconds(grace, 0)}
    if pod_groups:
        spec["securityContext"] = {"supplementalGroups": pod_groups}
    if init:
        spec["initContainers"] = init
    spec["containers"] = containers
    export.documents.append({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "labels": labels(name)},
        "spec": {"replicas": 1, "selector": {"matchLabels": {NAME_LABEL: name}},
                 "template": {"metadata": {"labels": labels(name)}, "spec": spec}}})
    for key, index, notes in comments:
        for line in notes:
            export.comment(0, ("spec", "template", "spec", key, index), line)
    for line in skipped:
        export.comment(0, ("spec", "template", "spec"), "autostart = false, not in the Pod: %s" % line)


def _deployments(builder, export):
    config, name = builder.config, builder.name
    all_units = common.units(config, per_instance=False)
    cnames = builder.container_names(all_units)
    services = {}
    for unit in all_units:
        program = unit.program
        cname = cnames[unit.name]
        full = "%s-%s" % (name, cname)
        if not valid_name(full):
            raise ExportError("%s is too long for a Kubernetes name (63 characters): pass a shorter --name" % full)
        notes = []
        if cname != unit.name:
            notes.append("program %s" % unit.name)
        container = builder.container(unit, cname, notes, job=unit.oneshot)
        for dependency, condition in unit.dependencies.items():
            what = "%s-%s %s" % (name, cnames[dependency], "has finished" if condition == "completed" else "answers")
            notes.append("depends_on %s = \"%s\": Kubernetes starts everything at once; it must retry until "
                         "%s" % (dependency, condition, what))
        meta = {"name": full, "labels": labels(name, cname)}
        pod_labels = {"metadata": {"labels": labels(name, cname)}}
        grace = seconds(program.stop_timeout, 0)
        index = len(export.documents)
        if unit.oneshot:
            policy = "OnFailure" if program.restart == "on-failure" else "Never"
            job = {"backoffLimit": program.start_retries if policy == "OnFailure" else 0}
            if unit.count > 1:
                job.update(completions=unit.count, parallelism=unit.count)
            job["template"] = dict(pod_labels, spec={"restartPolicy": policy, "terminationGracePeriodSeconds": grace,
                                                     "containers": [container]})
            export.documents.append({"apiVersion": "batch/v1", "kind": "Job", "metadata": meta, "spec": job})
            path = ("spec", "template", "spec", "containers", 0)
        else:
            replicas = unit.count if program.autostart else 0
            if not program.autostart:
                notes.append("autostart = false: replicas 0 (kubectl scale deployment %s --replicas=1)" % full)
            note = _restart_note(program, False)
            if note:
                notes.append(note)
            export.documents.append({
                "apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta,
                "spec": {"replicas": replicas,
                         "selector": {"matchLabels": {NAME_LABEL: name, COMPONENT_LABEL: cname}},
                         "template": dict(pod_labels, spec={"terminationGracePeriodSeconds": grace,
                                                            "containers": [container]})}})
            path = ("spec", "template", "spec", "containers", 0)
        for line in notes:
            export.comment(index, path, line)
        ports = common.check_ports(program)
        if ports and not unit.oneshot:
            services[unit.name] = full
            export.documents.append({
                "apiVersion": "v1", "kind": "Service", "metadata": {"name": full, "labels": labels(name, cname)},
                "spec": {"selector": {NAME_LABEL: name, COMPONENT_LABEL: cname},
                         "ports": [{"name": "port-%d" % port, "port": port, "targetPort": port, "protocol": "TCP"}
                                   for port in ports]}})
    users = common.localhost_users(all_units)
    if len(all_units) > 1:
        export.warn(DEPLOYMENTS_WARNING + (" (%s)" % ", ".join(services.values()) if services else "")
                    + (": %s reach%s others on 127.0.0.1" % (", ".join(users), "es" if len(users) == 1 else "")
                       if users else ""))
