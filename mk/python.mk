# The Python package daqflow (python/): pure Python over libdaqflow.so.1 (ctypes).
#
#   make check-python   pytest in python/tests against a staged install (python/tests/run.sh)
#   make bench-python   a Python consumer (items()) against the C consumer, same run
#
# PYTHON is the interpreter with pytest (and numpy): Debian's /usr/bin/python3 by default,
# not whichever python3 is first on PATH. Without pytest the tests say SKIPPED and what
# to install, and the rest of make check goes on.

PYTHON   ?= /usr/bin/python3
PYBUILD  := $(abspath $(BUILD)/python)
PYSTAGE  := $(PYBUILD)/stage

.PHONY: check-python bench-python python-stage install-python-doc uninstall-python-doc

check: check-python
bench: bench-python
install: install-python-doc
uninstall: uninstall-python-doc

# The package itself is installed with pip (pip install ./python); make install puts
# its documentation beside the others.
install-python-doc:
	install -d $(DESTDIR)$(PREFIX)/share/doc/daqflow
	install -m 0644 docs/python.md $(DESTDIR)$(PREFIX)/share/doc/daqflow/python.md

uninstall-python-doc:
	rm -f $(DESTDIR)$(PREFIX)/share/doc/daqflow/python.md
	-rmdir $(DESTDIR)$(PREFIX)/share/doc/daqflow 2>/dev/null

python-stage: all
	rm -rf $(PYSTAGE)
	$(MAKE) --no-print-directory install PREFIX=$(PYSTAGE)

check-python: python-stage
	PYTHON=$(PYTHON) STAGE=$(PYSTAGE) BUILD=$(PYBUILD) sh python/tests/run.sh

bench-python: python-stage
	PYTHON=$(PYTHON) STAGE=$(PYSTAGE) BUILD=$(PYBUILD) sh python/bench/run.sh
