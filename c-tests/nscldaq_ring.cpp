// CRingBuffer used the way NSCLDAQ readout and analysis code uses it: the legacy header
// names, the legacy calls, and the legacy exceptions caught by their own classes and by
// CException. Covers every method, every exception path and the timeouts, against real
// rings in /dev/shm.
#include <CRingBuffer.h>
#include <ErrnoException.h>
#include <Exception.h>
#include <RangeError.h>
#include <StateException.h>

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <vector>

#include "nscldaq_check.h"

namespace {

// Runs `statement`, which must throw Type; then runs `checks` with the exception as e.
#define EXPECT_THROW(Type, statement, checks)                                                      \
    do {                                                                                           \
        bool caught = false;                                                                       \
        try {                                                                                      \
            statement;                                                                             \
        } catch (Type & e) {                                                                       \
            caught = true;                                                                         \
            checks;                                                                                \
        } catch (CException & other) {                                                             \
            caught = true;                                                                         \
            fprintf(stderr, "%s:%d: %s threw another exception: %s: %s\n", __FILE__, __LINE__,     \
                    #statement, other.ReasonText(), other.WasDoing());                             \
            failures++;                                                                            \
        }                                                                                          \
        if (!caught) {                                                                             \
            fprintf(stderr, "%s:%d: %s did not throw %s\n", __FILE__, __LINE__, #statement, #Type); \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

bool contains(const char* text, const std::string& part) { return strstr(text, part.c_str()) != 0; }

double secondsSince(std::chrono::steady_clock::time_point start)
{
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

std::vector<char> pattern(size_t n, int seed)
{
    std::vector<char> data(n);
    for (size_t i = 0; i < n; i++) data[i] = static_cast<char>(i * 7 + seed);
    return data;
}

// NSCLDAQ's documented predicate use: skip forward until some marker byte is next.
class SkipUntil : public CRingBuffer::CRingBufferPredicate
{
    char m_marker;

public:
    explicit SkipUntil(char marker) : m_marker(marker) {}
    virtual bool operator()(CRingBuffer& ring)
    {
        char next;
        if (ring.peek(&next, 1) != 1 || next == m_marker) return false;
        ring.skip(1);
        return true;
    }
};

class CountDown : public CRingBuffer::CRingBufferPredicate
{
public:
    int remaining;
    int calls;
    explicit CountDown(int n) : remaining(n), calls(0) {}
    virtual bool operator()(CRingBuffer&)
    {
        calls++;
        return remaining-- > 0;
    }
};

class WaitForData : public CRingBuffer::CRingBufferPredicate
{
    size_t m_bytes;

public:
    explicit WaitForData(size_t bytes) : m_bytes(bytes) {}
    virtual bool operator()(CRingBuffer& ring) { return ring.availableData() < m_bytes; }
};

void missingRings(const std::string& name)
{
    CHECK(!CRingBuffer::isRing(name));
    EXPECT_THROW(CErrnoException, CRingBuffer ring(name), {
        CHECK(e.ReasonCode() == ENOENT);
        CHECK(std::string(e.ReasonText()) == strerror(ENOENT));
        CHECK(contains(e.WasDoing(), name));
    });
    EXPECT_THROW(CErrnoException, CRingBuffer ring(name, CRingBuffer::manager), CHECK(e.ReasonCode() == ENOENT));
    EXPECT_THROW(CErrnoException, CRingBuffer::remove(name), CHECK(e.ReasonCode() == ENOENT));
    // Legacy code often catches the base class only.
    try {
        CRingBuffer ring(name, CRingBuffer::producer);
        CHECK(!"attached to a missing ring");
    } catch (CException& e) {
        CHECK(e.ReasonCode() == ENOENT);
    }
    EXPECT_THROW(CErrnoException, CRingBuffer ring(name, static_cast<CRingBuffer::ClientMode>(7)),
                 CHECK(e.ReasonCode() == EINVAL));
}

void creation(const std::string& name)
{
    CHECK(CRingBuffer::getDefaultRingSize() == 8388608);
    CHECK(CRingBuffer::getDefaultMaxConsumers() == 100);

    CRingBuffer::create(name, 65536, 2);
    CHECK(CRingBuffer::isRing(name));
    EXPECT_THROW(CErrnoException, CRingBuffer::create(name), CHECK(e.ReasonCode() == EEXIST));
    EXPECT_THROW(CErrnoException, CRingBuffer::create(name + "-none", 4096, 0), CHECK(e.ReasonCode() == EINVAL));
    CHECK(!CRingBuffer::isRing(name + "-none"));

    // A shared-memory object that is not a ring is not one, and its name is taken.
    std::string other = name + "-other";
    int fd = shm_open(("/" + other).c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
    CHECK(fd >= 0);
    CHECK(ftruncate(fd, 8192) == 0);
    close(fd);
    CHECK(!CRingBuffer::isRing(other));
    EXPECT_THROW(CErrnoException, CRingBuffer::create(other), CHECK(e.ReasonCode() == EEXIST));
    // Attaching to it is ENOENT, "not a ring", in every mode (spec section 8).
    EXPECT_THROW(CErrnoException, CRingBuffer ring(other), CHECK(e.ReasonCode() == ENOENT));
    EXPECT_THROW(CErrnoException, CRingBuffer ring(other, CRingBuffer::producer), {
        CHECK(e.ReasonCode() == ENOENT);
        CHECK(contains(e.WasDoing(), "not a ring"));
    });
    EXPECT_THROW(CErrnoException, CRingBuffer ring(other, CRingBuffer::manager), CHECK(e.ReasonCode() == ENOENT));
    EXPECT_THROW(CErrnoException, CRingBuffer::remove(other), CHECK(e.ReasonCode() == ENOENT));
    shm_unlink(("/" + other).c_str());

    // Defaults apply to rings created without sizes; the (4096, 2) row of the layout
    // table gives 8064 data bytes.
    std::string small = name + "-small";
    CRingBuffer::setDefaultRingSize(4096);
    CRingBuffer::setDefaultMaxConsumers(2);
    CHECK(CRingBuffer::getDefaultRingSize() == 4096 && CRingBuffer::getDefaultMaxConsumers() == 2);
    CRingBuffer* producer = CRingBuffer::createAndProduce(small);
    CRingBuffer::Usage usage = producer->getUsage();
    CHECK(usage.s_bufferSpace == 8064 && usage.s_maxConsumers == 2 && usage.s_producer == getpid());
    // createAndProduce on an existing ring attaches to it; one producer only.
    EXPECT_THROW(CErrnoException, CRingBuffer::createAndProduce(small), CHECK(e.ReasonCode() == EACCES));
    delete producer;
    producer = CRingBuffer::createAndProduce(small);
    delete producer;
    CRingBuffer::setDefaultRingSize(8388608);
    CRingBuffer::setDefaultMaxConsumers(100);

    // format: refused while attached, then rewrites the slots.
    {
        CRingBuffer consumer(small);
        EXPECT_THROW(CErrnoException, CRingBuffer::format(small, 3), CHECK(e.ReasonCode() == EBUSY));
    }
    CRingBuffer::format(small, 3);
    {
        CRingBuffer manager(small, CRingBuffer::manager);
        CHECK(manager.getUsage().s_maxConsumers == 3);
    }
    EXPECT_THROW(CErrnoException, CRingBuffer::format(small, 0), CHECK(e.ReasonCode() == EINVAL));
    CRingBuffer::unsynchedFormat(small, 2);
    {
        CRingBuffer manager(small, CRingBuffer::manager);
        CHECK(manager.getUsage().s_maxConsumers == 2);
    }
    CRingBuffer::remove(small);
    CHECK(!CRingBuffer::isRing(small));

    // Only the owner (or root) may remove a ring: try as another user when we can.
    if (geteuid() == 0) {
        pid_t child = fork();
        if (child == 0) {
            int code = 3;
            if (setgid(65534) == 0 && setuid(65534) == 0) {
                try {
                    CRingBuffer::remove(name);
                    code = 1;
                } catch (CErrnoException& e) {
                    code = e.ReasonCode() == EPERM ? 0 : 2;
                }
            }
            _exit(code);
        }
        int status = -1;
        CHECK(waitpid(child, &status, 0) == child && WIFEXITED(status) && WEXITSTATUS(status) == 0);
        CHECK(CRingBuffer::isRing(name));
    } else {
        fprintf(stderr, "note: not root; remove by another user (EPERM) not exercised\n");
    }

    struct passwd* me = getpwuid(getuid());
    CHECK(me && CRingBuffer::defaultRing() == me->pw_name);
    CHECK(CRingBuffer::defaultRingUrl() == "tcp://localhost/" + CRingBuffer::defaultRing());
}

// Ring `name` (65536 requested, 2 consumers): 69632-byte object, 128-byte header.
const size_t DATA_BYTES = 69632 - 128;

void transfers(const std::string& name)
{
    CRingBuffer producer(name, CRingBuffer::producer);
    CRingBuffer first(name);
    CRingBuffer second(name, CRingBuffer::consumer);
    EXPECT_THROW(CErrnoException, CRingBuffer again(name, CRingBuffer::producer), {
        CHECK(e.ReasonCode() == EACCES);
        CHECK(contains(e.WasDoing(), name));
    });
    EXPECT_THROW(CErrnoException, CRingBuffer third(name), CHECK(e.ReasonCode() == ENOMEM));
    CHECK(producer.getSlot() == -1 && first.getSlot() == 0 && second.getSlot() == 1);

    CRingBuffer::Usage usage = first.getUsage();
    CHECK(usage.s_bufferSpace == DATA_BYTES);
    CHECK(usage.s_putSpace == DATA_BYTES - 1);
    CHECK(usage.s_maxConsumers == 2);
    CHECK(usage.s_producer == getpid());
    CHECK(usage.s_consumers.size() == 2);
    CHECK(usage.s_maxGetSpace == 0 && usage.s_minGetSpace == 0);

    std::vector<char> out = pattern(1000, 1), in(1000);
    CHECK(producer.put(out.data(), out.size()) == 1000);
    CHECK(first.availableData() == 1000 && producer.availableData() == 0);
    CHECK(producer.availablePutSpace() == DATA_BYTES - 1 - 1000);
    CHECK(first.peek(in.data(), 10) == 10 && memcmp(in.data(), out.data(), 10) == 0);
    CHECK(first.availableData() == 1000);
    CHECK(first.get(in.data(), 600) == 600);  // min 1: takes what is there, up to max
    CHECK(first.get(in.data() + 600, 1000, 400) == 400);
    CHECK(in == out);
    usage = producer.getUsage();
    CHECK(usage.s_maxGetSpace == 1000 && usage.s_minGetSpace == 0);
    CHECK(usage.s_consumers.size() == 2 && usage.s_consumers[0].first == getpid() &&
          usage.s_consumers[0].second == 0 && usage.s_consumers[1].second == 1000);
    second.skip(1000);
    EXPECT_THROW(CRangeError, second.skip(1), {
        CHECK(e.ReasonCode() == CRangeError::knTooHigh);
        CHECK(e.getRequested() == 1 && e.getHigh() == 0);
    });
    CHECK(producer.put(out.data(), 0) == 0);

    // minBytes above maxBytes: waits for minBytes, copies maxBytes (as NSCLDAQ did).
    producer.put(out.data(), 100);
    CHECK(first.get(in.data(), 10, 50, 1) == 10 && memcmp(in.data(), out.data(), 10) == 0);
    CHECK(first.availableData() == 90);
    CHECK(first.get(in.data(), 10, 91, 0) == 0);  // 91 never came
    first.skip(90);
    second.skip(100);

    // Transfers that could never complete are range errors, not hangs.
    std::vector<char> big(DATA_BYTES);
    EXPECT_THROW(CRangeError, producer.put(big.data(), DATA_BYTES), {
        CHECK(e.getHigh() == static_cast<int>(DATA_BYTES - 1));
        CHECK(e.getRequested() == static_cast<int>(DATA_BYTES));
        CHECK(contains(e.WasDoing(), "put"));
    });
    EXPECT_THROW(CRangeError, first.get(big.data(), DATA_BYTES, DATA_BYTES), CHECK(e.getRequested() == static_cast<int>(DATA_BYTES)));
    EXPECT_THROW(CRangeError, first.get(big.data(), 10, DATA_BYTES), CHECK(e.ReasonCode() == CRangeError::knTooHigh));
    // The largest put fits.
    CHECK(producer.put(big.data(), DATA_BYTES - 1, 0) == DATA_BYTES - 1);
    CHECK(producer.availablePutSpace() == 0);
    first.skip(DATA_BYTES - 1);
    second.skip(DATA_BYTES - 1);

    // Calls the mode does not allow.
    EXPECT_THROW(CStateException, producer.get(in.data(), 10), {
        CHECK(e.ReasonCode() == -1);
        CHECK(contains(e.ReasonText(), "producer"));
        CHECK(contains(e.WasDoing(), "get"));
    });
    EXPECT_THROW(CStateException, producer.peek(in.data(), 10), CHECK(contains(e.ReasonText(), "consumer")));
    EXPECT_THROW(CStateException, first.put(out.data(), 10), CHECK(contains(e.ReasonText(), "consumer")));
    EXPECT_THROW(CStateException, first.forceProducerRelease(), CHECK(contains(e.ReasonText(), "manager")));
    EXPECT_THROW(CStateException, producer.forceConsumerRelease(0), CHECK(e.ReasonCode() == -1));
    try {
        first.put(out.data(), 10);
        CHECK(!"a consumer put");
    } catch (CException& e) {
        CHECK(e.ReasonCode() == -1);
    }
}

void timeouts(const std::string& name)
{
    CRingBuffer producer(name, CRingBuffer::producer);
    CRingBuffer consumer(name);
    std::vector<char> buf(DATA_BYTES);

    std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
    CHECK(consumer.get(buf.data(), 10, 10, 0) == 0);
    CHECK(secondsSince(start) < 0.5);

    start = std::chrono::steady_clock::now();
    CHECK(consumer.get(buf.data(), 10, 10, 1) == 0);
    double waited = secondsSince(start);
    CHECK(waited >= 0.95 && waited < 3);

    // Fill the ring: a put that does not fit times out and leaves nothing behind.
    size_t space = producer.availablePutSpace();
    CHECK(producer.put(buf.data(), space, 0) == space);
    start = std::chrono::steady_clock::now();
    CHECK(producer.put(buf.data(), 100, 0) == 0);
    CHECK(secondsSince(start) < 0.5);
    start = std::chrono::steady_clock::now();
    CHECK(producer.put(buf.data(), 100, 1) == 0);
    waited = secondsSince(start);
    CHECK(waited >= 0.95 && waited < 3);
    CHECK(consumer.availableData() == space);

    // A blocked put completes as soon as the consumer frees the space... here the space
    // is freed first and the put must not wait at all.
    consumer.skip(100);
    start = std::chrono::steady_clock::now();
    CHECK(producer.put(buf.data(), 100, 5) == 100);
    CHECK(secondsSince(start) < 1);
    consumer.skip(space);

    // blockWhile: polls at the poll interval; 0 when the condition ends, -1 on timeout.
    CHECK(consumer.getPollInterval() == 3);
    CHECK(consumer.setPollInterval(1) == 3);
    CHECK(consumer.getPollInterval() == 1);
    CountDown three(3);
    CHECK(consumer.blockWhile(three, 5) == 0 && three.calls == 4);
    CountDown forever(1 << 30);
    CHECK(consumer.blockWhile(forever, 0) == -1 && forever.calls == 1);
    start = std::chrono::steady_clock::now();
    CHECK(consumer.blockWhile(forever, 1) == -1);
    waited = secondsSince(start);
    CHECK(waited >= 0.95 && waited < 3);
    WaitForData some(5);
    CHECK(consumer.blockWhile(some, 0) == -1);
    producer.put(buf.data(), 5);
    CHECK(consumer.blockWhile(some, 1) == 0);
    consumer.skip(5);
    start = std::chrono::steady_clock::now();
    consumer.setPollInterval(200);
    consumer.pollblock();
    CHECK(secondsSince(start) >= 0.19);

    // While: skip ahead to a marker.
    const char text[] = "xxxxxMdata";
    producer.put(text, sizeof text - 1);
    SkipUntil marker('M');
    consumer.While(marker);
    CHECK(consumer.availableData() == 5);
    char next = 0;
    CHECK(consumer.peek(&next, 1) == 1 && next == 'M');
    consumer.skip(5);
}

void zeroCopy(const std::string& name)
{
    CRingBuffer producer(name, CRingBuffer::producer);
    CRingBuffer consumer(name);
    std::vector<char> record = pattern(500, 3);

    // Walk the producer to the top of the ring in place, then across it.
    unsigned wraps = 0;
    for (int i = 0; i < 400; i++) {
        size_t toTop = producer.bytesToTop();
        CHECK(toTop >= 1 && toTop <= DATA_BYTES);
        CHECK(producer.wouldWrap(toTop) && (toTop == 1 || !producer.wouldWrap(toTop - 1)));
        size_t n = record.size();
        if (!producer.wouldWrap(n)) {
            memcpy(producer.getPointer(), record.data(), n);
            producer.skip(n);
        } else {
            // Exactly to the top in place: the pointer goes back to the start.
            memcpy(producer.getPointer(), record.data(), toTop);
            producer.skip(toTop);
            CHECK(producer.bytesToTop() == DATA_BYTES);
            n = toTop;
            wraps++;
        }
        // The consumer reads it in place where it does not wrap.
        CHECK(consumer.availableData() == n);
        CHECK(!consumer.wouldWrap(n) || consumer.bytesToTop() == n);
        CHECK(memcmp(consumer.getPointer(), record.data(), n) == 0);
        consumer.skip(n);
        // Each maps the ring at its own address: compare positions, not pointers.
        CHECK(consumer.bytesToTop() == producer.bytesToTop());
    }
    CHECK(wraps >= 2);

    // A zero-copy put cannot publish more than the free space, nor more than a ring
    // can ever hold.
    producer.put(record.data(), record.size());
    size_t space = producer.availablePutSpace();
    CHECK(space == DATA_BYTES - 1 - record.size());
    EXPECT_THROW(CRangeError, producer.skip(space + 1), {
        CHECK(e.getRequested() == static_cast<int>(space + 1));
        CHECK(e.getHigh() == static_cast<int>(space));
    });
    EXPECT_THROW(CRangeError, producer.skip(DATA_BYTES), CHECK(e.ReasonCode() == CRangeError::knTooHigh));
    CHECK(consumer.availableData() == record.size());
    consumer.skip(record.size());
}

void management(const std::string& name)
{
    CRingBuffer* producer = new CRingBuffer(name, CRingBuffer::producer);
    CRingBuffer* consumer = new CRingBuffer(name);
    CRingBuffer manager(name, CRingBuffer::manager);
    CHECK(manager.getSlot() == -1);
    CHECK(manager.availableData() == 0);
    CHECK(manager.availablePutSpace() == producer->availablePutSpace());
    EXPECT_THROW(CStateException, manager.getPointer(), CHECK(contains(e.ReasonText(), "manager")));
    EXPECT_THROW(CStateException, manager.skip(1), CHECK(contains(e.WasDoing(), "skip")));
    EXPECT_THROW(CStateException, manager.put("x", 1), CHECK(contains(e.ReasonText(), "manager")));
    EXPECT_THROW(CRangeError, manager.forceConsumerRelease(2), {
        CHECK(e.getLow() == 0 && e.getHigh() == 1 && e.getRequested() == 2);
        CHECK(e.ReasonCode() == CRangeError::knTooHigh);
        CHECK(contains(e.ReasonText(), "2"));
    });

    // Releasing a client's slot from outside: its next transfer is a state error, and
    // its destructor still does not throw.
    manager.forceConsumerRelease(0);
    char byte;
    EXPECT_THROW(CStateException, consumer->get(&byte, 1, 1, 0), CHECK(contains(e.WasDoing(), name)));
    // The inquiries legacy code polls on say so too, rather than report no data (or no
    // space) for ever: CRingItem::blockUntilData waits with no timeout.
    EXPECT_THROW(CStateException, consumer->availableData(), CHECK(contains(e.WasDoing(), name)));
    WaitForData any(1);
    EXPECT_THROW(CStateException, consumer->blockWhile(any, 2), CHECK(e.ReasonCode() == -1));
    manager.forceProducerRelease();
    CHECK(manager.getUsage().s_producer == -1);
    EXPECT_THROW(CStateException, producer->put("x", 1), CHECK(e.ReasonCode() == -1));
    EXPECT_THROW(CStateException, producer->availablePutSpace(), CHECK(contains(e.WasDoing(), name)));
    delete consumer;
    delete producer;

    // The slots are free again.
    CRingBuffer again(name, CRingBuffer::producer);
    CRingBuffer reader(name);
    CHECK(reader.getSlot() == 0);
}

void destructionAfterRemove(const std::string& name)
{
    CRingBuffer::create(name, 4096, 1);
    CRingBuffer* producer = new CRingBuffer(name, CRingBuffer::producer);
    CRingBuffer* consumer = new CRingBuffer(name);
    CRingBuffer::remove(name);
    CHECK(!CRingBuffer::isRing(name));
    producer->put("abc", 3);  // the mapping lives on until the clients go
    char in[3];
    CHECK(consumer->get(in, 3, 3, 1) == 3 && memcmp(in, "abc", 3) == 0);
    delete consumer;
    delete producer;
}

// CRingBuffer("tcp://host/ring", consumer), as NSCLDAQ programs name their data source:
// this host's own names mean the local ring, with no proxy, feeder or network.
void urls(const std::string& name)
{
    CRingBuffer::create(name, 4096, 2);
    {
        CRingBuffer producer(name, CRingBuffer::producer);
        CRingBuffer consumer("tcp://localhost/" + name, CRingBuffer::consumer);
        CHECK(consumer.getSlot() == 0);
        CHECK(!CRingBuffer::isRing("localhost." + name));  // no proxy ring
        CHECK(producer.put("remote", 6) == 6);
        char in[6];
        CHECK(consumer.get(in, 6, 6, 1) == 6 && memcmp(in, "remote", 6) == 0);
        // Its usage is the ring's, asked by the URL it was attached with.
        producer.put("ab", 2);
        CRingBuffer::Usage usage = consumer.getUsage();
        CHECK(usage.s_producer == getpid());
        CHECK(usage.s_consumers.size() == 1 && usage.s_consumers[0].first == getpid());
        CHECK(usage.s_consumers[0].second == 2);
        CHECK(usage.s_maxGetSpace == 2);
        // A producer runs on the ring's own host, under the ring's own name.
        EXPECT_THROW(CErrnoException, CRingBuffer(CRingBuffer::defaultRingUrl(), CRingBuffer::producer),
                     CHECK(e.ReasonCode() == EINVAL));
    }
    EXPECT_THROW(CErrnoException, CRingBuffer("tcp://localhost/" + name + "-none"), CHECK(e.ReasonCode() == ENOENT));
    EXPECT_THROW(CErrnoException, CRingBuffer("tcp:///" + name), CHECK(e.ReasonCode() == EINVAL));
    CRingBuffer::remove(name);
}

}  // namespace

int main()
{
    const std::string base = "nscldaq-ring-" + std::to_string(getpid());
    try {
        missingRings(base);
        creation(base);
        transfers(base);
        timeouts(base);
        zeroCopy(base);
        management(base);
        destructionAfterRemove(base + "-gone");
        urls(base + "-url");
    } catch (CException& e) {
        fprintf(stderr, "unexpected exception: %s: %s\n", e.ReasonText(), e.WasDoing());
        failures++;
    }
    // Whatever a failure left behind.
    const char* suffixes[] = {"", "-small", "-gone", "-url"};
    for (size_t i = 0; i < sizeof suffixes / sizeof *suffixes; i++)
        if (CRingBuffer::isRing(base + suffixes[i])) CRingBuffer::remove(base + suffixes[i]);
    shm_unlink(("/" + base + "-other").c_str());
    if (failures) fprintf(stderr, "%d check(s) failed\n", failures);
    return failures ? 1 : 0;
}
