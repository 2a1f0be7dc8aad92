"""What osproc.spawn gives a config-mode program: supplementary groups, umask, no_new_privileges,
resource limits, and the environment a `user` implies (without overriding what the config sets)."""

import grp
import os
import pwd
import resource
import subprocess

import pytest

from pysuper import osproc

ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="changing users and groups needs root")


def run(argv, **options):
    """stdout of argv started by osproc.spawn with these options."""
    proc = osproc.spawn(argv, env=options.pop("env", dict(os.environ)), stdout=subprocess.PIPE, **options)
    out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0
    return out.decode()


def status(field, **options):
    text = run(["grep", "^%s:" % field, "/proc/self/status"], **options)
    return text.split(":", 1)[1].split()


def user_with_supplementary_groups():
    for entry in pwd.getpwall():
        groups = os.getgrouplist(entry.pw_name, entry.pw_gid)
        if entry.pw_uid != 0 and len(set(groups)) > 1:
            return entry, groups
    pytest.skip("no user on this machine has supplementary groups")


def test_limits_set_soft_and_hard():
    assert run(["sh", "-c", "ulimit -Sn; ulimit -Hn"], limits={"nofile": (100, 200)}) == "100\n200\n"
    assert run(["sh", "-c", "ulimit -Sc; ulimit -Hc"], limits={"core": 0}) == "0\n0\n"


def can_raise_limits():
    return osproc._has_capability(osproc.CAP_SYS_RESOURCE)


def test_limit_above_our_own_hard_limit_is_a_clear_error_without_cap_sys_resource():
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard == resource.RLIM_INFINITY:
        pytest.skip("no hard limit on open files here")
    if can_raise_limits():
        assert run(["sh", "-c", "ulimit -Hn"], limits={"nofile": (64, hard + 1)}) == "%d\n" % (hard + 1)
    else:
        with pytest.raises(osproc.SpawnError, match="nofile hard limit .* needs CAP_SYS_RESOURCE"):
            osproc.spawn(["true"], limits={"nofile": (64, hard + 1)})


def test_umask():
    assert run(["sh", "-c", "umask"], umask=0o027) == "0027\n"


def test_no_new_privileges():
    assert status("NoNewPrivs") == ["0"]
    assert status("NoNewPrivs", no_new_privileges=True) == ["1"]


@ROOT_ONLY
def test_user_gets_its_supplementary_groups():
    entry, groups = user_with_supplementary_groups()
    user = (entry.pw_uid, entry.pw_gid, entry.pw_name)
    assert sorted(set(int(g) for g in status("Groups", user=user))) == sorted(set(groups))
    assert status("Uid", user=user)[:2] == [str(entry.pw_uid)] * 2


@ROOT_ONLY
def test_groups_set_explicitly():
    names = [g.gr_name for g in grp.getgrall()][1:3]
    expected = sorted(grp.getgrnam(name).gr_gid for name in names)
    assert sorted(int(g) for g in status("Groups", groups=names)) == expected
    nobody = pwd.getpwnam("nobody")
    user = (nobody.pw_uid, nobody.pw_gid, "nobody")
    assert sorted(int(g) for g in status("Groups", user=user, groups=names)) == expected


@ROOT_ONLY
def test_limits_with_a_user_are_set_before_the_user_changes():
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard == resource.RLIM_INFINITY or not can_raise_limits():
        hard -= 1  # nobody may lower a limit but not raise it back: still set before the switch
        if hard < 64:
            pytest.skip("no usable hard limit on open files here")
    nobody = pwd.getpwnam("nobody")
    out = run(["sh", "-c", "id -u; ulimit -Hn"], user=(nobody.pw_uid, nobody.pw_gid, "nobody"),
              limits={"nofile": (64, hard + 1)})
    assert out == "%d\n%d\n" % (nobody.pw_uid, hard + 1)


@ROOT_ONLY
def test_regression_explicit_home_user_logname_are_not_overwritten_by_user():
    nobody = pwd.getpwnam("nobody")
    user = (nobody.pw_uid, nobody.pw_gid, "nobody")
    env = dict(os.environ, HOME="/srv/app", LOGNAME="app")
    out = run(["sh", "-c", 'echo "$HOME $USER $LOGNAME"'], user=user, env=env, keep_env=("HOME", "LOGNAME"))
    assert out == "/srv/app nobody app\n"
    out = run(["sh", "-c", 'echo "$HOME $USER $LOGNAME"'], user=user, env=env)
    assert out == "%s nobody nobody\n" % nobody.pw_dir


def test_unknown_group_is_a_spawn_error():
    with pytest.raises(osproc.SpawnError, match="no group 'no-such-group-xyz'"):
        osproc.spawn(["true"], groups=["no-such-group-xyz"])


def test_config_keys_reach_the_program(run_config):
    ps = run_config('''
[programs.show]
command = ["sh", "-c", "umask; ulimit -Sn; grep ^NoNewPrivs: /proc/self/status; echo \\"home=$HOME\\""]
restart = "never"
umask = "027"
no_new_privileges = true
limits = { nofile = [100, 200] }
environment = { HOME = "/srv/app" }
''')
    assert ps.wait() == 0, ps.err.text()
    assert [line.split("| ", 1)[1] for line in ps.out.lines if line.startswith("show")] == [
        "0027", "100", "NoNewPrivs:\t1", "home=/srv/app"]
