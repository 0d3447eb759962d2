#!/bin/sh
# Runs the Python package's tests (pytest) against a staged install, as a user would
# have it: the library from the staged prefix found by the loader (LD_LIBRARY_PATH, the
# soname), the package pip-installed from a copy of python/ into a virtual environment
# made from $PYTHON with its system packages (pytest, numpy) visible, the C test
# program built with the staged pkg-config. Options go on to pytest.
#
#   PYTHON  the interpreter (the Makefile's default is /usr/bin/python3, where Debian's
#           python3-pytest and python3-numpy live, whatever python3 is first on PATH)
#   STAGE   the staged prefix (make install PREFIX=$STAGE done)
#   BUILD   a scratch directory
set -eu
here=$(cd "$(dirname "$0")" && pwd)
: "${PYTHON:?PYTHON must name the interpreter}"
: "${STAGE:?STAGE must name the staged install prefix}"
: "${BUILD:?BUILD must name a scratch directory}"

if ! "$PYTHON" -c 'import pytest' 2>/dev/null; then
    echo "Python tests SKIPPED: $PYTHON has no pytest (Debian: apt-get install python3-pytest python3-numpy" \
         "python3-venv python3-pip; or make check PYTHON=/path/to/python3)"
    exit 0
fi
mkdir -p "$BUILD"
export PKG_CONFIG_PATH="$STAGE/lib/pkgconfig"
gcc -std=gnu11 -Wall -Wextra -Werror -O2 $(pkg-config --cflags daqflow) -o "$BUILD/df_items" \
    "$here/c/df_items.c" $(pkg-config --libs daqflow)

# pip builds in the directory it is given: a copy keeps build/ and *.egg-info out of the tree.
rm -rf "$BUILD/venv" "$BUILD/src"
mkdir -p "$BUILD/src"
cp -R "$here/../pyproject.toml" "$here/../README.md" "$here/../daqflow" "$BUILD/src/"
if "$PYTHON" -m venv --system-site-packages "$BUILD/venv" >"$BUILD/venv.log" 2>&1 &&
    "$BUILD/venv/bin/python" -m pip install --no-index --no-build-isolation --no-deps "$BUILD/src" \
        >>"$BUILD/venv.log" 2>&1; then
    py="$BUILD/venv/bin/python"
    echo "Python tests: daqflow pip-installed into $BUILD/venv ($("$py" --version))"
else
    echo "Python tests: no venv/pip for $PYTHON (see $BUILD/venv.log; Debian: python3-venv python3-pip)," \
         "testing python/ in place"
    py=$PYTHON
    export PYTHONPATH="$here/.."
fi

export LD_LIBRARY_PATH="$STAGE/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export PATH="$STAGE/bin:$PATH"
export DAQFLOW_TEST_BIN="$BUILD" DAQFLOW_STAGE="$STAGE" PYTHONDONTWRITEBYTECODE=1
unset DAQFLOW_LIBRARY
cd "$here"
[ $# -gt 0 ] || set -- .
exec "$py" -m pytest -p no:cacheprovider -q -rs "$@"
