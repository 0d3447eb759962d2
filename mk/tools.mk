# Operator tools: the ringbuffer command, the manual pages, and the service files of the
# daemons in dist/ installed where systemd and init look for them.
#
#   make install-tools          ringbuffer, the pages and the service files
#   make install-tools-files    the pages and service files alone (no build; the test
#                               tests/tools_install.rs installs them into a scratch prefix)
#
# Where things go (each can be overridden):
#   MANDIR/man{1,3,8,n}   manual pages, by the section their name ends with
#   SYSTEMDUNITDIR        *.service, with /usr/local/bin and /usr/local/share replaced
#                         by BINDIR and PREFIX/share (systemd searches
#                         /usr/local/lib/systemd/system and /usr/lib/systemd/system)
#   TMPFILESDIR           NAME.tmpfiles as NAME.conf
#   INITDIR               NAME.init as NAME, paths replaced as for the units; with
#                         PREFIX=/usr/local it is /usr/local/etc/init.d: link or copy to
#                         /etc/init.d, or install with INITDIR=/etc/init.d
# The ringmaster's service files are installed when dist/ has them.

MANDIR         ?= $(PREFIX)/share/man
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system
TMPFILESDIR    ?= $(PREFIX)/lib/tmpfiles.d
INITDIR        ?= $(PREFIX)/etc/init.d

TOOLS_BINS     := ringbuffer
TOOLS_MAN      := $(sort $(wildcard man/*.1 man/*.3 man/*.8 man/*.n))
TOOLS_UNITS    := $(sort $(wildcard dist/*.service))
TOOLS_INITS    := $(sort $(wildcard dist/*.init))
TOOLS_TMPFILES := $(sort $(wildcard dist/*.tmpfiles))
TOOLS_PATHS    := sed -e 's|/usr/local/bin/|$(BINDIR)/|g' -e 's|/usr/local/share/|$(PREFIX)/share/|g'

.PHONY: install-tools install-tools-bin install-tools-files uninstall-tools uninstall-tools-files

install: install-tools
uninstall: uninstall-tools

install-tools: install-tools-bin install-tools-files

install-tools-bin: all
	install -d $(DESTDIR)$(BINDIR)
	for b in $(TOOLS_BINS); do install -m 0755 $(REL)/$$b $(DESTDIR)$(BINDIR)/$$b; done

install-tools-files:
	set -e; for page in $(TOOLS_MAN); do \
	    dir=$(DESTDIR)$(MANDIR)/man$${page##*.}; \
	    install -d $$dir; install -m 0644 $$page $$dir/; \
	done
	set -e; for unit in $(TOOLS_UNITS); do \
	    install -d $(DESTDIR)$(SYSTEMDUNITDIR); \
	    $(TOOLS_PATHS) $$unit > $(DESTDIR)$(SYSTEMDUNITDIR)/$${unit##*/}; \
	    chmod 0644 $(DESTDIR)$(SYSTEMDUNITDIR)/$${unit##*/}; \
	done
	set -e; for entry in $(TOOLS_TMPFILES); do \
	    name=$${entry##*/}; \
	    install -d $(DESTDIR)$(TMPFILESDIR); \
	    install -m 0644 $$entry $(DESTDIR)$(TMPFILESDIR)/$${name%.tmpfiles}.conf; \
	done
	set -e; for script in $(TOOLS_INITS); do \
	    name=$${script##*/}; \
	    install -d $(DESTDIR)$(INITDIR); \
	    $(TOOLS_PATHS) $$script > $(DESTDIR)$(INITDIR)/$${name%.init}; \
	    chmod 0755 $(DESTDIR)$(INITDIR)/$${name%.init}; \
	done

uninstall-tools: uninstall-tools-files
	for b in $(TOOLS_BINS); do rm -f $(DESTDIR)$(BINDIR)/$$b; done

# Directories are removed only when nothing else is left in them.
uninstall-tools-files:
	for page in $(TOOLS_MAN); do rm -f $(DESTDIR)$(MANDIR)/man$${page##*.}/$${page##*/}; done
	for unit in $(TOOLS_UNITS); do rm -f $(DESTDIR)$(SYSTEMDUNITDIR)/$${unit##*/}; done
	for entry in $(TOOLS_TMPFILES); do name=$${entry##*/}; rm -f $(DESTDIR)$(TMPFILESDIR)/$${name%.tmpfiles}.conf; done
	for script in $(TOOLS_INITS); do name=$${script##*/}; rm -f $(DESTDIR)$(INITDIR)/$${name%.init}; done
	-for page in $(TOOLS_MAN); do rmdir $(DESTDIR)$(MANDIR)/man$${page##*.} 2>/dev/null; done; true
	-rmdir $(DESTDIR)$(SYSTEMDUNITDIR) $(DESTDIR)$(TMPFILESDIR) $(DESTDIR)$(INITDIR) 2>/dev/null; true
