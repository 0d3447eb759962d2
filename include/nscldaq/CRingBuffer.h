// CRingBuffer: NSCLDAQ's C++ ring buffer class, reimplemented inline over daqflow's C
// ABI (daqflow.h) so that existing readout programs build unchanged and share rings with
// NSCLDAQ and daqflow programs alike.
//
// Differences from NSCLDAQ's class, all deliberate:
// - put() and get() sleep until data or space arrives instead of polling; the poll
//   interval only paces blockWhile() and pollblock().
// - Timeouts are measured in milliseconds from the call (NSCLDAQ compared time() seconds,
//   so a 1 s timeout could end after 0.3 s). ULONG_MAX waits forever, 0 never blocks.
// - Impossible requests throw CRangeError instead of blocking forever: put(n) with
//   n > data bytes - 1 (the most a ring can ever hold), get() with minBytes above that,
//   skip(n) past the available data (NSCLDAQ skipped into unread or unwritten bytes),
//   and a producer's skip(n) beyond the free space.
// - A client whose slot someone else freed gets CStateException from every transfer
//   and from availableData() and availablePutSpace(), which legacy code polls without
//   a timeout (NSCLDAQ went on counting; answering 0 would make such code wait for ever).
// - create() with 0 consumers is refused (EINVAL); 0 data bytes makes the smallest ring,
//   as in NSCLDAQ. The tempMasterConnection argument is accepted and unused: daqflow
//   rings need no ring master to be created or attached.
// - availableData() is 0 for a producer or a manager (NSCLDAQ crashed for a manager).
// - Destructors never throw: they release the slot and ignore any failure.
#ifndef DAQFLOW_NSCLDAQ_CRINGBUFFER_H
#define DAQFLOW_NSCLDAQ_CRINGBUFFER_H

#include <daqflow.h>

#include "ErrnoException.h"
#include "daqflow_nscldaq_detail.h"
#include "RangeError.h"
#include "StateException.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <utility>
#include <vector>

namespace daqflow_nscldaq {

// Throws the CErrnoException NSCLDAQ threw for a failed call: ReasonCode() is the errno
// (rc is a negated errno from the C ABI), WasDoing() what failed and daqflow's account
// of why.
[[noreturn]] inline void throw_errno(int rc, const std::string& doing)
{
    std::string action = doing + ": " + daqflow_last_error();
    errno = -rc;
    throw CErrnoException(action);
}

inline int clamp_int(uint64_t value)
{
    return value > static_cast<uint64_t>(INT_MAX) ? INT_MAX : static_cast<int>(value);
}

// Runs call(timeout_ms) for a timeout given in seconds. Timeouts too long for one int
// of milliseconds are waited for in pieces; ULONG_MAX is forever, as in NSCLDAQ.
template <typename Call>
inline long long wait_seconds(unsigned long seconds, Call call)
{
    if (seconds == ULONG_MAX) return call(-1);
    const unsigned long piece = INT_MAX / 1000;
    for (;;) {
        unsigned long now = seconds < piece ? seconds : piece;
        long long rc = call(static_cast<int>(now * 1000));
        if (rc != -ETIMEDOUT || now == seconds) return rc;
        seconds -= now;
    }
}

}  // namespace daqflow_nscldaq

class CRingBuffer
{
public:
    typedef enum { producer, consumer, manager } ClientMode;

    struct Usage {
        size_t s_bufferSpace;   // data bytes
        size_t s_putSpace;      // what the producer can put without blocking
        size_t s_maxConsumers;
        pid_t s_producer;       // -1: none
        size_t s_maxGetSpace;   // largest consumer backlog (0 without consumers)
        size_t s_minGetSpace;   // smallest consumer backlog (0 without consumers)
        std::vector<std::pair<pid_t, size_t> > s_consumers;  // (pid, backlog), slot order
    };

