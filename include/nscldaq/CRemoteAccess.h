// CRingAccess: NSCLDAQ's access to rings by URL, tcp://host/ring, reimplemented inline
// over daqflow's C ABI (daqflow.h).
//
// daqConsumeFrom(url) returns a consumer (a CRingBuffer the caller deletes): of the
// ring itself when host is this host, else of the local proxy ring <fully qualified
// host>.<ring>, created when missing (with the proxy size and consumer slots set here)
// and fed from the other host's ring master. Errors throw CErrnoException with the
// errno: EINVAL not a tcp:// URL, EHOSTUNREACH unknown host, ECONNREFUSED no ring
// master there, ENOENT no such ring, EPERM that host does not let this one read it,
// plus those of the CRingBuffer constructor.
//
// Differences from NSCLDAQ's class, all deliberate:
// - The proxy is fed by daqflow's feeder (see docs/remote.md), which copies whole ring
//   items as soon as they arrive, not by stdintoring: MinData and Timeout (the chunk
//   size and read timeout NSCLDAQ passed to stdintoring) are kept and reported by their
//   getters but change nothing.
// - daqConsumeFrom waits until the feeder has reached the other host's ring (or says why
//   it cannot) and throws then, instead of returning a consumer of a proxy that will
//   never be fed; a feeder that dies later is restarted while its consumers wait.
// - A malformed URL throws CErrnoException (EINVAL), not NSCLDAQ's CURIFormatException.
// - setProxyMaxConsumers() beyond 4294967295 (a ring's limit) throws CRangeError.
#ifndef DAQFLOW_NSCLDAQ_CREMOTEACCESS_H
#define DAQFLOW_NSCLDAQ_CREMOTEACCESS_H

#include <daqflow.h>

#include "CRingBuffer.h"
#include "ErrnoException.h"
#include "RangeError.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <strings.h>
#include <unistd.h>

#include <string>

class CRingAccess
{
    static size_t& minData()
    {
        static size_t value = 32 * 1024;
        return value;
    }
    static unsigned& timeout()
    {
        static unsigned value = 2;
        return value;
    }

public:
    // Data bytes of proxy rings this process creates from now on; returns the old value.
    static size_t setProxyRingSize(size_t newSize)
    {
        size_t old = getProxyRingSize();
        ring_set_proxy_geometry(newSize, static_cast<uint32_t>(getProxyMaxConsumers()));
        return old;
    }
    static size_t getProxyRingSize()
    {
        uint64_t bytes = 0;
        ring_proxy_geometry(&bytes, 0);
        return static_cast<size_t>(bytes);
    }

    // Consumer slots of proxy rings this process creates from now on; returns the old value.
    static size_t setProxyMaxConsumers(size_t newMax)
    {
        if (newMax > UINT32_MAX)
            throw CRangeError(0, INT_MAX, newMax > INT_MAX ? INT_MAX : static_cast<int>(newMax),
                              "CRingAccess::setProxyMaxConsumers: a ring has at most 4294967295 consumer slots");
        size_t old = getProxyMaxConsumers();
        ring_set_proxy_geometry(getProxyRingSize(), static_cast<uint32_t>(newMax));
        return old;
    }
    static size_t getProxyMaxConsumers()
    {
        uint32_t consumers = 0;
        ring_proxy_geometry(0, &consumers);
        return consumers;
    }

    // Kept for NSCLDAQ programs; daqflow's feeder has no use for them (see above).
    static size_t setMinData(size_t newMinData)
    {
        size_t old = minData();
        minData() = newMinData;
        return old;
    }
    static size_t getMinData() { return minData(); }
    static unsigned setTimeout(unsigned newTimeout)
    {
        unsigned old = timeout();
        timeout() = newTimeout;
        return old;
    }
    static unsigned getTimeout() { return timeout(); }

    // A consumer of the ring `uri` names (tcp://host/ring); the caller deletes it.
    static CRingBuffer* daqConsumeFrom(std::string uri)
    {
        static const char scheme[] = "tcp://";
        if (uri.size() < sizeof scheme || strncasecmp(uri.c_str(), scheme, sizeof scheme - 1) != 0) {
            errno = EINVAL;
            throw CErrnoException("CRingAccess::daqConsumeFrom " + uri + ": not a ring URL (tcp://host/ring)");
        }
        return new CRingBuffer(uri, CRingBuffer::consumer);
    }

    // Whether `host` is this host (localhost, one of its names or addresses); false
    // also for a host that does not resolve.
    static bool local(std::string host) { return ring_host_is_local(host.c_str()) == 1; }
};

#endif
