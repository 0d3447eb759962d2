// One program of two translation units that both include every compatibility header,
// built with different language standards and optimisation (run.sh), as a legacy
// program of many files is: the headers must link without duplicate definitions, the
// class-wide defaults must be one setting for the whole program, and an exception
// thrown in one unit must be caught by its class in the other.
#include <CPortManager.h>
#include <CPortManagerException.h>
#include <CRemoteAccess.h>
#include <CRingBuffer.h>
#include <CRingMaster.h>
#include <CTestRingBuffer.h>
#include <CZCopyRingBuffer.h>
#include <ErrnoException.h>
#include <Exception.h>
#include <RangeError.h>
#include <StateException.h>

#include <errno.h>
#include <stdio.h>
#include <unistd.h>

#include <string>

#include "units.h"

#include "../nscldaq_check.h"

int main()
{
    const std::string ring = "nscldaq-units-" + std::to_string(getpid());
    try {
        // Set here, used there: the (4096, 2) row of the layout table has 8064 data bytes.
        CRingBuffer::setDefaultRingSize(4096);
        CRingBuffer::setDefaultMaxConsumers(2);
        CHECK(otherDefaultRingSize() == 4096 && otherDefaultMaxConsumers() == 2);
        createWithDefaults(ring);
        {
            CRingBuffer manager(ring, CRingBuffer::manager);
            CRingBuffer::Usage usage = manager.getUsage();
            CHECK(usage.s_bufferSpace == 8064 && usage.s_maxConsumers == 2);
        }
        // Set there, seen here.
        setOtherDefaults(65536, 3);
        CHECK(CRingBuffer::getDefaultRingSize() == 65536 && CRingBuffer::getDefaultMaxConsumers() == 3);
        setOtherRemoteSettings(1000, 5);
        CHECK(CRingAccess::getMinData() == 1000 && CRingAccess::getTimeout() == 5);

        // Thrown there, caught here by its own class and by the base class.
        try {
            attachMissing(ring + "-missing");
            CHECK(!"attached to a missing ring");
        } catch (CErrnoException& e) {
            CHECK(e.ReasonCode() == ENOENT);
        }
        try {
            putAsConsumer(ring);
            CHECK(!"a consumer put");
        } catch (CStateException& e) {
            CHECK(e.ReasonCode() == -1);
        }
        try {
            throwPortManagerException();
            CHECK(!"nothing thrown");
        } catch (CException& e) {
            CHECK(e.ReasonCode() == CPortManagerException::NoPorts);
        }
    } catch (CException& e) {
        fprintf(stderr, "unexpected exception: %s: %s\n", e.ReasonText(), e.WasDoing());
        failures++;
    }
    if (CRingBuffer::isRing(ring)) CRingBuffer::remove(ring);
    if (failures) fprintf(stderr, "%d check(s) failed\n", failures);
    return failures ? 1 : 0;
}