    // A condition for blockWhile() and While(): they go on while it returns true.
    class CRingBufferPredicate
    {
    public:
        virtual ~CRingBufferPredicate() {}
        virtual bool operator()(CRingBuffer& ring) = 0;
    };

private:
    std::string m_ringName;
    ClientMode m_mode;
    ring_client* m_client;  // NULL for a manager
    unsigned long m_pollInterval;

    CRingBuffer(const CRingBuffer&);
    CRingBuffer& operator=(const CRingBuffer&);

    static size_t& defaultDataSize()
    {
        static size_t value = RING_DEFAULT_DATA_BYTES;
        return value;
    }
    static size_t& defaultMaxConsumers()
    {
        static size_t value = RING_DEFAULT_MAX_CONSUMERS;
        return value;
    }

public:
    // --- Rings as a whole ---

    static void create(std::string name, size_t dataBytes = getDefaultRingSize(),
                       size_t maxConsumer = getDefaultMaxConsumers(), bool tempMasterConnection = false)
    {
        (void)tempMasterConnection;
        std::string doing = "CRingBuffer::create " + name;
        if (maxConsumer == 0 || maxConsumer > UINT32_MAX) {
            errno = EINVAL;
            throw CErrnoException(doing + ": a ring needs 1 to 4294967295 consumer slots");
        }
        // The C ABI reads 0 as "the default size"; NSCLDAQ made the smallest ring.
        uint64_t bytes = dataBytes == 0 ? 1 : dataBytes;
        int rc = ring_create(name.c_str(), bytes, static_cast<uint32_t>(maxConsumer));
        // As NSCLDAQ's: an existing ring that the host's ring master does not list is
        // adopted (registered), and the create succeeds.
        if (rc == -EEXIST && ring_adopt(name.c_str()) == 0) return;
        if (rc < 0) daqflow_nscldaq::throw_errno(rc, doing);
    }

    // Creates the ring unless it exists, then attaches as its producer. The caller
    // deletes the object.
    static CRingBuffer* createAndProduce(std::string name, size_t dataBytes = getDefaultRingSize(),
                                         size_t maxConsumer = getDefaultMaxConsumers(),
                                         bool tempMasterConnection = false)
    {
        if (!isRing(name)) {
            try {
                create(name, dataBytes, maxConsumer, tempMasterConnection);
            } catch (CErrnoException& e) {
                // Another process created it first: produce into theirs.
                if (e.ReasonCode() != EEXIST || !isRing(name)) throw;
            }
        }
        return new CRingBuffer(name, producer);
    }

    static void remove(std::string name)
    {
        int rc = ring_remove(name.c_str());
        if (rc < 0) daqflow_nscldaq::throw_errno(rc, "CRingBuffer::remove " + name);
    }

    // Rewrites the header for maxConsumer slots; EBUSY while clients are attached.
    static void format(std::string name, size_t maxConsumer = getDefaultMaxConsumers())
    {
        std::string doing = "CRingBuffer::format " + name;
        if (maxConsumer == 0 || maxConsumer > UINT32_MAX) {
            errno = EINVAL;
            throw CErrnoException(doing + ": a ring needs 1 to 4294967295 consumer slots");
        }
        int rc = ring_format(name.c_str(), static_cast<uint32_t>(maxConsumer));
        if (rc < 0) daqflow_nscldaq::throw_errno(rc, doing);
    }

    // NSCLDAQ's format without its lock, for callers that held it already. daqflow
    // callers never hold it, so this is format().
    static void unsynchedFormat(std::string name, size_t maxConsumer) { format(name, maxConsumer); }

    static bool isRing(std::string name) { return ring_exists(name.c_str()) == 1; }

    static void setDefaultRingSize(size_t byteCount) { defaultDataSize() = byteCount; }
    static size_t getDefaultRingSize() { return defaultDataSize(); }
    static void setDefaultMaxConsumers(size_t numConsumers) { defaultMaxConsumers() = numConsumers; }
    static size_t getDefaultMaxConsumers() { return defaultMaxConsumers(); }

