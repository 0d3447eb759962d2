// CPortManager: NSCLDAQ's C++ client of the port manager (daqportmgr, or NSCLDAQ's own
// DaqPortManager), reimplemented inline over daqflow's C ABI (portmgr_* in daqflow.h).
//
// A program asks for a TCP port to listen on under a service name with allocatePort();
// anyone may list the allocations on any host with getPortUsage(). Every failure throws
// CPortManagerException (never an abort: NSCLDAQ's class hit an assert on a FAIL reply).
//
// WHAT DESTRUCTION DOES TO HELD PORTS
// A port stays allocated for as long as the connection that allocated it stays open.
// NSCLDAQ documented that destroying a CPortManager keeps its ports (programs allocate a
// port once and listen on it for the rest of their life), but its destructor in fact
// closed the connection and so gave them back; programs leaked `new CPortManager` to
// keep their ports. Here destruction does what was documented:
// - Destroying a CPortManager that allocated ports leaves its connection open, so the
//   ports stay allocated until the process exits (or execs: the connection is
//   close-on-exec). The connection is kept in a process-wide list, not leaked.
// - To give the ports back earlier, call releasePorts() (a daqflow addition) before
//   destruction.
// - A CPortManager that holds no ports keeps no connection; destroying it does nothing.
// - If the connection breaks (the server stops, a reply never comes, the server refuses
//   a non-local client), the server has released that connection's ports; the next
//   allocatePort() opens a new connection.
// - A child made by fork() shares the open connection; the ports are released when
//   the last process holding it exits.
// The destructor never throws.
//
// Other differences from NSCLDAQ's class:
// - The default port is read from the port file daqportmgr writes
//   ($DAQPORTMGR_PORTFILE, else /var/tmp/daqportmgr/listen.port), else 30000. NSCLDAQ
//   read a misspelt directory and always used 30000. If the file does not hold a port
//   number, connecting throws ConnectionFailed saying so.
// - Application names are quoted for the server, so names with spaces work as they are.
//   NSCLDAQ's class sent the name unquoted and asked callers to brace a name with spaces
//   themselves ("{my app}"); such a name is unbraced here, so that it is registered as
//   "my app", as before. Any other name is taken literally.
// - IPv6 hosts work.
#ifndef DAQFLOW_NSCLDAQ_CPORTMANAGER_H
#define DAQFLOW_NSCLDAQ_CPORTMANAGER_H

#include <daqflow.h>

#include "CPortManagerException.h"
#include "daqflow_nscldaq_detail.h"

#include <errno.h>
#include <sys/types.h>
#include <unistd.h>

#include <mutex>
#include <string>
#include <vector>

namespace daqflow_nscldaq {

// Keeps connections that hold ports of destroyed CPortManagers open until the process
// exits. Never throws: if the list cannot grow, the connection simply stays open.
inline void keep_until_exit(portmgr* connection) noexcept
{
    static std::mutex lock;
    try {
        static std::vector<portmgr*>* kept = new std::vector<portmgr*>;  // outlives static destructors
        std::lock_guard<std::mutex> hold(lock);
        kept->push_back(connection);
    } catch (...) {
    }
}

// `name` without its outer braces when it is one brace-quoted Tcl word ("{my app}"),
// else `name` as it is.
inline std::string unbraced(const std::string& name)
{
    if (name.size() < 2 || name[0] != '{') return name;
    size_t depth = 0;
    for (size_t i = 0; i < name.size(); ++i) {
        if (name[i] == '\\') {
            ++i;  // an escaped brace does not count
        } else if (name[i] == '{') {
            ++depth;
        } else if (name[i] == '}' && --depth == 0) {
            return i == name.size() - 1 ? name.substr(1, name.size() - 2) : name;
        }
    }
    return name;
}

}  // namespace daqflow_nscldaq

class CPortManager
{
public:
    typedef struct _portInfo {
        int s_Port;
        std::string s_Application;  // as listed: a second allocation of one name is name_1
        std::string s_User;
    } portInfo;

private:
    std::string m_sHost;
    int m_nPort;         // 0: the port file could not be read (connecting says why)
    portmgr* m_holder;   // the connection holding this object's ports, or NULL

