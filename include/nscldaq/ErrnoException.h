// CErrnoException: a failed system-level operation. ReasonCode() is the errno value
// current when the exception was constructed (also getErrno(); derived classes may
// setErrno()) and ReasonText() its strerror text, so code written for NSCLDAQ can test
// `e.ReasonCode() == ENOENT`.
#ifndef DAQFLOW_NSCLDAQ_ERRNOEXCEPTION_H
#define DAQFLOW_NSCLDAQ_ERRNOEXCEPTION_H

#include "Exception.h"

#include <errno.h>
#include <string.h>
#include <string>

namespace daqflow_nscldaq {

// strerror_r comes in two flavours (GNU returns the text, XSI fills the buffer and
// returns a status); overloads on the result type accept whichever the C library has.
inline const char* strerror_text(const char* text, const char*) { return text; }
inline const char* strerror_text(int status, const char* buffer) { return status == 0 ? buffer : "Unknown error"; }

inline std::string errno_text(int error)
{
    char buffer[256] = "";
    return strerror_text(strerror_r(error, buffer, sizeof buffer), buffer);
}

}  // namespace daqflow_nscldaq

class CErrnoException : public CException
{
    int m_nErrno;
    std::string m_reason;

    // errno is read before the base class copies the action: allocating may change it.
    CErrnoException(int error, const char* pszAction)
        : CException(pszAction), m_nErrno(error), m_reason(daqflow_nscldaq::errno_text(error)) {}
    CErrnoException(int error, const std::string& rsAction)
        : CException(rsAction), m_nErrno(error), m_reason(daqflow_nscldaq::errno_text(error)) {}

public:
    CErrnoException(const char* pszAction) : CErrnoException(errno, pszAction) {}
    CErrnoException(const std::string& rsAction) : CErrnoException(errno, rsAction) {}
    virtual ~CErrnoException() {}

    int operator==(const CErrnoException& rhs) const
    {
        return CException::operator==(rhs) && m_nErrno == rhs.m_nErrno;
    }
    int operator!=(const CErrnoException& rhs) const { return !operator==(rhs); }

    int getErrno() const { return m_nErrno; }

    virtual const char* ReasonText() const { return m_reason.c_str(); }
    virtual int ReasonCode() const { return m_nErrno; }

protected:
    void setErrno(int error)
    {
        m_nErrno = error;
        m_reason = daqflow_nscldaq::errno_text(error);
    }
};

#endif
