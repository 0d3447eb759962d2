// CRangeError: a value outside the range [low, high] allowed for it (a put larger than
// the ring can ever hold, a consumer slot the ring lacks, ...). ReasonCode() tells which
// side it fell on.
#ifndef DAQFLOW_NSCLDAQ_RANGEERROR_H
#define DAQFLOW_NSCLDAQ_RANGEERROR_H

#include "Exception.h"

#include <string>

class CRangeError : public CException
{
    int m_nLow;
    int m_nHigh;
    int m_nRequested;
    std::string m_reason;

public:
    enum { knTooLow, knTooHigh };

    CRangeError(int nLow, int nHigh, int nRequested, const char* pDoing)
        : CException(pDoing), m_nLow(nLow), m_nHigh(nHigh), m_nRequested(nRequested) { UpdateReason(); }
    CRangeError(int nLow, int nHigh, int nRequested, const std::string& rDoing)
        : CException(rDoing), m_nLow(nLow), m_nHigh(nHigh), m_nRequested(nRequested) { UpdateReason(); }
    virtual ~CRangeError() {}

    int operator==(const CRangeError& rhs) const
    {
        return CException::operator==(rhs) && m_nLow == rhs.m_nLow && m_nHigh == rhs.m_nHigh &&
               m_nRequested == rhs.m_nRequested;
    }
    int operator!=(const CRangeError& rhs) const { return !operator==(rhs); }

    int getLow() const { return m_nLow; }
    int getHigh() const { return m_nHigh; }
    int getRequested() const { return m_nRequested; }

    virtual const char* ReasonText() const { return m_reason.c_str(); }
    // knTooHigh or knTooLow; -1 for a value that is in fact inside the range (NSCLDAQ
    // aborted the program there).
    virtual int ReasonCode() const
    {
        if (m_nRequested > m_nHigh) return knTooHigh;
        if (m_nRequested < m_nLow) return knTooLow;
        return -1;
    }

protected:
    void setLow(int value) { m_nLow = value; UpdateReason(); }
    void setHigh(int value) { m_nHigh = value; UpdateReason(); }
    void setRequested(int value) { m_nRequested = value; UpdateReason(); }
    void UpdateReason()
    {
        m_reason = "Range error: " + std::to_string(m_nRequested) + " is outside the range [" +
                   std::to_string(m_nLow) + ".." + std::to_string(m_nHigh) + "]";
    }
};

#endif
