// CRingMaster: NSCLDAQ's C++ client of a host's ring master (daqflow's ringmaster or
// NSCLDAQ's RingMaster), reimplemented inline over daqflow's C ABI (ringmaster_* in
// daqflow.h).
//
// The ring master is found as the RingMaster service of the host's port manager. Only
// this host's ring master, reached as localhost (127.0.0.1), takes notifications
// (notify*); any host's lists its rings (requestUsage) and streams a ring's data
// (requestData). Errors throw what NSCLDAQ threw:
// - CErrnoException when no answer comes: no port manager or no ring master
//   (ECONNREFUSED), an unknown host (EHOSTUNREACH), a notification to another host's
//   ring master (ENOTSUP, nothing sent), a connection that now carries ring data
//   (EACCES), a lost connection (its errno);
// - std::string when the ring master answers something other than what was asked for
//   (a refusal such as "ERROR ... does not exist").
//
// Differences from NSCLDAQ's class, all deliberate:
// - Every exchange is time-boxed (5 s, also finding the ring master): a ring master
//   that stalls costs an exception, not a hang.
// - After a failed exchange the connection is shut down and later calls throw
//   CErrnoException (EPIPE): a late reply can never be taken for the next answer.
// - A comment containing braces, backslashes or control characters is refused
//   (CErrnoException, EINVAL) instead of sent, where it would break the request line.
// - A host whose port manager does not answer throws CErrnoException (ECONNREFUSED, the
//   same as a port manager that lists no ring master); NSCLDAQ's threw its port
//   manager client's CPortManagerException there.
// - The destructor never throws.
#ifndef DAQFLOW_NSCLDAQ_CRINGMASTER_H
#define DAQFLOW_NSCLDAQ_CRINGMASTER_H

#include <daqflow.h>

#include "ErrnoException.h"

#include <errno.h>

#include <string>

class CRingBuffer;

class CRingMaster
{
    ringmaster* m_master;

    CRingMaster(const CRingMaster&);
    CRingMaster& operator=(const CRingMaster&);
    int operator==(const CRingMaster&);
    int operator!=(const CRingMaster&);

public:
    // Connects to the ring master of `host`.
    CRingMaster(std::string host = std::string("localhost")) : m_master(0)
    {
        check(ringmaster_open(host.c_str(), &m_master), "CRingMaster::CRingMaster " + host);
    }

    // Closes the connection; a data socket from requestData() stays the caller's.
    virtual ~CRingMaster() { ringmaster_close(m_master); }

    // --- Notifications (this host's ring master only) ---

    // This process has become consumer `id` (its slot) of ring `ringname`.
    void notifyConsumerConnection(std::string ringname, int id, std::string comment)
    {
        check(ringmaster_notify_connect(m_master, ringname.c_str(), slotOf(id), comment.c_str()),
              "CRingMaster::notifyConsumerConnection " + ringname);
    }
    // This process has become the producer of ring `ringname`.
    void notifyProducerConnection(std::string ringname, std::string comment)
    {
        check(ringmaster_notify_connect(m_master, ringname.c_str(), -1, comment.c_str()),
              "CRingMaster::notifyProducerConnection " + ringname);
    }
    void notifyConsumerDisconnection(std::string ringname, int slot)
    {
        check(ringmaster_notify_disconnect(m_master, ringname.c_str(), slotOf(slot)),
              "CRingMaster::notifyConsumerDisconnection " + ringname);
    }
    void notifyProducerDisconnection(std::string ringname)
    {
        check(ringmaster_notify_disconnect(m_master, ringname.c_str(), -1),
              "CRingMaster::notifyProducerDisconnection " + ringname);
    }
    // Ring `ringname` was created (REGISTER).
    void notifyCreate(std::string ringname)
    {
        check(ringmaster_notify_create(m_master, ringname.c_str()), "CRingMaster::notifyCreate " + ringname);
    }
    // Ring `ringname` is about to be removed (UNREGISTER).
    void notifyDestroy(std::string ringname)
    {
        check(ringmaster_notify_destroy(m_master, ringname.c_str()), "CRingMaster::notifyDestroy " + ringname);
    }

    // --- Any host's ring master ---

    // Asks for the data of ring `ringname`: returns a connected socket that carries every
    // byte put into the ring from about now on. The socket is the caller's to read and
    // close; this object can do nothing more (CErrnoException, EACCES).
    int requestData(std::string ringname)
    {
        int fd = -1;
        check(ringmaster_request_data(m_master, ringname.c_str(), &fd), "CRingMaster::requestData " + ringname,
              "On request data transaction, expected reply OK got : ");
        return fd;
    }

    // The ring master's LIST: one line, a Tcl list of {name {size free maxConsumers
    // producerPid maxBacklog minBacklog {{pid backlog} ...}}}, ending in CR LF as
    // NSCLDAQ's class returned it.
    std::string requestUsage()
    {
        const char* text = 0;
        check(ringmaster_usage(m_master, &text), "CRingMaster::requestUsage", "LIST command did not return OK but: ");
        return std::string(text) + "\r\n";
    }

private:
    static int slotOf(int id)
    {
        // A negative slot would read as the producer (-1) or be refused: neither is what
        // was asked, so it goes to the ring master as NSCLDAQ sent it, never.
        if (id < 0) {
            errno = EINVAL;
            throw CErrnoException("CRingMaster: consumer slot " + std::to_string(id) + " is negative");
        }
        return id;
    }

    // Turns a failed call into NSCLDAQ's exception: the ring master's own reply as a
    // std::string (prefixed with `replyPrefix`, by default NSCLDAQ's "Invalid response"
    // form), anything else as a CErrnoException.
    void check(int rc, const std::string& doing, const char* replyPrefix = "")
    {
        if (rc >= 0) return;
        const char* reply = 0;
        if (m_master && ringmaster_refusal(m_master, &reply) == 1) {
            if (*replyPrefix) throw std::string(replyPrefix) + reply;
            throw "Invalid response: " + std::string(reply) + " when expecting 'OK'";
        }
        std::string action = doing + ": " + daqflow_last_error();
        errno = -rc;
        throw CErrnoException(action);
    }
};

#endif
