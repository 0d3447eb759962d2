// CPortManagerException: what CPortManager throws. ReasonCode() is a Reason:
//   NoPorts          the server has no free port left
//   NotLocal         the server gives ports only to programs on its own host
//   ConnectionFailed anything else: no server, a broken connection, a reply that is not
//                    the protocol; WasDoing() then says what and why
#ifndef DAQFLOW_NSCLDAQ_CPORTMANAGEREXCEPTION_H
#define DAQFLOW_NSCLDAQ_CPORTMANAGEREXCEPTION_H

#include "Exception.h"

#include <ostream>
#include <string>

class CPortManagerException : public CException
{
public:
    typedef enum { NoPorts, NotLocal, ConnectionFailed } Reason;

private:
    std::string m_sHost;
    Reason m_eReason;
    std::string m_sReasonText;

public:
    CPortManagerException(std::string host, Reason why, std::string doing)
        : CException(doing), m_sHost(host), m_eReason(why),
          m_sReasonText("Exception thrown in port manager communicating with " + host + " : " +
                        ReasonCodeToText(why))
    {
    }
    virtual ~CPortManagerException() {}

    int operator==(const CPortManagerException& rhs) const
    {
        return CException::operator==(rhs) && m_sHost == rhs.m_sHost && m_eReason == rhs.m_eReason;
    }
    int operator!=(const CPortManagerException& rhs) const { return !operator==(rhs); }

    virtual const char* ReasonText() const { return m_sReasonText.c_str(); }
    virtual int ReasonCode() const { return m_eReason; }

    static std::string ReasonCodeToText(int code)
    {
        switch (code) {
        case NoPorts: return "No Ports Available";
        case NotLocal: return "Only clients local to the server can allocate ports";
        case ConnectionFailed: return "Connection to port management server failed";
        }
        return "ReasonCodeToText: Invalid reason code";
    }
};

inline std::ostream& operator<<(std::ostream& f, const CPortManagerException& e)
{
    return f << e.ReasonText() << " : " << e.WasDoing();
}

#endif
