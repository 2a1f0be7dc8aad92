"""watch_ignore globs and watched roots (no threads, no files)."""

from pysuper.watch import Spec, describe


def spec(paths=("src",), ignore=()):
    return Spec("web", "/app", paths, ignore, 0.5)


def test_only_paths_under_a_watched_root_count():
    web = spec(("src", "package.json"))
    assert web.covers("/app/src/a.js")
    assert web.covers("/app/src")
    assert web.covers("/app/package.json")
    assert not web.covers("/app/srcfoo/a.js")
    assert not web.covers("/app/package.json.tmp")
    assert not web.covers("/app/README.md")


def test_a_glob_matches_the_name_any_directory_above_or_the_relative_path():
    web = spec((".",), ("node_modules", "*.log", "src/generated/*", ".git"))
    assert not web.covers("/app/node_modules/x/index.js")  # a directory name above it
    assert not web.covers("/app/lib/node_modules/y.js")
    assert not web.covers("/app/server.log")  # the file's name
    assert not web.covers("/app/logs/today.log")
    assert not web.covers("/app/src/generated/api.js")  # the path relative to the directory
    assert not web.covers("/app/.git/index")
    assert web.covers("/app/src/app.js")
    assert web.covers("/app/node_modules_backup.js")


def test_roots_are_relative_to_the_program_directory():
    assert Spec("w", "/app", ("../shared", "/abs/x", "./src/"), (), 1.0).roots == \
        ("/shared", "/abs/x", "/app/src")


def test_describe_names_a_few_paths():
    assert describe(["a"]) == "a"
    assert describe(["a", "b", "c", "d"]) == "a, b, c and 1 more file"
    assert describe(["a", "b", "c", "d", "e"]) == "a, b, c and 2 more files"
