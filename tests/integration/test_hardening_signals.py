"""Inherited signal state and exec rules: pysuper started with signals blocked or ignored (by a shell,
nohup, a CI runner) still handles what it relies on; single-mode children get the inherited state
back, config-mode children a clean one; scripts without `#!` run through /bin/sh."""

import os
import signal
import subprocess

from conftest import PYSUPER, py, pysuper_env, stop_process, toml_list

# Blocks $BLOCK and ignores $IGNORE (comma-separated signal numbers), then execs argv, the way a
# shell or a CI runner hands its state on. SIGPIPE and SIGXFSZ go back to the default first (Python
# ignores them itself).
LAUNCHER = py("import os, signal, sys\n"
              "signal.signal(signal.SIGPIPE, signal.SIG_DFL)\n"
              "signal.signal(signal.SIGXFSZ, signal.SIG_DFL)\n"
              "numbers = lambda name: [int(x) for x in os.environ.get(name, '').split(',') if x]\n"
              "signal.pthread_sigmask(signal.SIG_BLOCK, numbers('BLOCK'))\n"
              "for s in numbers('IGNORE'): signal.signal(s, signal.SIG_IGN)\n"
              "os.execvp(sys.argv[1], sys.argv[1:])\n")

SHOW_STATE = ["grep", "-E", "^Sig(Blk|Ign)", "/proc/self/status"]  # grep shows its own state


def launched(block=(), ignore=()):
    return {"BLOCK": ",".join(str(int(s)) for s in block), "IGNORE": ",".join(str(int(s)) for s in ignore)}


def bits(*signums):
    return "%016x" % sum(1 << (int(s) - 1) for s in signums)


def state_of(lines, prefix=""):
    """{"SigBlk": hex, "SigIgn": hex} from SHOW_STATE's lines (after `prefix`)."""
    found = {}
    for line in lines:
        rest = line[len(prefix):] if line.startswith(prefix) else None
        if rest and rest.startswith(("SigBlk:", "SigIgn:")):
            key, value = rest.split(":", 1)
            found[key] = value.strip()
    return found


def test_single_mode_child_gets_the_inherited_mask_and_ignored_signals_back():
    env = pysuper_env(launched(block=[signal.SIGUSR1, signal.SIGTERM], ignore=[signal.SIGHUP, signal.SIGINT]))
    result = subprocess.run(LAUNCHER + PYSUPER + ["--"] + SHOW_STATE, env=env, capture_output=True, text=True,
                            timeout=20)
    assert result.returncode == 0, result.stderr
    assert state_of(result.stdout.splitlines()) == {"SigBlk": bits(signal.SIGUSR1, signal.SIGTERM),
                                                    "SigIgn": bits(signal.SIGHUP, signal.SIGINT)}


def test_nohup_keeps_sighup_ignored_in_the_child():
    result = subprocess.run(["nohup"] + PYSUPER + ["--"] + SHOW_STATE, env=pysuper_env(), capture_output=True,
                            text=True, timeout=20, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    assert state_of(result.stdout.splitlines())["SigIgn"] == bits(signal.SIGHUP)


def test_single_mode_with_sigchld_blocked_still_learns_that_the_child_exited():
    env = pysuper_env(launched(block=[signal.SIGCHLD, signal.SIGTERM]))
    result = subprocess.run(LAUNCHER + PYSUPER + ["--", "sh", "-c", "sleep 0.2; exit 3"], env=env, capture_output=True,
                            timeout=20)
    assert result.returncode == 3


def test_single_mode_forwards_sigterm_it_was_started_with_blocked():
    # The child unblocks SIGTERM itself (it inherited it blocked, as under tini); pysuper must see the
    # signal to forward it.
    child = py("import signal, sys, time\n"
               "signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGTERM])\n"
               "print('ready', flush=True)\n"
               "time.sleep(60)\n")
    env = pysuper_env(launched(block=[signal.SIGTERM, signal.SIGCHLD]))
    proc = subprocess.Popen(LAUNCHER + PYSUPER + ["--"] + child, env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "ready\n"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 128 + signal.SIGTERM
    finally:
        stop_process(proc)


def test_config_mode_programs_get_a_clean_signal_state(run_config):
    ps = run_config('[programs.show]\ncommand = %s\nrestart = "never"\n' % toml_list(SHOW_STATE),
                    prefix=LAUNCHER,
                    env=launched(block=[signal.SIGTERM, signal.SIGCHLD, signal.SIGALRM, signal.SIGUSR1],
                                 ignore=[signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGUSR2]))
    assert ps.wait() == 0, ps.err.text()
    assert state_of(ps.out.lines, "show    | ") == {"SigBlk": bits(), "SigIgn": bits()}


def test_config_mode_started_with_sigterm_and_sigchld_blocked_reaps_and_shuts_down(run_config):
    ps = run_config('''
[programs.quick]
command = ["sh", "-c", "exit 0"]
restart = "never"
[programs.long]
command = %s
''' % toml_list(py("import time; print('up', flush=True); time.sleep(60)")),
                    prefix=LAUNCHER, env=launched(block=[signal.SIGTERM, signal.SIGCHLD, signal.SIGINT]))
    ps.err.wait_for(r"quick: exited with code 0")
    ps.out.wait_for(r"long +\| up")
    ps.signal(signal.SIGTERM)
    assert ps.wait() == 0, ps.err.text()
    assert "received SIGTERM" in ps.err.text()


def test_script_without_shebang_runs_through_sh(tmp_path):
    script = tmp_path / "plain-script"
    script.write_text("echo \"from sh: $1\"\nexit 4\n")
    script.chmod(0o755)
    result = subprocess.run(PYSUPER + ["--", str(script), "arg"], env=pysuper_env(), capture_output=True,
                            text=True, timeout=20)
    assert result.returncode == 4, result.stderr
    assert result.stdout == "from sh: arg\n"
    # Found on PATH, as execvp() does.
    env = pysuper_env({"PATH": str(tmp_path) + os.pathsep + os.environ.get("PATH", os.defpath)})
    result = subprocess.run(PYSUPER + ["--", "plain-script", "x"], env=env, capture_output=True, text=True,
                            timeout=20)
    assert (result.returncode, result.stdout) == (4, "from sh: x\n")
