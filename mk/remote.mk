# Remote rings (tcp://host/ring): the feeder program, installed where libdaqflow looks
# for it (the directory `daqflow` next to the library; see docs/remote.md), and the
# helper program the remote tests and benchmark run in their network namespaces.

.PHONY: install-remote uninstall-remote remote-helpers

FEEDERDIR := $(LIBDIR)/daqflow

install: install-remote
uninstall: uninstall-remote
check: remote-helpers
bench: remote-helpers

install-remote: all
	install -d $(DESTDIR)$(FEEDERDIR) $(DESTDIR)$(PREFIX)/share/doc/daqflow
	install -m 0755 $(REL)/daqflow-feeder $(DESTDIR)$(FEEDERDIR)/daqflow-feeder
	install -m 0644 docs/remote.md $(DESTDIR)$(PREFIX)/share/doc/daqflow/remote.md

uninstall-remote:
	rm -f $(DESTDIR)$(FEEDERDIR)/daqflow-feeder $(DESTDIR)$(PREFIX)/share/doc/daqflow/remote.md
	-rmdir $(DESTDIR)$(FEEDERDIR) $(DESTDIR)$(PREFIX)/share/doc/daqflow 2>/dev/null

# `cargo test --test remote_x` and `cargo bench` do not build examples by themselves.
remote-helpers:
	$(CARGO) build --release --bins --examples
