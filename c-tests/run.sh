#!/bin/sh
# Builds every C and C++ program in c-tests/ against the installed library found through
# pkg-config (PKG_CONFIG_PATH points at a scratch install), the way a user's Makefile
# would, with warnings as errors, then runs each one. Programs that need the port manager
# start their own daqportmgr from $STAGE/bin (on PATH here).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
: "${BUILD:?BUILD must name a scratch build directory}"
: "${STAGE:?STAGE must name the scratch install prefix}"
mkdir -p "$BUILD"
cflags=$(pkg-config --cflags daqflow)
libs=$(pkg-config --libs daqflow)
export LD_LIBRARY_PATH="$STAGE/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export PATH="$STAGE/bin:$PATH"

failed=0
run() {
    name=$1; shift
    printf '%-40s ' "$name"
    if out=$("$@" 2>&1); then
        echo ok
    else
        echo FAILED; echo "$out" | sed 's/^/    /'; failed=1
    fi
}

for src in "$here"/*.c; do
    [ -e "$src" ] || continue
    name=$(basename "$src" .c)
    # Once strictly as C99 (a user may compile that way), once with the defaults we link.
    gcc -std=c99 -pedantic -D_POSIX_C_SOURCE=200809L -Wall -Wextra -Werror $cflags -fsyntax-only "$src"
    gcc -std=gnu11 -Wall -Wextra -Werror -O2 $cflags -o "$BUILD/$name" "$src" $libs -lpthread
    run "$name" "$BUILD/$name"
done
for src in "$here"/*.cpp; do
    [ -e "$src" ] || continue
    name=$(basename "$src" .cpp)
    g++ -std=c++17 -Wall -Wextra -Werror -O2 $cflags -o "$BUILD/$name" "$src" $libs -lpthread
    run "$name" "$BUILD/$name"
done
exit $failed
