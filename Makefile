# daqflow: build, install, test, benchmark and demo.
#
#   make            build the library, header and programs (release)
#   make install    PREFIX=/usr/local LIBDIR=$(PREFIX)/lib DESTDIR=
#   make check      the lint gate (make lint: rustfmt, clippy -D warnings, C warnings), then every
#                   test: Rust, C, C++ (and Tcl and Python when present)
#   make bench      throughput and latency against references measured in the same run
#   make demo       a real producer and consumers on a fresh ring, end to end
#   make fuzz       coverage-guided fuzz targets, FUZZ_SECONDS (45) each (mk/fuzz.mk; not in check)

PREFIX     ?= /usr/local
LIBDIR     ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
BINDIR     ?= $(PREFIX)/bin
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
DESTDIR    ?=

CARGO   ?= cargo
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
MAJOR   := $(firstword $(subst ., ,$(VERSION)))
REL     := target/release
BUILD   := build
STAGE   := $(abspath $(BUILD)/stage)
BINS    := daqportmgr lsservices daqflow-demo

.PHONY: all rust header install install-core uninstall uninstall-core check check-rust check-c \
        bench demo clean

all: rust

rust:
	$(CARGO) build --release --lib --bins
	ln -sf libdaqflow.so $(REL)/libdaqflow.so.$(MAJOR)

# Refreshes the committed include/daqflow.h from the code (a test fails when they differ).
header:
	DAQFLOW_WRITE_HEADER=1 $(CARGO) build --release --lib

install: install-core

install-core: all
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(BINDIR) $(DESTDIR)$(PKGCONFIGDIR)
	install -m 0755 $(REL)/libdaqflow.so $(DESTDIR)$(LIBDIR)/libdaqflow.so.$(VERSION)
	ln -sf libdaqflow.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libdaqflow.so.$(MAJOR)
	ln -sf libdaqflow.so.$(MAJOR) $(DESTDIR)$(LIBDIR)/libdaqflow.so
	install -m 0644 $(REL)/libdaqflow.a $(DESTDIR)$(LIBDIR)/libdaqflow.a
	install -m 0644 include/daqflow.h $(DESTDIR)$(INCLUDEDIR)/daqflow.h
	for b in $(BINS); do install -m 0755 $(REL)/$$b $(DESTDIR)$(BINDIR)/$$b; done
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' \
	    -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' -e 's|@VERSION@|$(VERSION)|' \
	    pkgconfig/daqflow.pc.in > $(DESTDIR)$(PKGCONFIGDIR)/daqflow.pc
	install -d $(DESTDIR)$(PREFIX)/share/doc/daqflow $(DESTDIR)$(PREFIX)/share/daqflow
	install -m 0644 docs/portmanager.md $(DESTDIR)$(PREFIX)/share/doc/daqflow/portmanager.md
	install -m 0644 dist/daqportmgr.service dist/daqportmgr.tmpfiles $(DESTDIR)$(PREFIX)/share/daqflow/
	install -m 0755 dist/daqportmgr.init $(DESTDIR)$(PREFIX)/share/daqflow/daqportmgr.init

uninstall: uninstall-core

uninstall-core:
	rm -f $(DESTDIR)$(LIBDIR)/libdaqflow.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libdaqflow.so.$(MAJOR) \
	      $(DESTDIR)$(LIBDIR)/libdaqflow.so $(DESTDIR)$(LIBDIR)/libdaqflow.a \
	      $(DESTDIR)$(INCLUDEDIR)/daqflow.h $(DESTDIR)$(PKGCONFIGDIR)/daqflow.pc
	for b in $(BINS); do rm -f $(DESTDIR)$(BINDIR)/$$b; done
	rm -f $(DESTDIR)$(PREFIX)/share/doc/daqflow/portmanager.md
	rm -f $(DESTDIR)$(PREFIX)/share/daqflow/daqportmgr.service \
	      $(DESTDIR)$(PREFIX)/share/daqflow/daqportmgr.tmpfiles \
	      $(DESTDIR)$(PREFIX)/share/daqflow/daqportmgr.init
	-rmdir $(DESTDIR)$(PREFIX)/share/doc/daqflow $(DESTDIR)$(PREFIX)/share/daqflow 2>/dev/null

check: lint check-rust check-c

check-rust: all
	$(CARGO) test --release

# The C and C++ programs are built the way a user's Makefile would build them: against
# an installed copy (a scratch prefix) through pkg-config.
check-c: all
	rm -rf $(STAGE)
	$(MAKE) --no-print-directory install PREFIX=$(STAGE)
	PKG_CONFIG_PATH=$(STAGE)/lib/pkgconfig STAGE=$(STAGE) BUILD=$(abspath $(BUILD)/c-tests) \
	    sh c-tests/run.sh

# The FRIB reference's helper comes from interop/ (FRIB's crate from crates.io, never in
# the library's dependencies); without it (offline) the bench says so and runs the rest.
bench: all
	-$(CARGO) build --release -p daqflow-interop --bin frib-bench
	RING_BENCH_FRIB=$(abspath $(REL))/frib-bench $(CARGO) bench

demo: all
	$(REL)/daqflow-demo

clean:
	$(CARGO) clean
	rm -rf $(BUILD)

# Each further component (Tcl packages, C++ headers, tools) keeps its rules in mk/*.mk
# and hooks into all, install, uninstall and check by adding prerequisites to them.
include $(sort $(wildcard mk/*.mk))