    // The ring a user's programs use by default: named after the (real) user.
    static std::string defaultRing() { return daqflow_nscldaq::user_name(getuid()); }
    static std::string defaultRingUrl() { return "tcp://localhost/" + defaultRing(); }

    // --- One client ---

    // Attaches to ring `name` as its producer or as a consumer (which sees data put from
    // now on), or as a manager, which holds no slot and may force others' release. A
    // consumer may name a ring on another host, tcp://host/ring (see CRemoteAccess.h).
    // CErrnoException: ENOENT not a ring (also a shared-memory object that is something
    // else), EACCES it has a producer, ENOMEM no free consumer slot, EINVAL an unknown mode.
    CRingBuffer(std::string name, ClientMode mode = consumer)
        : m_ringName(name), m_mode(mode), m_client(0), m_pollInterval(3)
    {
        std::string doing = "CRingBuffer::CRingBuffer " + name;
        int rc;
        switch (mode) {
        case producer:
            rc = ring_attach_producer(name.c_str(), &m_client);
            break;
        case consumer:
            rc = ring_attach_consumer(name.c_str(), &m_client);
            break;
        case manager:
            rc = ring_exists(name.c_str());
            if (rc == 0) {
                errno = ENOENT;
                throw CErrnoException(doing + ": not a ring");
            }
            break;
        default:
            errno = EINVAL;
            throw CErrnoException(doing + ": invalid connection mode");
        }
        // The C ABI says EBADMSG for an object that is not a ring; NSCLDAQ said ENOENT.
        if (rc == -EBADMSG) rc = -ENOENT;
        if (rc < 0) daqflow_nscldaq::throw_errno(rc, doing);
        // A consumer of tcp://host/ring reads a proxy ring (or the ring itself, for this
        // host): usage and management act on that ring, as in NSCLDAQ.
        if (m_client) m_ringName = ring_client_name(m_client);
    }

    // Gives the slot back. Never throws, also when the ring was removed meanwhile or a
    // manager freed the slot.
    virtual ~CRingBuffer() { ring_detach(m_client); }

    // Puts all nBytes or nothing; returns nBytes, or 0 when no space came within
    // `timeout` seconds.
    virtual size_t put(const void* pBuffer, size_t nBytes, unsigned long timeout = ULONG_MAX)
    {
        requireMode(producer, "CRingBuffer::put");
        long long rc = daqflow_nscldaq::wait_seconds(
            timeout, [&](int ms) -> long long { return ring_put(m_client, pBuffer, nBytes, ms); });
        if (rc == -ETIMEDOUT) return 0;
        if (rc == -EMSGSIZE) throwTooBig(nBytes, "CRingBuffer::put");
        check(rc, "CRingBuffer::put");
        return nBytes;
    }

    // daqflow addition (not in NSCLDAQ): puts nRecords records, records[i].iov_base and
    // iov_len, each whole and in order, published together, so many small records cost
    // one wake-up of the consumers instead of one each. `timeout` (seconds) bounds the
    // whole call. Returns how many records were put: nRecords, or fewer (0 included) when
    // the timeout passed first; the rest start at records[returned]. CRangeError, with
    // nothing put, when a record can never fit.
    size_t putv(const struct iovec* records, size_t nRecords, unsigned long timeout = ULONG_MAX)
    {
        requireMode(producer, "CRingBuffer::putv");
        long long rc = daqflow_nscldaq::wait_seconds(
            timeout, [&](int ms) -> long long { return ring_putv(m_client, records, nRecords, ms); });
        if (rc == -ETIMEDOUT) return 0;
        if (rc == -EMSGSIZE) {
            size_t largest = 0;
            for (size_t i = 0; i < nRecords; i++) largest = records[i].iov_len > largest ? records[i].iov_len : largest;
            throwTooBig(largest, "CRingBuffer::putv");
        }
        check(rc, "CRingBuffer::putv");
        return static_cast<size_t>(rc);
    }

