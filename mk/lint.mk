# The formatting and lint gate, run first by `make check`: rustfmt (rustfmt.toml), clippy
# with every warning an error over the whole workspace and every target, and every C and
# C++ source compiled for syntax with the warnings the build uses (-Wall -Wextra -Werror),
# so a warning fails in seconds rather than minutes into the C tests.
.PHONY: lint lint-rust lint-c

lint: lint-rust lint-c

lint-rust:
	$(CARGO) fmt --all --check
	cd fuzz && $(CARGO) fmt --check
	$(CARGO) clippy --release --workspace --all-targets -- -D warnings

LINT_CFLAGS  := -D_POSIX_C_SOURCE=200809L -Wall -Wextra -Werror -fsyntax-only -Iinclude
LINT_TCLINC  = $(if $(wildcard $(TCLCONFIG)),$(TCL_INCLUDE_SPEC))
lint-c:
	for f in c-tests/*.c tcl/tests/*.c; do $(CC) -std=c99 -pedantic $(LINT_CFLAGS) $$f || exit 1; done
	for f in $$(find c-tests -name '*.cpp'); do $(CXX) -std=c++11 $(LINT_CFLAGS) -Iinclude/nscldaq $$f || exit 1; done
	$(if $(LINT_TCLINC),for f in tcl/*.c; do $(CC) -std=c99 $(LINT_CFLAGS) -DUSE_TCL_STUBS $(LINT_TCLINC) -Itcl $$f || exit 1; done)
