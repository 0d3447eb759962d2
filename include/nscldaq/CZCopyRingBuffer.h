// CZCopyRingBuffer: NSCLDAQ's nearly zero-copy reading of a consumer CRingBuffer,
// reimplemented inline over CRingBuffer.
//
// get(n) waits until n bytes are available and returns a pointer to them in ring memory,
// or, when they wrap past the top of the ring, to a private copy; done() consumes them.
// Repeated get() calls without done() return the same bytes (so a caller may read an
// item's size first and then get the whole item). The caller must not write through
// the pointer, and it is valid until done().
//
// Differences from NSCLDAQ's class, all deliberate:
// - get() sleeps until the data arrive (NSCLDAQ polled every 100 us), and n beyond the
//   most the ring can ever hold throws CRangeError instead of waiting forever.
// - A wrapping item is copied without consuming it, as NSCLDAQ documented: NSCLDAQ's
//   class consumed it while copying, so done() then skipped as many bytes again, and a
//   second get() returned the next item.
#ifndef DAQFLOW_NSCLDAQ_CZCOPYRINGBUFFER_H
#define DAQFLOW_NSCLDAQ_CZCOPYRINGBUFFER_H

#include "CRingBuffer.h"

#include <limits.h>
#include <stddef.h>

#include <vector>

class CZCopyRingBuffer
{
    CRingBuffer* m_pRing;
    std::vector<char> m_local;  // a wrapping item's copy
    size_t m_nLastSize;         // what done() consumes

    CZCopyRingBuffer(const CZCopyRingBuffer&);
    CZCopyRingBuffer& operator=(const CZCopyRingBuffer&);

public:
    // Reads through pRing, a consumer, which stays the caller's.
    CZCopyRingBuffer(CRingBuffer* pRing) : m_pRing(pRing), m_nLastSize(0) {}
    virtual ~CZCopyRingBuffer() {}

    // Blocks until nBytes are available; returns where they can be read.
    void* get(size_t nBytes)
    {
        // Asking for no bytes past the minimum waits for the minimum and copies nothing.
        if (m_pRing->availableData() < nBytes) m_pRing->get(0, 0, nBytes, ULONG_MAX);
        void* at;
        if (m_pRing->wouldWrap(nBytes)) {
            m_local.resize(nBytes);
            m_pRing->peek(m_local.data(), nBytes);
            at = m_local.data();
        } else {
            at = m_pRing->getPointer();
        }
        m_nLastSize = nBytes;
        return at;
    }

    // Consumes the bytes the last get() returned.
    void done()
    {
        m_pRing->skip(m_nLastSize);
        m_nLastSize = 0;
    }
};

#endif