    // Waits for at least minBytes, then copies what is there up to maxBytes; returns the
    // count, or 0 when fewer than minBytes came within `timeout` seconds.
    virtual size_t get(void* pBuffer, size_t maxBytes, size_t minBytes = 1, unsigned long timeout = ULONG_MAX)
    {
        requireMode(consumer, "CRingBuffer::get");
        const size_t wanted = minBytes;
        if (minBytes > maxBytes) {
            // NSCLDAQ waited for minBytes and then copied maxBytes: wait without copying.
            ring_span spans[2];
            long long lent = daqflow_nscldaq::wait_seconds(
                timeout, [&](int ms) -> long long { return ring_borrow(m_client, minBytes, minBytes, spans, ms); });
            if (lent == -ETIMEDOUT) return 0;
            if (lent == -EMSGSIZE) throwTooBig(wanted, "CRingBuffer::get");
            check(lent, "CRingBuffer::get");
            check(ring_release(m_client, 0), "CRingBuffer::get");
            minBytes = 0;
        }
        long long rc = daqflow_nscldaq::wait_seconds(
            timeout, [&](int ms) -> long long { return ring_get(m_client, pBuffer, minBytes, maxBytes, ms); });
        if (rc == -ETIMEDOUT) return 0;
        if (rc == -EMSGSIZE) throwTooBig(wanted, "CRingBuffer::get");
        check(rc, "CRingBuffer::get");
        return static_cast<size_t>(rc);
    }

    // Copies up to maxBytes of the available data without consuming it; never blocks.
    virtual size_t peek(void* pBuffer, size_t maxBytes)
    {
        requireMode(consumer, "CRingBuffer::peek");
        long long rc = ring_peek(m_client, pBuffer, maxBytes);
        check(rc, "CRingBuffer::peek");
        return static_cast<size_t>(rc);
    }

    // A consumer: consumes nBytes without copying them. A producer: publishes nBytes
    // written in place at getPointer() (NSCLDAQ's zero-copy put). CRangeError when
    // fewer bytes are available (consumer) or free (producer).
    virtual void skip(size_t nBytes)
    {
        std::string doing = "CRingBuffer::skip " + m_ringName;
        if (m_mode == consumer) {
            int rc = ring_skip(m_client, nBytes);
            if (rc == -ERANGE)
                throw CRangeError(0, daqflow_nscldaq::clamp_int(ring_available_data(m_client)),
                                  daqflow_nscldaq::clamp_int(nBytes), doing);
            check(rc, "CRingBuffer::skip");
        } else if (m_mode == producer) {
            // The bytes are already in place: reserving and committing them publishes
            // them, and only if they fit in the free space.
            ring_span spans[2];
            int rc = ring_reserve(m_client, nBytes, spans, 0);
            if (rc == -ETIMEDOUT || rc == -EMSGSIZE)
                throw CRangeError(0, daqflow_nscldaq::clamp_int(ring_available_put_space(m_client)),
                                  daqflow_nscldaq::clamp_int(nBytes), doing);
            check(rc, "CRingBuffer::skip");
            check(ring_commit(m_client, nBytes), "CRingBuffer::skip");
        } else {
            throw CStateException("manager", "producer or consumer", doing.c_str());
        }
    }

    unsigned long setPollInterval(unsigned long newValue)
    {
        unsigned long old = m_pollInterval;
        m_pollInterval = newValue;
        return old;
    }
    unsigned long getPollInterval() { return m_pollInterval; }

    // --- Zero copy ---

    // Where the next byte will be read (consumer) or written (producer) in ring memory.
    // The bytes are contiguous only up to bytesToTop(); after that the ring continues at
    // its start. Consume or publish with skip().
    void* getPointer() { return position().first; }
    // Whether nBytes from getPointer() reach past the top (a read or write of exactly
    // bytesToTop() bytes counts, as in NSCLDAQ: it leaves the pointer at the start).
    bool wouldWrap(size_t nBytes) { return nBytes >= bytesToTop(); }
    size_t bytesToTop() { return position().second; }

