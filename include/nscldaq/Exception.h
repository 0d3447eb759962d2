// CException: the base of NSCLDAQ's exception classes (daqflow's own implementation of
// the interface legacy code catches). Everything thrown by CRingBuffer and CPortManager
// derives from it, so `catch (CException& e)` sees them all.
//
//   WasDoing()   what the thrower was doing (the action given to the constructor)
//   ReasonText() why it failed, in words (depends on the derived class)
//   ReasonCode() why it failed, as a number (an errno for CErrnoException)
//
// As in NSCLDAQ it does not derive from std::exception, so existing chains of catch
// clauses keep choosing the same handler.
#ifndef DAQFLOW_NSCLDAQ_EXCEPTION_H
#define DAQFLOW_NSCLDAQ_EXCEPTION_H

#include <string>

// The size of NSCLDAQ's action buffer, which legacy code uses for its own buffers. The
// action text here has no such limit.
#ifndef kACTIONSIZE
#define kACTIONSIZE 1024
#endif

class CException
{
    std::string m_action;

public:
    CException(const char* pszAction) : m_action(pszAction ? pszAction : "") {}
    CException(const std::string& rsAction) : m_action(rsAction) {}
    CException(const CException& rhs) : m_action(rhs.m_action) {}
    virtual ~CException() {}

    CException& operator=(const CException& rhs)
    {
        if (this != &rhs) DoAssign(rhs);
        return *this;
    }
    int operator==(const CException& rhs) const { return m_action == rhs.m_action; }
    int operator!=(const CException& rhs) const { return !operator==(rhs); }

    const char* getAction() const { return m_action.c_str(); }
    const char* WasDoing() const { return m_action.c_str(); }

    virtual const char* ReasonText() const { return "Unspecified Exception"; }
    virtual int ReasonCode() const { return -1; }

protected:
    void setAction(const char* pszAction) { m_action = pszAction ? pszAction : ""; }
    void setAction(const std::string& rsAction) { m_action = rsAction; }
    virtual void DoAssign(const CException& rhs) { m_action = rhs.m_action; }
};

#endif
