"""Output under stress: a flood does not starve a quiet program; a full disk is reported and nothing is
lost that can be written later; a closed reader (EPIPE) is dropped silently."""

import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import PYSUPER, ROOT, Stream, py, pysuper_env, stop_process, toml_list

sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
import stress  # noqa: E402

# Prints COUNT numbered lines, then "done", then waits to be stopped.
NUMBERED = ("import sys, time\n"
            "for i in range(int(sys.argv[1])): sys.stdout.write('line %06d\\n' % i)\n"
            "sys.stdout.write('done\\n'); sys.stdout.flush()\n"
            "time.sleep(120)\n")


def config(tmp_path, count):
    path = tmp_path / "pysuper.toml"
    path.write_text("[pysuper]\ncontrol_socket = false\n[programs.w]\ncommand = %s\n"
                    % toml_list(py(NUMBERED) + [str(count)]))
    return path


@pytest.mark.slow
def test_flood_does_not_starve_a_quiet_program():
    """8 programs write as fast as they can, pysuper's stdout is read at 1 MB/s: the quiet program's
    lines get out within 2 s, nothing is lost or torn, memory stays bounded."""
    result = stress.flood(stress.Pysuper(list(PYSUPER)), seconds=6)
    assert result["lost"] == 0 and result["torn"] == 0, result
    assert result["quiet_lines"] == 5, result
    assert result["worst_delay"] < 2.0, result
    assert result["rss"] < 60, result  # MB; 8 stalled program streams hold at most ~2.5 MB of output


def test_regression_full_disk_is_reported_once_and_supervision_goes_on(tmp_path):
    path = config(tmp_path, 2000)
    with open("/dev/full", "wb") as full:
        proc = subprocess.Popen(PYSUPER + ["-c", str(path)], env=pysuper_env(), stdout=full,
                                stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    err = Stream(proc.stderr)
    try:
        err.wait_for(r"cannot write to stdout: No space left on device")
        err.wait_for(r"w: started with pid")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
        err.wait_closed()
    finally:
        stop_process(proc)
    assert err.count(r"cannot write to stdout") == 1, err.text()
    assert err.count(r"Traceback|internal error") == 0, err.text()


def _mount_tmpfs(directory):
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(directory)],
                            capture_output=True, text=True, timeout=10)
    if result.returncode != 0:
        pytest.skip("cannot mount a tmpfs here: %s" % result.stderr.strip())


@pytest.mark.slow
def test_full_disk_recovers_and_loses_nothing(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    _mount_tmpfs(disk)
    try:
        filler = disk / "filler"
        fd = os.open(str(filler), os.O_WRONLY | os.O_CREAT)
        try:
            while True:
                os.write(fd, b"\0" * 4096)
        except OSError:
            pass
        finally:
            os.close(fd)
        count = 3000  # about 40 KB of output, far more than fits
        out_path = disk / "out.log"
        with open(out_path, "wb") as out:
            proc = subprocess.Popen(PYSUPER + ["-c", str(config(tmp_path, count))], env=pysuper_env(),
                                    stdout=out, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        err = Stream(proc.stderr)
        try:
            err.wait_for(r"cannot write to stdout: No space left on device")
            err.wait_for(r"w: started with pid")
            filler.unlink()
            err.wait_for(r"stdout can be written again")
            deadline = time.monotonic() + 20
            while b"w       | done\n" not in out_path.read_bytes() and time.monotonic() < deadline:
                time.sleep(0.05)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(20) == 0
            err.wait_closed()
        finally:
            stop_process(proc)
        lines = out_path.read_bytes().decode().splitlines()
        assert lines[:count] == ["w       | line %06d" % i for i in range(count)]
        assert lines[count] == "w       | done"
        assert err.count(r"cannot write to stdout") == 1 and err.count(r"stdout can be written again") == 1
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True, timeout=10)


def test_closed_reader_is_dropped_silently_and_supervision_goes_on(tmp_path):
    path = config(tmp_path, 100000)
    read_end, write_end = os.pipe()
    proc = subprocess.Popen(PYSUPER + ["-c", str(path)], env=pysuper_env(), stdout=write_end,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    os.close(write_end)
    err = Stream(proc.stderr)
    try:
        err.wait_for(r"w: started with pid")
        os.close(read_end)  # nobody reads stdout any more: EPIPE
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
        err.wait_closed()
    finally:
        stop_process(proc)
    assert err.count(r"cannot write|Broken pipe|Traceback") == 0, err.text()