    // --- Inquiry ---

    // A producer or consumer whose slot someone else freed gets CStateException here too
    // (NSCLDAQ went on counting): legacy code polls these without a timeout.
    virtual size_t availablePutSpace()
    {
        if (m_mode != producer) return static_cast<size_t>(usage(0).first.put_space);
        size_t space = static_cast<size_t>(ring_available_put_space(m_client));
        if (space == 0) requireSlot("CRingBuffer::availablePutSpace");
        return space;
    }

    virtual size_t availableData()
    {
        if (m_mode != consumer) return 0;
        size_t data = static_cast<size_t>(ring_available_data(m_client));
        if (data == 0) requireSlot("CRingBuffer::availableData");
        return data;
    }

    Usage getUsage()
    {
        std::pair<ring_usage_info, std::vector<ring_consumer_info> > now = usage(64);
        Usage result;
        result.s_bufferSpace = static_cast<size_t>(now.first.data_bytes);
        result.s_putSpace = static_cast<size_t>(now.first.put_space);
        result.s_maxConsumers = now.first.max_consumers;
        result.s_producer = now.first.producer_pid;
        result.s_maxGetSpace = static_cast<size_t>(now.first.max_get);
        result.s_minGetSpace = static_cast<size_t>(now.first.min_get);
        for (size_t i = 0; i < now.second.size(); ++i)
            result.s_consumers.push_back(std::make_pair(static_cast<pid_t>(now.second[i].pid),
                                                        static_cast<size_t>(now.second[i].backlog)));
        return result;
    }

    // A consumer's slot number; -1 for a producer or a manager.
    off_t getSlot() { return m_mode == consumer ? ring_slot(m_client) : -1; }

    // --- Blocking on a condition ---

    // Re-evaluates pred every poll interval while it holds, for at most `timeout`
    // seconds (0: evaluate once). 0 when pred stopped holding, -1 on timeout.
    int blockWhile(CRingBufferPredicate& pred, unsigned long timeout = ULONG_MAX)
    {
        typedef std::chrono::steady_clock clock;
        const clock::time_point start = clock::now();
        while (pred(*this)) {
            if (timeout != ULONG_MAX &&
                clock::now() - start >= std::chrono::duration<double>(static_cast<double>(timeout)))
                return -1;
            pollblock();
        }
        return 0;
    }

    virtual void pollblock()
    {
        if (m_pollInterval == 0) return;
        struct timespec pause;
        pause.tv_sec = static_cast<time_t>(m_pollInterval / 1000);
        pause.tv_nsec = static_cast<long>(m_pollInterval % 1000) * 1000000L;
        while (nanosleep(&pause, &pause) != 0 && errno == EINTR) {
        }
    }

    // Calls pred until it returns false (e.g. to skip ahead to some data).
    void While(CRingBufferPredicate& pred)
    {
        while (pred(*this)) {
        }
    }

    // --- Management (manager mode only) ---

    void forceProducerRelease()
    {
        requireMode(manager, "CRingBuffer::forceProducerRelease");
        check(ring_disconnect_producer(m_ringName.c_str()), "CRingBuffer::forceProducerRelease");
    }

    void forceConsumerRelease(unsigned slot)
    {
        requireMode(manager, "CRingBuffer::forceConsumerRelease");
        int rc = ring_disconnect_consumer(m_ringName.c_str(), slot);
        if (rc == -ERANGE)
            throw CRangeError(0, daqflow_nscldaq::clamp_int(usage(0).first.max_consumers) - 1,
                              daqflow_nscldaq::clamp_int(slot), "CRingBuffer::forceConsumerRelease " + m_ringName);
        check(rc, "CRingBuffer::forceConsumerRelease");
    }

private:
    static const char* modeName(ClientMode mode)
    {
        switch (mode) {
        case producer: return "producer";
        case consumer: return "consumer";
        case manager: return "manager";
        }
        return "invalid mode";
    }