    CPortManager(const CPortManager&);
    CPortManager& operator=(const CPortManager&);

    static int defaultPort()
    {
        int port = portmgr_default_port();
        return port > 0 ? port : 0;
    }

public:
    CPortManager(std::string host = std::string("localhost")) : m_sHost(host), m_nPort(defaultPort()), m_holder(0) {}
    CPortManager(std::string host, int Port) : m_sHost(host), m_nPort(Port), m_holder(0) {}

    // See "What destruction does to held ports" above.
    ~CPortManager()
    {
        if (m_holder) daqflow_nscldaq::keep_until_exit(m_holder);
    }

    // Equal when they talk to the same server: same host name and port.
    int operator==(const CPortManager& rhs) const { return m_sHost == rhs.m_sHost && m_nPort == rhs.m_nPort; }
    int operator!=(const CPortManager& rhs) const { return !operator==(rhs); }

    // Allocates a port for `application` under the calling user's name. Throws NoPorts
    // when the server has none free, NotLocal when the server is on another host,
    // ConnectionFailed otherwise.
    int allocatePort(std::string application)
    {
        const bool fresh = m_holder == 0;
        if (fresh) m_holder = connect("Allocating a port for " + application);
        int port = 0;
        int rc = portmgr_allocate(m_holder, daqflow_nscldaq::unbraced(application).c_str(), &port);
        if (rc == 0) return port;

        std::string why = daqflow_last_error();
        CPortManagerException::Reason reason = rc == -EADDRNOTAVAIL ? CPortManagerException::NoPorts
                                               : rc == -EPERM       ? CPortManagerException::NotLocal
                                                                    : CPortManagerException::ConnectionFailed;
        // A refusal may leave the connection usable; the server closes it for a non-local
        // client (FRIB's portman after every refusal), and other failures break it.
        bool usable = portmgr_usable(m_holder) == 1;
        if (fresh || !usable) releasePorts();
        throw CPortManagerException(m_sHost, reason, "Attempting to allocate a port: " + why);
    }

    // Every allocation on the server, in the server's order. Throws ConnectionFailed.
    std::vector<portInfo> getPortUsage()
    {
        portmgr* connection = m_holder ? m_holder : connect("Getting port usage list from server");
        portmgr_allocation* list = 0;
        size_t count = 0;
        int rc = portmgr_list(connection, &list, &count);
        if (rc < 0) {
            std::string why = daqflow_last_error();
            // A failed LIST shuts the connection down (with the ports it held).
            if (connection == m_holder) releasePorts();
            else portmgr_close(connection);
            throw CPortManagerException(m_sHost, CPortManagerException::ConnectionFailed,
                                        "Getting port usage list from server: " + why);
        }
        std::vector<portInfo> result;
        try {
            for (size_t i = 0; i < count; ++i) {
                portInfo info;
                info.s_Port = list[i].port;
                info.s_Application = list[i].application;
                info.s_User = list[i].user;
                result.push_back(info);
            }
        } catch (...) {
            portmgr_list_free(list, count);
            if (connection != m_holder) portmgr_close(connection);
            throw;
        }
        portmgr_list_free(list, count);
        if (connection != m_holder) portmgr_close(connection);
        return result;
    }

    // The name allocations are made under: the effective user's login name, or the
    // decimal uid when it has none.
    static std::string GetUsername()
    {
        return daqflow_nscldaq::user_name(geteuid());
    }

    // daqflow addition: closes the connection now, so the server releases every port
    // this object allocated. Harmless when it holds none.
    void releasePorts() noexcept
    {
        portmgr_close(m_holder);
        m_holder = 0;
    }

private:
    portmgr* connect(const std::string& doing)
    {
        portmgr* connection = 0;
        int rc = portmgr_open(m_sHost.c_str(), m_nPort, &connection);
        if (rc < 0)
            throw CPortManagerException(m_sHost, CPortManagerException::ConnectionFailed,
                                        doing + ": " + daqflow_last_error());
        return connection;
    }
};

#endif
