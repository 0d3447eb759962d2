#!/bin/sh
# make bench-python: builds the C producer/consumer against the staged install (as
# python/tests/run.sh does) and runs bench_items.py with the package from python/.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
: "${PYTHON:?}" "${STAGE:?}" "${BUILD:?}"
mkdir -p "$BUILD"
export PKG_CONFIG_PATH="$STAGE/lib/pkgconfig"
gcc -std=gnu11 -Wall -Wextra -Werror -O2 $(pkg-config --cflags daqflow) -o "$BUILD/df_items" \
    "$here/../tests/c/df_items.c" $(pkg-config --libs daqflow)
export LD_LIBRARY_PATH="$STAGE/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export DAQFLOW_TEST_BIN="$BUILD" PYTHONPATH="$here/.." PYTHONDONTWRITEBYTECODE=1
unset DAQFLOW_LIBRARY
exec "$PYTHON" "$here/bench_items.py"
