# Interoperability with FRIB's Rust crates from crates.io, used as live peers: the test
# crate interop/ (a workspace member, never published) links `nscldaq_ringbuffer` 0.8.9
# (LGPL) into its peer programs, and FRIB's ring master `nscldaq_ringmaster` 0.2.16 (GPL)
# is installed into $(BUILD)/frib by cargo, exactly as a site would install it. Nothing
# of either is linked into daqflow or installed by `make install`.
#
#   make check-interop    the tests in interop/tests (needs crates.io the first time)

FRIB_ROOT       := $(abspath $(BUILD)/frib)
FRIB_RINGMASTER := $(FRIB_ROOT)/bin/nscldaq_ringmaster

.PHONY: check-interop

check: check-interop

# FRIB's ring master maps every ring that was in /dev/shm when it started, and reads
# them unchecked on LIST: a corrupt or truncated ring of a test running beside it
# (`make -j check`) could crash it. Under `make check` it runs after the other tests.
ifneq ($(filter check,$(MAKECMDGOALS)),)
check-interop: | check-rust check-c
endif

# --locked: the versions FRIB's release was built with, not whatever is newest today.
$(FRIB_RINGMASTER):
	$(CARGO) install --locked --version 0.2.16 --root $(FRIB_ROOT) nscldaq_ringmaster

check-interop: all $(FRIB_RINGMASTER)
	DAQFLOW_BIN_DIR=$(abspath $(REL)) FRIB_RINGMASTER=$(FRIB_RINGMASTER) \
	    $(CARGO) test --release -p daqflow-interop
