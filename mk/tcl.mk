# The Tcl packages `ring` and `portAllocator`: stubs-enabled shared objects
# libdaqflowring.so and libdaqflowportallocator.so (Tcl 8.6 loads one init prefix per
# file), linked to libdaqflow.so.1, with a pkgIndex.tcl naming each init.
#
#   make tcl           build/tcl/ (in-tree copy, finds target/release/libdaqflow.so.1)
#   make install-tcl   $(TCLPKGDIR), which Debian's tclsh searches with no TCLLIBPATH;
#                      that copy finds libdaqflow.so.1 in $(LIBDIR) through its RUNPATH
#   make check-tcl     tcl/tests/all.tcl against the in-tree build, then a staged install
#
# Tcl is optional (the top Makefile: "and Tcl when present"): without Tcl 8.6's
# development files (Debian: tcl-dev) every target here says so and does nothing, and
# the rest of make, make install and make check work as before.

TCLCONFIG ?= /usr/lib/tcl8.6/tclConfig.sh
TCLSH     ?= tclsh
TCLPKGDIR ?= $(PREFIX)/lib/tcltk/daqflow

.PHONY: tcl install-tcl uninstall-tcl check-tcl check-tcl-install check-tcl-absent

all: tcl
install: install-tcl
uninstall: uninstall-tcl
check: check-tcl

ifeq ($(wildcard $(TCLCONFIG)),)

tcl install-tcl uninstall-tcl check-tcl:
	@echo "Tcl packages skipped: no $(TCLCONFIG) (install tcl-dev, or set TCLCONFIG=.../tclConfig.sh)"

else

TCL_INCLUDE_SPEC  := $(shell . $(TCLCONFIG) && echo "$$TCL_INCLUDE_SPEC")
TCL_STUB_LIB_SPEC := $(shell . $(TCLCONFIG) && echo "$$TCL_STUB_LIB_SPEC")

TCLBUILD   := $(BUILD)/tcl
TCL_SRCS   := tcl/ring.c tcl/portallocator.c tcl/dferror.c
TCL_LIBS   := libdaqflowring.so libdaqflowportallocator.so
TCL_HDRS   := tcl/dferror.h include/daqflow.h
TCL_CFLAGS := -O2 -g -fPIC -fvisibility=hidden -std=c99 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -Werror \
              -DUSE_TCL_STUBS $(TCL_INCLUDE_SPEC) -Iinclude -Itcl
# The library is linked by its SONAME; only the RUNPATH differs between the copies.
TCL_LINK_LIBS := -L$(REL) -ldaqflow $(TCL_STUB_LIB_SPEC) -Wl,-z,defs
TCL_LINK   = $(CC) -shared -o $@ $(filter %.o,$^) $(TCL_LINK_LIBS) -Wl,-rpath,$(1)
TCL_TESTPROGS := $(TCLBUILD)/tests/ring_producer $(TCLBUILD)/tests/ring_consumer

tcl: $(TCL_LIBS:%=$(TCLBUILD)/%) $(TCLBUILD)/pkgIndex.tcl

# mk/tcl.mk holds the flags. (A separate recipe-less pattern rule cannot add it: make
# ignores pattern rules without a recipe.)
$(TCLBUILD)/obj/%.o: %.c $(TCL_HDRS) mk/tcl.mk
	@mkdir -p $(dir $@)
	$(CC) $(TCL_CFLAGS) -c -o $@ $<

# Relinked whenever cargo ran, which is cheap and keeps them in step with the library.
RING_OBJS := $(TCLBUILD)/obj/tcl/ring.o $(TCLBUILD)/obj/tcl/dferror.o
PA_OBJS   := $(TCLBUILD)/obj/tcl/portallocator.o $(TCLBUILD)/obj/tcl/dferror.o
$(TCLBUILD)/libdaqflowring.so: $(RING_OBJS) rust
	$(call TCL_LINK,$(abspath $(REL)))
$(TCLBUILD)/libdaqflowportallocator.so: $(PA_OBJS) rust
	$(call TCL_LINK,$(abspath $(REL)))

$(TCLBUILD)/pkgIndex.tcl: tcl/pkgIndex.tcl
	@mkdir -p $(dir $@)
	cp $< $@

