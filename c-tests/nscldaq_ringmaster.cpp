// CRingMaster and CRingAccess (CRemoteAccess.h) used the way NSCLDAQ programs use them,
// against a real daqportmgr and ringmaster (started here from PATH, the port manager on
// a port the kernel picks, with scratch state and log files, and stopped at the end):
// notifications, LIST, a ring's data through requestData's socket, the exceptions
// NSCLDAQ threw (std::string for a refusal, CErrnoException otherwise), and consumers
// by URL with the proxy parameters.
#include <CRemoteAccess.h>
#include <CRingBuffer.h>
#include <CRingMaster.h>
#include <ErrnoException.h>

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "local_address.h"
#include "nscldaq_check.h"

namespace {

char dir[64] = "/tmp/daqflow-ringmaster-XXXXXX";
pid_t portmgrPid = -1, masterPid = -1;

// The errno of the CErrnoException `statement` throws; -1 when it throws nothing, -2
// when it throws something else.
#define ERRNO_OF(statement)                  \
    ([&]() -> int {                          \
        try {                                \
            statement;                       \
        } catch (CErrnoException & e) {      \
            return e.ReasonCode();           \
        } catch (...) {                      \
            return -2;                       \
        }                                    \
        return -1;                           \
    }())

// The std::string `statement` throws ("" when it throws nothing or something else).
#define REFUSAL_OF(statement)                \
    ([&]() -> std::string {                  \
        try {                                \
            statement;                       \
        } catch (std::string & s) {          \
            return s.empty() ? "(empty)" : s; \
        } catch (...) {                      \
        }                                    \
        return "";                           \
    }())

void sleepMs(long ms)
{
    struct timespec pause = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&pause, 0);
}

void stop(pid_t& pid)
{
    if (pid <= 0) return;
    kill(pid, SIGTERM);
    waitpid(pid, 0, 0);
    pid = -1;
}

void cleanup()
{
    stop(masterPid);
    stop(portmgrPid);
    std::string command = std::string("rm -rf ") + dir;
    if (system(command.c_str()) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

pid_t spawn(const std::vector<std::string>& args)
{
    pid_t pid = fork();
    if (pid == 0) {
        std::vector<char*> argv;
        for (size_t i = 0; i < args.size(); i++) argv.push_back(const_cast<char*>(args[i].c_str()));
        argv.push_back(0);
        execvp(argv[0], argv.data());
        perror(argv[0]);
        _exit(127);
    }
    return pid;
}

// Starts daqportmgr on a port of the kernel's choosing and the ring master registered
// with it; returns once the ring master answers.
void startDaemons()
{
    const std::string d(dir), portfile = d + "/listen.port";
    portmgrPid = spawn({"daqportmgr", "-listen", "0", "-ports", "28530-28539", "-log", d + "/portmgr.log",
                        "-portfile", portfile, "-pidfile", d + "/portmgr.pid"});
    int port = 0;
    for (int i = 0; i < 1000 && port <= 0; i++) {
        FILE* f = fopen(portfile.c_str(), "r");
        if (f) {
            if (fscanf(f, "%d", &port) != 1) port = 0;
            fclose(f);
        }
        if (port <= 0) sleepMs(10);
    }
    if (port <= 0) {
        fprintf(stderr, "daqportmgr did not start\n");
        exit(1);
    }
    setenv("DAQPORTMGR_PORTFILE", portfile.c_str(), 1);
    masterPid = spawn({"ringmaster", "--portmgr-port", std::to_string(port), "--log", d + "/ringmaster.log"});
    for (int i = 0; i < 1000; i++) {
        try {
            CRingMaster probe;
            return;
        } catch (...) {
        }
        sleepMs(10);
    }
    fprintf(stderr, "the ring master did not start\n");
    exit(1);
}

// Reads exactly n bytes from fd within a few seconds; false otherwise.
bool readAll(int fd, unsigned char* into, size_t n)
{
    size_t got = 0;
    while (got < n) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 5000) != 1) return false;
        ssize_t r = read(fd, into + got, n - got);
        if (r <= 0) return false;
        got += static_cast<size_t>(r);
    }
    return true;
}

