"""Log integrity through real pipes: nothing lost, nothing mixed, whatever the programs do."""

import json
import os
import re
import signal
import subprocess

from conftest import DEADLINE, PYSUPER, pysuper_env, py, toml_list

WRITER = """
import os, sys
name, count, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
pad = 'x' * max(0, size - 30)
out = []
for i in range(count):
    out.append('%s %08d %s\\n' % (name, i, pad))
    if len(out) == 500:
        sys.stdout.write(''.join(out)); out = []
sys.stdout.write(''.join(out))
"""


def run_to_file(tmp_path, text, timeout=120):
    """Run a config with pysuper's stdout and stderr going to files; return (code, out, err)."""
    path = tmp_path / "pysuper.toml"
    path.write_text(text)
    with open(tmp_path / "out", "wb") as out, open(tmp_path / "err", "wb") as err:
        code = subprocess.run(PYSUPER + ["-c", str(path)], env=pysuper_env(), stdout=out, stderr=err,
                              stdin=subprocess.DEVNULL, timeout=timeout).returncode
    return code, (tmp_path / "out").read_bytes(), (tmp_path / "err").read_bytes()


def check_sequences(lines, prefix, name, count):
    seen = [line for line in lines if line.startswith(prefix)]
    numbers = [int(line[len(prefix):].split()[1]) for line in seen]
    assert numbers == list(range(count)), "lines of %s lost, reordered or mixed" % name


def test_100000_lines_from_each_of_two_programs(tmp_path):
    writer = toml_list(py(WRITER))[:-1]
    code, out, _ = run_to_file(tmp_path, '''
[programs.alpha]
command = %s, "alpha", "100000", "100"]
restart = "never"
[programs.beta]
command = %s, "beta", "100000", "100"]
restart = "never"
''' % (writer, writer))
    assert code == 0
    lines = out.decode().split("\n")
    assert lines[-1] == ""
    lines = lines[:-1]
    assert len(lines) == 200000
    whole = re.compile(r"^(alpha|beta) +\| \1 \d{8} x{70}$")
    for line in lines:
        assert whole.match(line), line
    check_sequences(lines, "alpha   | ", "alpha", 100000)
    check_sequences(lines, "beta    | ", "beta", 100000)


def test_blocks_larger_than_pipe_buf_are_not_torn(tmp_path):
    # 20 KiB lines written with single write() calls from two programs at once.
    writer = toml_list(py(WRITER))[:-1]
    code, out, _ = run_to_file(tmp_path, '''
[programs.a]
command = %s, "a", "2000", "20000"]
restart = "never"
[programs.b]
command = %s, "b", "2000", "20000"]
restart = "never"
''' % (writer, writer))
    assert code == 0
    lines = out.decode().split("\n")[:-1]
    assert len(lines) == 4000
    whole = re.compile(r"^(a|b) +\| \1 \d{8} x{19970}$")
    assert all(whole.match(line) for line in lines)
    check_sequences(lines, "a       | ", "a", 2000)
    check_sequences(lines, "b       | ", "b", 2000)


def test_last_line_without_newline_and_crash_output(tmp_path):
    code, out, err = run_to_file(tmp_path, '''
[programs.nonl]
command = ["printf", "first\\\\nno newline at the end"]
restart = "never"
[programs.crash]
command = %s
restart = "never"
''' % toml_list(py("import os,sys\nsys.stdout.write('before the crash\\n'); sys.stdout.flush()\n"
                   "sys.stderr.write('dying words'); sys.stderr.flush()\nos.kill(os.getpid(), 9)")))
    assert code == 1
    lines = out.decode().splitlines()
    assert "nonl    | first" in lines
    assert "nonl    | no newline at the end" in lines
    assert "crash   | before the crash" in lines
    err_lines = err.decode().splitlines()
    dying = err_lines.index("crash   | dying words")
    killed = [i for i, line in enumerate(err_lines) if "crash: killed by SIGKILL" in line][0]
    assert dying < killed, "a program's last output comes before the news of its death"


def test_non_utf8_bytes_pass_through(tmp_path):
    code, out, _ = run_to_file(tmp_path, '''
[programs.bin]
command = %s
restart = "never"
''' % toml_list(py("import sys; sys.stdout.buffer.write(b'\\xff\\xfe latin1 \\xe9\\n')")))
    assert code == 0
    assert out == b"bin     | \xff\xfe latin1 \xe9\n"


