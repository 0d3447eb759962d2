// CStateException: an operation the object's state forbids, such as a put on a ring
// attached as a consumer, or any transfer after someone else freed this client's slot.
// ReasonText() names the state and the states that would have allowed it;
// ReasonCode() is always -1.
#ifndef DAQFLOW_NSCLDAQ_STATEEXCEPTION_H
#define DAQFLOW_NSCLDAQ_STATEEXCEPTION_H

#include "Exception.h"

#include <string>

class CStateException : public CException
{
    std::string m_Reason;

public:
    CStateException(const char* state, const char* allowedStates, const char* pAction)
        : CException(pAction),
          m_Reason(std::string("Invalid state: ") + (state ? state : "") + "; allowed: " +
                   (allowedStates ? allowedStates : ""))
    {
    }
    virtual ~CStateException() {}

    int operator==(const CStateException& rhs) const
    {
        return CException::operator==(rhs) && m_Reason == rhs.m_Reason;
    }
    int operator!=(const CStateException& rhs) const { return !operator==(rhs); }

    virtual const char* ReasonText() const { return m_Reason.c_str(); }
    virtual int ReasonCode() const { return -1; }
};

#endif
