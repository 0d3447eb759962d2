# Coverage-guided fuzzing of the C stubs (and whatever else fuzz/ holds): not part of
# `make check`, it needs tools CI does not install. See fuzz/README.md.
#
#   make fuzz                 every target of fuzz/ for FUZZ_SECONDS (45) each
#   make fuzz FUZZ_TARGETS=tcl_ring FUZZ_SECONDS=600
#
# Needs: a nightly toolchain, cargo-fuzz (cargo install cargo-fuzz), and for the tcl_*
# targets clang with libFuzzer's runtime and Tcl's headers (Debian: clang-14
# libclang-rt-14-dev tcl-dev). Each target keeps its corpus in fuzz/corpus/<target>
# (grown by every run) and writes what fails to fuzz/artifacts/<target>; a target stops
# at its first finding, the others still run, and make fails at the end if any target
# found something. The log of each run is in build/fuzz/<target>.log.

FUZZ_SECONDS ?= 45
CARGO_FUZZ   ?= $(CARGO) +nightly fuzz
FUZZ_TARGETS ?= $(shell cd fuzz && $(CARGO_FUZZ) list 2>/dev/null)
FUZZ_LOGS    := $(abspath $(BUILD)/fuzz)

.PHONY: fuzz

fuzz:
	@$(CARGO_FUZZ) --version >/dev/null 2>&1 || \
	    { echo "make fuzz needs cargo-fuzz and a nightly toolchain: cargo install cargo-fuzz"; exit 1; }
	@test -n "$(FUZZ_TARGETS)" || { echo "no fuzz targets found in fuzz/"; exit 1; }
	@mkdir -p $(FUZZ_LOGS)
	@failed=; for t in $(FUZZ_TARGETS); do \
	    echo "fuzz $$t: $(FUZZ_SECONDS) s (log: $(FUZZ_LOGS)/$$t.log)"; \
	    (cd fuzz && $(CARGO_FUZZ) run $$t -- -max_total_time=$(FUZZ_SECONDS) -timeout=10 \
	        -rss_limit_mb=2048 -print_final_stats=1) > $(FUZZ_LOGS)/$$t.log 2>&1; rc=$$?; \
	    grep -h '^Done \|^stat::new_units_added\|^stat::peak_rss_mb\|SUMMARY\|Test unit written' \
	        $(FUZZ_LOGS)/$$t.log | sed "s/^/  $$t: /"; \
	    if [ $$rc -ne 0 ]; then tail -n 40 $(FUZZ_LOGS)/$$t.log; echo "fuzz $$t FAILED"; failed="$$failed $$t"; fi; \
	done; \
	if [ -n "$$failed" ]; then echo "make fuzz: findings or failures in:$$failed"; exit 1; fi
