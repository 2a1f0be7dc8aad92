"""The watchfiles bridge on a real loop with real files: a burst gives one restart request, ignored
paths give none, a file replaced by an editor's save is still watched."""

import os
import threading

import pytest

from pysuper.watch import Spec, Watcher
from test_health_support import fresh_loop, run


@pytest.fixture
def loop():
    yield from fresh_loop()


class Recorder:
    def __init__(self):
        self.calls = []
        self.messages = []

    def __call__(self, name, paths):
        self.calls.append((name, paths))

    def named(self, name):
        return [paths for who, paths in self.calls if who == name]


def write(path, text="x"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        handle.write(text)


def watching(loop, recorder, directory):
    """Wait until the watcher thread is up: the `probe` program (debounce 0.01 s) sees one of the files
    written every 50 ms until then."""
    written = []

    def write_one():
        if not recorder.named("probe"):
            write(os.path.join(directory, "probe", "p%d" % len(written)))
            written.append(loop.call_later(0.05, write_one))
    write_one()
    run(loop, lambda: recorder.named("probe"))
    written[-1].cancel()


def settle(loop, watcher, recorder, directory, sentinel_count):
    """A handshake instead of a sleep: change a file that only the `sentinel` program watches, with a
    longer debounce than the others, and wait for its request. Changes made before it have been seen
    (one thread, in order) and their shorter debounce has ended."""
    write(os.path.join(directory, "sentinel", "s%d" % sentinel_count))
    run(loop, lambda: len(recorder.named("sentinel")) == sentinel_count)


def test_a_burst_of_50_writes_gives_one_restart_and_ignored_paths_none(loop, tmp_path):
    directory = str(tmp_path)
    os.makedirs(os.path.join(directory, "src", "node_modules"))
    os.makedirs(os.path.join(directory, "sentinel"))
    os.makedirs(os.path.join(directory, "probe"))
    recorder = Recorder()
    watcher = Watcher(loop, recorder, recorder.messages.append)
    try:
        watcher.update([Spec("web", directory, ["src"], ["node_modules", "*.log"], 0.2),
                        Spec("sentinel", directory, ["sentinel"], [], 0.4),
                        Spec("probe", directory, ["probe"], [], 0.01)])
        watching(loop, recorder, directory)
        settle(loop, watcher, recorder, directory, 1)

        writer = threading.Thread(target=lambda: [write(os.path.join(directory, "src", "f%02d.js" % i), str(i))
                                                  for i in range(50)])
        writer.start()
        writer.join()
        run(loop, lambda: recorder.named("web"))
        settle(loop, watcher, recorder, directory, 2)
        assert len(recorder.named("web")) == 1
        assert recorder.named("web")[0] == ["src/f%02d.js" % i for i in range(50)]

        for i in range(20):
            write(os.path.join(directory, "src", "node_modules", "dep", "m%d.js" % i))
            write(os.path.join(directory, "src", "debug%d.log" % i))
        settle(loop, watcher, recorder, directory, 3)
        assert len(recorder.named("web")) == 1, recorder.calls
        assert recorder.messages == []
    finally:
        watcher.close()


def test_a_watched_file_is_still_watched_after_an_editor_replaces_it(loop, tmp_path):
    directory = str(tmp_path)
    write(os.path.join(directory, "package.json"), "{}")
    write(os.path.join(directory, "other.json"), "{}")
    recorder = Recorder()
    watcher = Watcher(loop, recorder, recorder.messages.append)
    try:
        watcher.update([Spec("web", directory, ["package.json"], [], 0.05),
                        Spec("probe", directory, ["probe"], [], 0.01)])
        watching(loop, recorder, directory)
        for round_ in range(1, 4):
            # an editor's save: write a temporary file, rename it over the original
            write(os.path.join(directory, ".package.json.swp"), str(round_))
            os.rename(os.path.join(directory, ".package.json.swp"), os.path.join(directory, "package.json"))
            run(loop, lambda wanted=round_: len(recorder.named("web")) >= wanted)
        assert recorder.named("web") == [["package.json"]] * 3  # neither the temporary file nor other.json
    finally:
        watcher.close()


def test_a_missing_path_is_watched_from_its_directory_and_update_replaces_the_watch(loop, tmp_path):
    directory = str(tmp_path)
    recorder = Recorder()
    watcher = Watcher(loop, recorder, recorder.messages.append)
    try:
        watcher.update([Spec("web", directory, ["dist"], [], 0.05), Spec("probe", directory, ["probe"], [], 0.01)])
        watching(loop, recorder, directory)
        write(os.path.join(directory, "unrelated.txt"))
        os.makedirs(os.path.join(directory, "dist"))
        run(loop, lambda: recorder.named("web"))
        assert recorder.named("web") == [["dist"]]

        recorder.calls.clear()
        watcher.update([Spec("api", directory, ["api"], [], 0.05), Spec("probe", directory, ["probe"], [], 0.01)])
        watching(loop, recorder, directory)  # web is no longer watched
        os.makedirs(os.path.join(directory, "api"))
        os.rmdir(os.path.join(directory, "dist"))
        run(loop, lambda: recorder.named("api"))
        assert recorder.named("web") == []
        watcher.update([])
    finally:
        watcher.close()