void notifications(const std::string& ring)
{
    CRingMaster master;
    CHECK(ERRNO_OF(master.notifyCreate(ring)) == -1);
    CHECK(ERRNO_OF(master.notifyCreate(ring)) == -1);  // again: NSCLDAQ allows it
    CHECK(ERRNO_OF(master.notifyProducerConnection(ring, "a test")) == -1);
    CHECK(ERRNO_OF(master.notifyConsumerConnection(ring, 3, "a test")) == -1);
    CHECK(ERRNO_OF(master.notifyConsumerDisconnection(ring, 3)) == -1);
    CHECK(ERRNO_OF(master.notifyProducerDisconnection(ring)) == -1);
    CHECK(ERRNO_OF(master.notifyConsumerConnection(ring, -2, "")) == EINVAL);
    CHECK(ERRNO_OF(master.notifyProducerConnection(ring, "a {brace}")) == EINVAL);
    CHECK(ERRNO_OF(master.notifyDestroy(ring + "-never-made")) == -1);  // NSCLDAQ: OK too

    // The ring master's refusal is the std::string NSCLDAQ threw; the connection is shut
    // down after it.
    std::string refusal = REFUSAL_OF(master.notifyCreate(ring + "-never-made"));
    CHECK(refusal.find("Invalid response: ERROR") == 0);
    CHECK(refusal.find(ring + "-never-made") != std::string::npos);
    CHECK(ERRNO_OF(master.notifyDestroy(ring)) == EPIPE);

    // LIST: one line, as NSCLDAQ returned it.
    CRingMaster lister("localhost");
    std::string usage = lister.requestUsage();
    CHECK(usage.size() > 2 && usage.compare(usage.size() - 2, 2, "\r\n") == 0);
    CHECK(usage.find("{" + ring + " {") != std::string::npos || usage.find(ring + " {") != std::string::npos);

    // Another host's view of this ring master takes no notifications, and says so before
    // sending anything.
    std::string address = nonLoopbackAddress();
    if (!address.empty()) {
        CRingMaster remote(address);
        CHECK(ERRNO_OF(remote.notifyCreate(ring)) == ENOTSUP);
        CHECK(ERRNO_OF(remote.notifyDestroy(ring)) == ENOTSUP);
        CHECK(ERRNO_OF(remote.notifyProducerConnection(ring, "")) == ENOTSUP);
        CHECK(remote.requestUsage().find(ring) != std::string::npos);  // LIST works from anywhere
    }

    CHECK(ERRNO_OF(CRingMaster("no-such-host.invalid")) == EHOSTUNREACH);
}

// NSCLDAQ's rmasterTests::existsAndIsRing: create of a formatted ring that the ring
// master does not list adopts it (registers it) and succeeds; once listed, EEXIST.
void adoption(const std::string& ring)
{
    const std::string name = ring + "-adopt";
    int fd = shm_open(("/" + name).c_str(), O_CREAT | O_EXCL | O_RDWR, 0666);
    CHECK(fd >= 0);
    if (fd < 0) return;
    CHECK(ftruncate(fd, 2 << 20) == 0);
    close(fd);
    CRingBuffer::format(name, 10);
    CHECK(CRingBuffer::isRing(name));
    CHECK(CRingMaster().requestUsage().find(name + " {") == std::string::npos);
    CHECK(ERRNO_OF(CRingBuffer::create(name)) == -1);
    CHECK(CRingMaster().requestUsage().find(name + " {") != std::string::npos);
    CHECK(ERRNO_OF(CRingBuffer::create(name)) == EEXIST);
    CHECK(ERRNO_OF(CRingBuffer::create(ring + "-not-a-ring-" + "x", 4096)) == -1);
    CRingBuffer::remove(ring + "-not-a-ring-x");
    CRingBuffer::remove(name);
    CHECK(!CRingBuffer::isRing(name));
}

void data(const std::string& ring)
{
    CRingMaster master;
    int fd = master.requestData(ring);
    CHECK(fd >= 0);
    CHECK(ERRNO_OF(master.requestUsage()) == EACCES);  // the connection carries data now
    CHECK(ERRNO_OF(master.notifyCreate(ring)) == EACCES);

    // The ring master is a consumer of the ring once it has answered: what is put now
    // comes down the socket.
    CRingBuffer producer(ring, CRingBuffer::producer);
    for (int i = 0; i < 300 && producer.getUsage().s_consumers.empty(); i++) sleepMs(10);
    unsigned char sent[1000], got[1000];
    for (size_t i = 0; i < sizeof sent; i++) sent[i] = static_cast<unsigned char>(i * 7);
    CHECK(producer.put(sent, sizeof sent, 5) == sizeof sent);
    CHECK(readAll(fd, got, sizeof got));
    CHECK(memcmp(sent, got, sizeof got) == 0);
    close(fd);

    CRingMaster again;
    std::string refusal = REFUSAL_OF(again.requestData(ring + "-never-made"));
    CHECK(refusal.find("On request data transaction, expected reply OK got : ERROR") == 0);
}

