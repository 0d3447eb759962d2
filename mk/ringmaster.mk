# The ring master daemon (NSCLDAQ RingMaster protocol): binary, documentation and
# service files. The binary itself is built by the top-level `rust` target (all bins).

.PHONY: install-ringmaster uninstall-ringmaster

install: install-ringmaster
uninstall: uninstall-ringmaster

install-ringmaster: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(PREFIX)/share/doc/daqflow $(DESTDIR)$(PREFIX)/share/daqflow
	install -m 0755 $(REL)/ringmaster $(DESTDIR)$(BINDIR)/ringmaster
	install -m 0644 docs/ringmaster.md $(DESTDIR)$(PREFIX)/share/doc/daqflow/ringmaster.md
	install -m 0644 dist/ringmaster.service $(DESTDIR)$(PREFIX)/share/daqflow/ringmaster.service
	install -m 0755 dist/ringmaster.init $(DESTDIR)$(PREFIX)/share/daqflow/ringmaster.init

uninstall-ringmaster:
	rm -f $(DESTDIR)$(BINDIR)/ringmaster \
	      $(DESTDIR)$(PREFIX)/share/doc/daqflow/ringmaster.md \
	      $(DESTDIR)$(PREFIX)/share/daqflow/ringmaster.service \
	      $(DESTDIR)$(PREFIX)/share/daqflow/ringmaster.init
	-rmdir $(DESTDIR)$(PREFIX)/share/doc/daqflow $(DESTDIR)$(PREFIX)/share/daqflow 2>/dev/null