    void requireMode(ClientMode wanted, const char* doing)
    {
        if (m_mode != wanted)
            throw CStateException(modeName(m_mode), modeName(wanted), (doing + (" " + m_ringName)).c_str());
    }

    // Turns a failed C call into NSCLDAQ's exception: losing the slot to someone else is
    // a state error (as in NSCLDAQ), anything else an errno exception.
    void check(long long rc, const char* doing)
    {
        if (rc >= 0) return;
        std::string what = std::string(doing) + " " + m_ringName;
        if (rc == -ENOTCONN)
            throw CStateException("slot freed by someone else", "attached", (what + ": " + daqflow_last_error()).c_str());
        daqflow_nscldaq::throw_errno(static_cast<int>(rc), what);
    }

    // The ring's usage with room for `capacity` consumers (more when there are more).
    // The counts come from shared memory anyone can write, or, for a tcp:// name, from
    // that host's ring master: they are checked before anything is sized by them.
    std::pair<ring_usage_info, std::vector<ring_consumer_info> > usage(size_t capacity)
    {
        // The second call has room for every slot of the ring; a third is needed only if
        // the ring changed shape in between.
        const int tries = 3;
        std::pair<ring_usage_info, std::vector<ring_consumer_info> > result;
        for (int attempt = 1;; ++attempt) {
            result.second.resize(capacity);
            int n = ring_usage(m_ringName.c_str(), &result.first, capacity ? result.second.data() : 0, capacity);
            check(n, "CRingBuffer::getUsage");
            if (static_cast<size_t>(n) <= capacity || capacity == 0) {
                result.second.resize(capacity ? static_cast<size_t>(n) : 0);
                return result;
            }
            // A ring has at most max_consumers slots in use, and no ring more than
            // RING_MAX_CONSUMERS: room for those is room for all (16 MiB at most).
            const uint32_t slots = result.first.max_consumers;
            if (static_cast<uint32_t>(n) > slots)
                throwHostile("reports " + std::to_string(n) + " consumers in use but has only " +
                             std::to_string(slots) + " consumer slots");
            if (slots > RING_MAX_CONSUMERS)
                throwHostile("claims " + std::to_string(slots) + " consumer slots, more than the " +
                             std::to_string(RING_MAX_CONSUMERS) + " a ring can have");
            if (attempt == tries)
                throwHostile("reported more consumers than its slots at each of " + std::to_string(tries) + " tries");
            capacity = slots;
        }
    }

    // CErrnoException(EBADMSG) for usage counts that no ring can have.
    [[noreturn]] void throwHostile(const std::string& why)
    {
        errno = EBADMSG;
        throw CErrnoException("CRingBuffer::getUsage " + m_ringName + ": the ring " + why);
    }

    // For a transfer larger than the most a ring can ever hold (data bytes - 1).
    [[noreturn]] void throwTooBig(size_t requested, const char* doing)
    {
        int most = daqflow_nscldaq::clamp_int(usage(0).first.data_bytes - 1);
        throw CRangeError(0, most, daqflow_nscldaq::clamp_int(requested), std::string(doing) + " " + m_ringName);
    }

    std::pair<void*, size_t> position(const char* doing = "CRingBuffer::getPointer")
    {
        if (m_mode == manager) throw CStateException("manager", "producer or consumer", (doing + (" " + m_ringName)).c_str());
        void* at = 0;
        size_t toTop = 0;
        check(ring_position(m_client, &at, &toTop), doing);
        return std::make_pair(at, toTop);
    }

    // ring_available_data and ring_available_put_space return 0 both for "none" and for
    // a failure: after a 0, this throws if the slot is no longer ours.
    void requireSlot(const char* doing) { position(doing); }
};

#endif
