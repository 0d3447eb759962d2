// The second translation unit of nscldaq_two_units (see main.cpp).
#include <CException.h>
#include <CErrnoException.h>
#include <CRangeError.h>
#include <CStateException.h>
#include <CRingBuffer.h>
#include <CPortManagerException.h>
#include <CPortManager.h>
#include <CTestRingBuffer.h>
#include <CZCopyRingBuffer.h>
#include <CRingMaster.h>
#include <CRemoteAccess.h>

#include "units.h"

size_t otherDefaultRingSize() { return CRingBuffer::getDefaultRingSize(); }
size_t otherDefaultMaxConsumers() { return CRingBuffer::getDefaultMaxConsumers(); }

void setOtherDefaults(size_t bytes, size_t consumers)
{
    CRingBuffer::setDefaultRingSize(bytes);
    CRingBuffer::setDefaultMaxConsumers(consumers);
}

void setOtherRemoteSettings(size_t minData, unsigned timeout)
{
    CRingAccess::setMinData(minData);
    CRingAccess::setTimeout(timeout);
}

void createWithDefaults(const std::string& ring) { CRingBuffer::create(ring); }

void attachMissing(const std::string& ring) { CRingBuffer missing(ring); }

void putAsConsumer(const std::string& ring)
{
    CRingBuffer consumer(ring);
    consumer.put("x", 1);
}

void throwPortManagerException()
{
    throw CPortManagerException("localhost", CPortManagerException::NoPorts, "testing");
}
