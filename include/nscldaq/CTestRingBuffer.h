// CTestRingBuffer: NSCLDAQ's stand-in ring for unit tests of code that puts to or gets
// from a CRingBuffer. It attaches to a real ring (as a consumer, so the ring must exist),
// but put() appends to a private buffer and get(), peek(), skip() and availableData()
// read from it, in order; nothing goes through the ring. getBuffer() shows what is
// buffered. Reading more than is buffered throws std::runtime_error.
#ifndef DAQFLOW_NSCLDAQ_CTESTRINGBUFFER_H
#define DAQFLOW_NSCLDAQ_CTESTRINGBUFFER_H

#include "CRingBuffer.h"

#include <limits.h>
#include <string.h>

#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

class CTestRingBuffer : public CRingBuffer
{
    std::vector<char> m_buffer;

public:
    CTestRingBuffer(std::string name) : CRingBuffer(name) {}

    // Appends the bytes; never blocks.
    size_t put(const void* pBuffer, size_t nBytes, unsigned long timeout = ULONG_MAX)
    {
        (void)timeout;
        const char* bytes = static_cast<const char*>(pBuffer);
        m_buffer.insert(m_buffer.end(), bytes, bytes + nBytes);
        return nBytes;
    }

    // Takes what is buffered, up to maxBytes; std::runtime_error when fewer than
    // minBytes are buffered.
    size_t get(void* pBuffer, size_t maxBytes, size_t minBytes = 1, unsigned long timeout = ULONG_MAX)
    {
        (void)timeout;
        if (minBytes > m_buffer.size())
            throw std::runtime_error("CTestRingBuffer::get() Insufficient data to satisfy request");
        size_t n = std::min(m_buffer.size(), maxBytes);
        read(static_cast<char*>(pBuffer), n);
        return n;
    }

    size_t peek(void* pBuffer, size_t maxBytes)
    {
        size_t n = std::min(maxBytes, m_buffer.size());
        if (n) memcpy(pBuffer, m_buffer.data(), n);
        return n;
    }

    void skip(size_t nBytes)
    {
        std::vector<char> discarded(nBytes);
        read(discarded.data(), nBytes);
    }

    size_t availableData() { return m_buffer.size(); }

    void pollblock() {}

    const std::vector<char>& getBuffer() const { return m_buffer; }

private:
    // Moves the first nBytes out of the buffer; std::runtime_error when fewer are there.
    virtual void read(char* pBuffer, size_t nBytes)
    {
        if (m_buffer.size() < nBytes)
            throw std::runtime_error("CTestRingBuffer::read() does not have requested bytes stored");
        if (nBytes) memcpy(pBuffer, m_buffer.data(), nBytes);
        m_buffer.erase(m_buffer.begin(), m_buffer.begin() + static_cast<std::ptrdiff_t>(nBytes));
    }
};

#endif