# The installed copies differ only in their RUNPATH ($(LIBDIR)), so they are linked
# straight into place: no intermediate file that two installs with different LIBDIRs
# (make -j check runs two) could share.
install-tcl: tcl
	install -d $(DESTDIR)$(TCLPKGDIR) $(DESTDIR)$(PREFIX)/share/doc/daqflow
	$(CC) -shared -o $(DESTDIR)$(TCLPKGDIR)/libdaqflowring.so $(RING_OBJS) $(TCL_LINK_LIBS) -Wl,-rpath,$(LIBDIR)
	$(CC) -shared -o $(DESTDIR)$(TCLPKGDIR)/libdaqflowportallocator.so $(PA_OBJS) $(TCL_LINK_LIBS) -Wl,-rpath,$(LIBDIR)
	chmod 0755 $(TCL_LIBS:%=$(DESTDIR)$(TCLPKGDIR)/%)
	install -m 0644 tcl/pkgIndex.tcl $(DESTDIR)$(TCLPKGDIR)/pkgIndex.tcl
	install -m 0644 docs/tcl.md $(DESTDIR)$(PREFIX)/share/doc/daqflow/tcl.md

uninstall-tcl:
	rm -f $(TCL_LIBS:%=$(DESTDIR)$(TCLPKGDIR)/%) $(DESTDIR)$(TCLPKGDIR)/pkgIndex.tcl \
	      $(DESTDIR)$(PREFIX)/share/doc/daqflow/tcl.md
	-rmdir $(DESTDIR)$(TCLPKGDIR) $(DESTDIR)$(dir $(TCLPKGDIR)) 2>/dev/null
	-rmdir $(DESTDIR)$(PREFIX)/share/doc/daqflow 2>/dev/null

# C programs the tests run as a ring's producer and consumer.
$(TCLBUILD)/tests/%: tcl/tests/%.c include/daqflow.h rust
	@mkdir -p $(dir $@)
	$(CC) -std=c99 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -Werror -Iinclude -o $@ $< \
	    -L$(REL) -ldaqflow -Wl,-rpath,$(abspath $(REL))

check-tcl: tcl $(TCL_TESTPROGS)
	DAQFLOW_TCL_DIR=$(abspath $(TCLBUILD)) DAQFLOW_LIB_DIR=$(abspath $(REL)) \
	DAQFLOW_TEST_BIN=$(abspath $(TCLBUILD)/tests) DAQPORTMGR=$(abspath $(REL)/daqportmgr) \
	    $(TCLSH) tcl/tests/all.tcl
	$(MAKE) --no-print-directory check-tcl-install
	$(MAKE) --no-print-directory check-tcl-absent

# The installed copy: staged, it must load the staged libdaqflow.so.1 through its RUNPATH.
TCLSTAGE := $(abspath $(BUILD)/tcl-stage)
check-tcl-install:
	rm -rf $(TCLSTAGE)
	$(MAKE) --no-print-directory install-core install-tcl PREFIX=$(TCLSTAGE)
	echo 'package require ring 1.1; package require portAllocator 1.0; ringbuffer list; \
	      set f [open /proc/self/maps]; set m [read $$f]; close $$f; \
	      if {![string match "*$(TCLSTAGE)/lib/libdaqflow.so*" $$m]} {puts "staged libdaqflow not loaded"; exit 1}; \
	      puts "staged install: ring [package present ring], portAllocator [package present portAllocator]"' \
	    | TCLLIBPATH=$(TCLSTAGE)/lib/tcltk $(TCLSH)
	rm -rf $(TCLSTAGE)

# Without Tcl's development files the build goes on without the packages.
check-tcl-absent:
	out=$$($(MAKE) --no-print-directory tcl install-tcl TCLCONFIG=/nonexistent/tclConfig.sh \
	    BUILD=$(BUILD)/tcl-absent PREFIX=$(abspath $(BUILD)/tcl-absent/stage)) && \
	    echo "$$out" | grep "Tcl packages skipped" >/dev/null
	test ! -e $(BUILD)/tcl-absent/stage
	rm -rf $(BUILD)/tcl-absent

endif
