#!/usr/bin/env bash
# Container checks: build and run the images under docker/ for real with rootful podman,
# and run the whole test suite under Python 3.9 inside the node:18.13.0 image.
#
#   bash .ci/images.sh deps   only install what the suite's container tests need on this
#                             machine (nodejs for tests/integration/test_node_hello_local.py)
#   bash .ci/images.sh        deps, base images, tests/image, then the suite under Python 3.9
#
# There is no registry here: the base images (node:20-bookworm-slim, node:18.13.0) are
# local stand-ins built by shared/container/make-base-image.sh, found beside the
# repository ($(dirname repo)/shared/container, or $PYSUPER_SHARED_CONTAINER). Without
# that directory, or without root, the container part is skipped with a message (exit 0).
#
# Environment: PYTHON  an interpreter with pysuper[test] installed, for tests/image
#                      (default: a venv of its own under $STATE)
#              STATE   work directory (default /tmp/pysuper-ci-images)
#              SKIP_PY39=1  leave out the Python 3.9 run
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SHARED=${PYSUPER_SHARED_CONTAINER:-$(dirname "$REPO")/shared/container}
STATE=${STATE:-/tmp/pysuper-ci-images}
MODE=${1:-all}

say() { printf '[images %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
elapsed() { echo "$(( $(date +%s) - $1 ))s"; }

apt_install() {  # apt_install PKG...: install from Debian, updating the lists only if empty
  if [ -z "$(ls /var/lib/apt/lists/ 2>/dev/null | grep -v -e lock -e partial -e auxfiles)" ]; then
    apt-get update -q >&2
  fi
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q \
    --no-install-recommends "$@" >&2
}

install_deps() {
  if command -v node >/dev/null 2>&1; then
    say "node $(node --version) is installed"
  elif [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing nodejs from Debian (tests/integration/test_node_hello_local.py runs the sample with it)"
    apt_install nodejs
  else
    say "no node here and no way to install it: the local node-hello test will be skipped"
  fi
}

case "$MODE" in
  deps) install_deps; exit 0;;
  all) ;;
  -h|--help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0;;
  *) echo "usage: $0 [deps]" >&2; exit 2;;
esac

install_deps

if [ ! -d "$SHARED" ]; then
  say "SKIPPED: $SHARED is absent, so there is no way to build base images here (no registry);"
  say "the image tests and the Python 3.9 run need the podman scripts of shared/container"
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  say "SKIPPED: rootful podman needs root; run as root to build and test the images"
  exit 0
fi

mkdir -p "$STATE"
T0=$(date +%s)

# --- base images (each about 2 minutes cold, a fraction of a second cached) -----------
t=$(date +%s)
bash "$SHARED/make-base-image.sh"
say "node:20-bookworm-slim ready in $(elapsed "$t")"
t=$(date +%s)
NODE_IMAGE=18.13.0 bash "$SHARED/make-base-image.sh"
say "node:18.13.0 ready in $(elapsed "$t")"
# make-base-image.sh writes it; podman reads only this file with CONTAINERS_CONF set
export CONTAINERS_CONF=${CONTAINERS_CONF:-${PYSUPER_LAB_STATE:-/tmp/pysuper-lab}/containers.conf}

# --- the image tests ------------------------------------------------------------------
if [ -z "${PYTHON:-}" ]; then
  t=$(date +%s)
  python3 -m venv "$STATE/venv"
  "$STATE/venv/bin/pip" install -q --disable-pip-version-check -e "$REPO[test]"
  PYTHON=$STATE/venv/bin/python
  say "venv for the image tests ready in $(elapsed "$t")"
fi
rc=0
t=$(date +%s)
say "tests/image (builds docker/node-hello and docker/single, runs them with podman)"
( cd "$REPO" && PYSUPER_IMAGE_TESTS=require "$PYTHON" -m pytest -q -p no:cacheprovider tests/image ) \
  || rc=1
say "tests/image done in $(elapsed "$t") (rc=$rc)"

# --- the whole suite under Python 3.9, in the node:18.13.0 image ------------------------
# The tree is mounted read-only and copied inside, so nothing is written into it.
# --privileged lets the PID-1 tests use unshare inside the container; --network=host is
# for pip. pip 20.3 (bullseye's) cannot install a pyproject-only project in editable
# mode, hence --upgrade-deps first.
if [ "${SKIP_PY39:-0}" != 1 ]; then
  t=$(date +%s)
  say "the whole test suite under Python 3.9 (node:18.13.0 image)"
  if podman run --rm --pull=never --network=host --privileged \
       -v "$REPO":/src:ro -w /src node:18.13.0 sh -ec '
    mkdir /tmp/w
    tar -C /src --exclude=./.git --exclude=./.venv --exclude=./benchmarks/.env \
        --exclude=__pycache__ --exclude="*.egg-info" --exclude=node_modules -cf - . | tar -C /tmp/w -xf -
    cd /tmp/w
    python3 --version
    python3 -m venv --upgrade-deps /tmp/v >/dev/null
    # tests that run pysuper as another uid use /usr/bin/python3 with the source tree on
    # PYTHONPATH: give that interpreter pysuper'"'"'s dependencies too (bullseye has no PEP 668)
    python3 -m pip install -q --disable-pip-version-check "tomli>=1.1" "psutil>=5.9" "python-dotenv>=1.0" 2>&1 | grep -v "^WARNING: Running pip as" || true
    /tmp/v/bin/pip install -q --disable-pip-version-check -e ".[test]"
    /tmp/v/bin/python -m pytest -q -p no:cacheprovider'; then
    say "Python 3.9 suite passed in $(elapsed "$t")"
  else
    say "Python 3.9 suite FAILED after $(elapsed "$t")"; rc=1
  fi
fi

say "done in $(elapsed "$T0"), rc=$rc"
exit "$rc"
