# NSCLDAQ compatibility: header-only C++ classes (include/nscldaq/) and their pkg-config
# file, daqflow-nscldaq.pc, whose Cflags make <CRingBuffer.h>, <CRingMaster.h> and the rest
# resolve. Nothing to build; their tests are C++ programs in c-tests/ (make check-c).

NSCLDAQ_HEADERS := $(notdir $(wildcard include/nscldaq/*.h))

.PHONY: install-nscldaq uninstall-nscldaq

install: install-nscldaq
uninstall: uninstall-nscldaq

install-nscldaq:
	install -d $(DESTDIR)$(INCLUDEDIR)/nscldaq $(DESTDIR)$(PKGCONFIGDIR)
	install -m 0644 $(addprefix include/nscldaq/,$(NSCLDAQ_HEADERS)) $(DESTDIR)$(INCLUDEDIR)/nscldaq/
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' \
	    -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' -e 's|@VERSION@|$(VERSION)|' \
	    pkgconfig/daqflow-nscldaq.pc.in > $(DESTDIR)$(PKGCONFIGDIR)/daqflow-nscldaq.pc

uninstall-nscldaq:
	rm -f $(addprefix $(DESTDIR)$(INCLUDEDIR)/nscldaq/,$(NSCLDAQ_HEADERS)) \
	      $(DESTDIR)$(PKGCONFIGDIR)/daqflow-nscldaq.pc
	-rmdir $(DESTDIR)$(INCLUDEDIR)/nscldaq 2>/dev/null