void urls(const std::string& ring)
{
    // NSCLDAQ's defaults, and setters that return the old value.
    CHECK(CRingAccess::getProxyRingSize() == 8 * 1024 * 1024);
    CHECK(CRingAccess::getProxyMaxConsumers() == 100);
    CHECK(CRingAccess::getMinData() == 32 * 1024);
    CHECK(CRingAccess::getTimeout() == 2);
    CHECK(CRingAccess::setProxyRingSize(1 << 20) == 8 * 1024 * 1024);
    CHECK(CRingAccess::setProxyMaxConsumers(7) == 100);
    CHECK(CRingAccess::getProxyRingSize() == 1 << 20 && CRingAccess::getProxyMaxConsumers() == 7);
    uint64_t bytes = 0;
    uint32_t slots = 0;
    ring_proxy_geometry(&bytes, &slots);  // what the library creates proxies with
    CHECK(bytes == 1 << 20 && slots == 7);
    CHECK(CRingAccess::setMinData(1000) == 32 * 1024 && CRingAccess::getMinData() == 1000);
    CHECK(CRingAccess::setTimeout(9) == 2 && CRingAccess::getTimeout() == 9);
    bool threw = false;
    try {
        CRingAccess::setProxyMaxConsumers(static_cast<size_t>(UINT32_MAX) + 1);
    } catch (CRangeError&) {
        threw = true;
    }
    CHECK(threw && CRingAccess::getProxyMaxConsumers() == 7);

    CHECK(CRingAccess::local("localhost"));
    CHECK(CRingAccess::local("127.0.0.1"));
    char me[256] = "";
    gethostname(me, sizeof me - 1);
    CHECK(CRingAccess::local(me));
    CHECK(!CRingAccess::local("203.0.113.7"));  // documentation range: never this host
    CHECK(!CRingAccess::local("no-such-host.invalid"));

    // A URL naming this host reads the ring itself, under its own name.
    CRingBuffer producer(ring, CRingBuffer::producer);
    for (std::string host : std::vector<std::string>{"localhost", "127.0.0.1", me}) {
        CRingBuffer* consumer = CRingAccess::daqConsumeFrom(std::string("tcp://") + host + "/" + ring);
        CHECK(consumer != 0);
        if (!consumer) continue;
        // (The ring master's stream of data() may not have noticed its reader left yet.)
        CRingBuffer::Usage usage = consumer->getUsage();
        bool mine = false;
        for (size_t i = 0; i < usage.s_consumers.size(); i++) mine |= usage.s_consumers[i].first == getpid();
        CHECK(mine);
        CHECK(usage.s_producer == getpid());
        CHECK(consumer->getSlot() >= 0);
        const char text[] = "through a URL";
        CHECK(producer.put(text, sizeof text, 5) == sizeof text);
        char got[sizeof text] = "";
        CHECK(consumer->get(got, sizeof got, sizeof got, 5) == sizeof got);
        CHECK(memcmp(text, got, sizeof got) == 0);
        delete consumer;
    }
    CHECK(ERRNO_OF(delete CRingAccess::daqConsumeFrom(ring)) == EINVAL);  // not a URL
    CHECK(ERRNO_OF(delete CRingAccess::daqConsumeFrom("tcp://localhost/")) == EINVAL);
    CHECK(ERRNO_OF(delete CRingAccess::daqConsumeFrom("tcp://localhost/" + ring + "-never-made")) == ENOENT);
    CHECK(ERRNO_OF(delete CRingAccess::daqConsumeFrom("tcp://no-such-host.invalid/" + ring)) == EHOSTUNREACH);
}

}  // namespace

int main()
{
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    atexit(cleanup);
    startDaemons();
    const std::string ring = "cxxrm" + std::to_string(getpid());
    try {
        CRingBuffer::create(ring, 64 * 1024);
        notifications(ring);
        adoption(ring);
        data(ring);
        urls(ring);
        CRingBuffer::remove(ring);
    } catch (CException& e) {
        fprintf(stderr, "unexpected exception: %s\n", e.ReasonText());
        failures++;
    } catch (std::string& s) {
        fprintf(stderr, "unexpected refusal: %s\n", s.c_str());
        failures++;
    }
    ring_remove(ring.c_str());
    return failures != 0;
}