def test_json_format(tmp_path):
    code, out, err = run_to_file(tmp_path, '''
[pysuper]
log_format = "json"
[programs.j]
command = %s
restart = "never"
''' % toml_list(py("import sys; sys.stdout.buffer.write(b'hello \\x22x\\x22\\n\\xff\\n'); "
                   "sys.stderr.write('oops\\n')")))
    assert code == 0
    records = [json.loads(line) for line in out.decode().splitlines()]
    assert [r["message"] for r in records] == ['hello "x"', "\\xff"]
    assert all(r["program"] == "j" and r["stream"] == "stdout" for r in records)
    errs = [json.loads(line) for line in err.decode().splitlines()]
    assert {"program": "j", "stream": "stderr", "message": "oops"}.items() <= errs[[e["program"] for e in errs]
                                                                                   .index("j")].items()
    assert errs[-1]["program"] == "pysuper" and "exiting with code 0" in errs[-1]["message"]


def test_raw_format_inherits_streams(tmp_path):
    code, out, err = run_to_file(tmp_path, '''
[pysuper]
log_format = "raw"
[programs.r]
command = %s
restart = "never"
''' % toml_list(py("import os; print(os.readlink('/proc/self/fd/1'))")))
    assert code == 0
    assert out.decode() == str(tmp_path / "out") + "\n"


def test_long_lines_are_split_not_dropped(tmp_path):
    code, out, _ = run_to_file(tmp_path, '''
[programs.long]
command = %s
restart = "never"
''' % toml_list(py("import sys; sys.stdout.write('z' * (2 * 1024 * 1024 + 10) + '\\nend\\n')")))
    assert code == 0
    lines = out.split(b"\n")[:-1]
    assert [len(line) for line in lines] == [10 + 1024 * 1024, 10 + 1024 * 1024, 10 + 10, 10 + 3]


def test_stalled_stdout_does_not_stall_supervision(tmp_path):
    """stdout is a pipe nobody reads: a flooding program blocks, others restart, SIGTERM works."""
    path = tmp_path / "pysuper.toml"
    writer = toml_list(py(WRITER))[:-1]
    path.write_text('''
[programs.flood]
command = %s, "flood", "50000", "100"]
restart = "never"
[programs.crashy]
command = ["sh", "-c", "exit 1"]
start_seconds = 0
restart = "always"
backoff_max = 0.2
''' % writer)
    read_end, write_end = os.pipe()
    err_path = tmp_path / "err"
    with open(err_path, "wb") as err:
        proc = subprocess.Popen(PYSUPER + ["-c", str(path)], env=pysuper_env(), stdout=write_end,
                                stderr=err, stdin=subprocess.DEVNULL)
    os.close(write_end)
    try:
        # Supervision goes on while nobody reads stdout: crashy keeps being restarted.
        import time
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if err_path.read_text().count("crashy: started") >= 15:
                break
            time.sleep(0.05)
        assert err_path.read_text().count("crashy: started") >= 15
        proc.send_signal(signal.SIGTERM)
        # Now read everything: no line of flood may be lost (it was stopped, so fewer than 50000).
        chunks = []
        while True:
            chunk = os.read(read_end, 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
        assert proc.wait(20) in (0, 1)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(read_end)
    lines = b"".join(chunks).decode().split("\n")
    assert lines[-1] == ""
    numbers = [int(line.split()[3]) for line in lines[:-1]]
    assert numbers == list(range(len(numbers))) and len(numbers) > 1000


def test_fast_writer_gets_a_big_pipe_and_nothing_is_lost(tmp_path):
    """A program writing tens of MB/s is read in rests from an enlarged pipe; every line arrives."""
    import threading

    from pysuper.logs import Formatter, Relay, Ring, Sink
    from pysuper.loop import Loop

    loop = Loop()
    read_end, write_end = os.pipe()
    os.set_blocking(read_end, False)
    out_path = tmp_path / "out"
    with open(out_path, "wb") as out:
        sink = Sink(loop, out.fileno())
        relay = Relay(loop, read_end, "stdout", sink, Formatter("w", 1, "prefix"), Ring())
        count = 1500000

        def write():
            with os.fdopen(write_end, "wb", buffering=1 << 16) as pipe:
                for i in range(count):
                    pipe.write(b"%08d %s\n" % (i, b"x" * 80))

        writer = threading.Thread(target=write)
        writer.start()

        def watch():
            if relay.closed:
                loop.stop()
            else:
                loop.call_later(0.05, watch)
        watch()
        loop.call_later(DEADLINE, loop.stop)
        loop.run()
        writer.join(10)
        assert relay._fast
        loop.close()
    lines = out_path.read_bytes().split(b"\n")
    assert lines[-1] == b""
    assert [int(line[4:12]) for line in lines[:-1]] == list(range(count))
