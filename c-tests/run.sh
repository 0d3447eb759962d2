#!/bin/sh
# Builds every C and C++ program in c-tests/ against the installed library found through
# pkg-config (PKG_CONFIG_PATH points at a scratch install), the way a user's Makefile
# would, with warnings as errors, then runs each one (a directory holds one C++ program
# of several translation units). C++ programs build with
# daqflow-nscldaq (the NSCLDAQ compatibility headers; it pulls in daqflow). Programs
# named peer_* are built but not run on their own: other tests start them (from
# $DAQFLOW_PEER_DIR) as the other side of a pair. Programs that need the port manager
# start their own daqportmgr from $STAGE/bin (on PATH here).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
: "${BUILD:?BUILD must name a scratch build directory}"
: "${STAGE:?STAGE must name the scratch install prefix}"
mkdir -p "$BUILD"
cflags=$(pkg-config --cflags daqflow)
libs=$(pkg-config --libs daqflow)
cxxflags=$(pkg-config --cflags daqflow-nscldaq)
cxxlibs=$(pkg-config --libs daqflow-nscldaq)
export LD_LIBRARY_PATH="$STAGE/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export PATH="$STAGE/bin:$PATH"
export DAQFLOW_PEER_DIR="$BUILD"

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

# Everything is built before anything runs, so that pairs find their peers.
programs=
for src in "$here"/*.c; do
    [ -e "$src" ] || continue
    name=$(basename "$src" .c)
    # Once strictly as C99 (a user may compile that way), once with the defaults we link.
    gcc -std=c99 -pedantic -D_POSIX_C_SOURCE=200809L -Wall -Wextra -Werror $cflags -fsyntax-only "$src"
    gcc -std=gnu11 -Wall -Wextra -Werror -O2 $cflags -o "$BUILD/$name" "$src" $libs -lpthread
    programs="$programs $name"
done
for src in "$here"/*.cpp; do
    [ -e "$src" ] || continue
    name=$(basename "$src" .cpp)
    # Legacy readout code is often C++11: the headers must compile there too.
    g++ -std=c++11 -Wall -Wextra -Werror $cxxflags -fsyntax-only "$src"
    g++ -std=c++17 -Wall -Wextra -Werror -O2 $cxxflags -o "$BUILD/$name" "$src" $cxxlibs -lpthread
    programs="$programs $name"
done
# A directory is one C++ program of several translation units: each unit is built on
# its own, alternately as C++11 without and C++17 with optimisation, then all linked.
for dir in "$here"/*/; do
    [ -d "$dir" ] || continue
    name=$(basename "$dir")
    objects=
    i=0
    for src in "$dir"*.cpp; do
        obj="$BUILD/$name.$(basename "$src" .cpp).o"
        if [ $((i % 2)) -eq 0 ]; then std="-std=c++11 -O0"; else std="-std=c++17 -O2"; fi
        g++ $std -Wall -Wextra -Werror $cxxflags -c -o "$obj" "$src"
        objects="$objects $obj"
        i=$((i + 1))
    done
    g++ -o "$BUILD/$name" $objects $cxxlibs -lpthread
    programs="$programs $name"
done
for name in $programs; do
    case $name in peer_*) continue ;; esac
    run "$name" "$BUILD/$name"
done
exit $failed
