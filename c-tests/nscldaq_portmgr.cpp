// CPortManager used the way NSCLDAQ servers use it, against a real daqportmgr (started
// here from PATH on a port the kernel picks, with a scratch state directory and a pool
// of three ports, and stopped at the end): allocation, listing, what destruction does
// to held ports, and every CPortManagerException reason, none of which may abort.
#include <CPortManager.h>
#include <CPortManagerException.h>
#include <Exception.h>

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <sstream>
#include <string>
#include <vector>

#include "local_address.h"
#include "nscldaq_check.h"

namespace {

char dir[64] = "/tmp/daqflow-nscldaq-XXXXXX";
pid_t daemonPid = -1;

#define EXPECT_REASON(expected, statement)                                                          \
    do {                                                                                            \
        bool caught = false;                                                                        \
        try {                                                                                       \
            statement;                                                                              \
        } catch (CPortManagerException & e) {                                                       \
            caught = true;                                                                          \
            lastError = e;                                                                          \
            if (e.ReasonCode() != (expected)) {                                                     \
                fprintf(stderr, "%s:%d: %s: reason %d, expected %d (%s : %s)\n", __FILE__, __LINE__, \
                        #statement, e.ReasonCode(), (expected), e.ReasonText(), e.WasDoing());      \
                failures++;                                                                         \
            }                                                                                       \
        }                                                                                           \
        if (!caught) {                                                                              \
            fprintf(stderr, "%s:%d: %s did not throw\n", __FILE__, __LINE__, #statement);          \
            failures++;                                                                             \
        }                                                                                           \
    } while (0)

CPortManagerException lastError("", CPortManagerException::ConnectionFailed, "");

bool contains(const char* text, const std::string& part) { return strstr(text, part.c_str()) != 0; }

void sleepMs(long ms)
{
    struct timespec pause = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&pause, 0);
}

void cleanup()
{
    if (daemonPid > 0) {
        kill(daemonPid, SIGKILL);
        waitpid(daemonPid, 0, 0);
    }
    std::string command = std::string("rm -rf ") + dir;
    if (system(command.c_str()) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

// Starts daqportmgr on a port of the kernel's choosing; returns it (from listen.port).
// The pool lies below the kernel's ephemeral ports, where that one comes from: the
// daemon skips a pool port something listens on, which would change the ports checked.
int startDaemon(const std::string& portfile)
{
    std::string log = std::string(dir) + "/log", pidfile = std::string(dir) + "/pid";
    daemonPid = fork();
    if (daemonPid == 0) {
        execlp("daqportmgr", "daqportmgr", "-listen", "0", "-ports", "28520-28522", "-log", log.c_str(),
               "-portfile", portfile.c_str(), "-pidfile", pidfile.c_str(), (char*)0);
        perror("exec daqportmgr");
        _exit(127);
    }
    for (int i = 0; i < 1000; i++) {
        FILE* f = fopen(portfile.c_str(), "r");
        int port = 0;
        if (f) {
            bool ok = fscanf(f, "%d", &port) == 1;
            fclose(f);
            if (ok && port > 0) return port;
        }
        if (waitpid(daemonPid, 0, WNOHANG) == daemonPid) break;
        sleepMs(10);
    }
    fprintf(stderr, "daqportmgr did not start\n");
    exit(1);
}

// The number of allocations, once it has settled on `expected` (releases are
// asynchronous: the server sees the connection close a moment later).
size_t settledCount(CPortManager& lister, size_t expected)
{
    size_t n = 0;
    for (int i = 0; i < 300; i++) {
        n = lister.getPortUsage().size();
        if (n == expected) break;
        sleepMs(10);
    }
    return n;
}

// A listening socket that never accepts: the kernel completes connections, nothing
// ever answers.
int silentServer(int* port)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (s < 0 || bind(s, reinterpret_cast<struct sockaddr*>(&a), sizeof a) != 0 || listen(s, 4) != 0 ||
        getsockname(s, reinterpret_cast<struct sockaddr*>(&a), &len) != 0) {
        perror("silent server");
        exit(1);
    }
    *port = ntohs(a.sin_port);
    return s;
}

// Reads one request line (up to LF); false at end of input.
bool readLine(int fd)
{
    char c;
    do {
        if (read(fd, &c, 1) != 1) return false;
    } while (c != '\n');
    return true;
}

void sendText(int fd, const char* text)
{
    if (write(fd, text, strlen(text)) < 0) perror("fake portman");
}

// A process answering as FRIB's portman 0.2.3 does, byte for byte: the first connection
// gets "OK 31001\n", then "FAIL - No free ports available\n" and a hang-up (portman's
// refusal; it releases the connection's ports); the next one gets "OK 31003\n".
pid_t fakePortman(int* port)
{
    int s = silentServer(port);
    pid_t pid = fork();
    if (pid != 0) {
        close(s);
        return pid;
    }
    int first = accept(s, 0, 0);
    if (first >= 0 && readLine(first)) sendText(first, "OK 31001\n");
    if (first >= 0 && readLine(first)) sendText(first, "FAIL - No free ports available\n");
    close(first);
    int second = accept(s, 0, 0);
    if (second >= 0 && readLine(second)) sendText(second, "OK 31003\n");
    while (second >= 0 && readLine(second)) {}
    _exit(0);
}

}  // namespace

int main()
{
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    atexit(cleanup);
    const std::string portfile = std::string(dir) + "/listen.port";
    const int listenPort = startDaemon(portfile);

    // The default port comes from the port file the daemon wrote.
    setenv("DAQPORTMGR_PORTFILE", portfile.c_str(), 1);
    CPortManager byDefault;
    CPortManager lister("localhost", listenPort);
    CHECK(byDefault == lister);
    CHECK(!(byDefault != lister));
    CHECK(CPortManager("localhost", listenPort + 1) != lister);
    CHECK(CPortManager("127.0.0.1", listenPort) != lister);

    struct passwd* me = getpwuid(geteuid());
    CHECK(me && CPortManager::GetUsername() == me->pw_name);

    try {
        CHECK(lister.getPortUsage().empty());

        // releasePorts gives the ports back at once.
        {
            CPortManager brief("localhost", listenPort);
            CHECK(brief.allocatePort("released") == 28522);
            CHECK(settledCount(lister, 1) == 1);
            brief.releasePorts();
            CHECK(settledCount(lister, 0) == 0);
            brief.releasePorts();  // nothing left: harmless
        }

        // One port held for the whole test, through the default-port constructor.
        CPortManager holder;
        CHECK(holder.allocatePort("holder") == 28522);

        // Destroying a manager keeps its ports for the life of the process.
        {
            CPortManager scoped("localhost", listenPort);
            CHECK(scoped.allocatePort("my server") == 28521);
            // Quoted by the caller, as NSCLDAQ's class asked for names with spaces: the
            // server registers the same name as without the braces.
            CHECK(scoped.allocatePort("{my server}") == 28520);
        }
        sleepMs(300);
        std::vector<CPortManager::portInfo> usage = lister.getPortUsage();
        CHECK(usage.size() == 3);
        bool first = false, second = false;
        for (size_t i = 0; i < usage.size(); i++) {
            CHECK(usage[i].s_User == CPortManager::GetUsername());
            first = first || (usage[i].s_Port == 28520 && usage[i].s_Application == "my server");
            second = second || (usage[i].s_Port == 28521 && usage[i].s_Application == "my server_1");
        }
        CHECK(first && second);

        // The pool is empty: NoPorts, thrown (NSCLDAQ's class aborted here).
        CPortManager unlucky("localhost", listenPort);
        EXPECT_REASON(CPortManagerException::NoPorts, unlucky.allocatePort("late"));
        CHECK(contains(lastError.ReasonText(), "localhost"));
        CHECK(contains(lastError.ReasonText(), CPortManagerException::ReasonCodeToText(CPortManagerException::NoPorts)));
        CHECK(contains(lastError.WasDoing(), "no free ports"));
        std::ostringstream printed;
        printed << lastError;
        CHECK(printed.str() == std::string(lastError.ReasonText()) + " : " + lastError.WasDoing());
        // A holder that hits NoPorts keeps what it had.
        EXPECT_REASON(CPortManagerException::NoPorts, holder.allocatePort("more"));
        CHECK(settledCount(lister, 3) == 3);
        // Also caught as the legacy base class.
        try {
            unlucky.allocatePort("late");
            CHECK(!"allocated from an empty pool");
        } catch (CException& e) {
            CHECK(e.ReasonCode() == CPortManagerException::NoPorts);
        }

        // FRIB's portman: NoPorts for its "FAIL - No free ports available" (it was
        // ConnectionFailed), and since it hung up, the next call connects again.
        {
            int fribPort = 0;
            pid_t frib = fakePortman(&fribPort);
            CPortManager portman("127.0.0.1", fribPort);
            CHECK(portman.allocatePort("a") == 31001);
            EXPECT_REASON(CPortManagerException::NoPorts, portman.allocatePort("b"));
            CHECK(contains(lastError.WasDoing(), "No free ports available"));
            CHECK(portman.allocatePort("c") == 31003);
            portman.releasePorts();
            int status = 0;
            CHECK(waitpid(frib, &status, 0) == frib && WIFEXITED(status));
        }

        // NotLocal: the server gives ports only to programs on loopback addresses.
        std::string outside = nonLoopbackAddress();
        if (outside.empty()) {
            fprintf(stderr, "note: no non-loopback IPv4 address here; NotLocal not exercised\n");
        } else {
            CPortManager remote(outside, listenPort);
            EXPECT_REASON(CPortManagerException::NotLocal, remote.allocatePort("far"));
            CHECK(contains(lastError.ReasonText(), outside));
            CHECK(remote.getPortUsage().size() == 3);  // anyone may list
        }

        // ConnectionFailed: no server, a host that does not resolve, a bad port file,
        // and a server that never answers (the request times out, nothing hangs).
        int closedPort = 0;
        close(silentServer(&closedPort));
        CPortManager nobody("127.0.0.1", closedPort);
        EXPECT_REASON(CPortManagerException::ConnectionFailed, nobody.allocatePort("x"));
        CHECK(contains(lastError.WasDoing(), "refused"));
        EXPECT_REASON(CPortManagerException::ConnectionFailed, nobody.getPortUsage());
        CPortManager nowhere("no-such-host.invalid", listenPort);
        EXPECT_REASON(CPortManagerException::ConnectionFailed, nowhere.getPortUsage());

        std::string junk = std::string(dir) + "/junk.port";
        FILE* f = fopen(junk.c_str(), "w");
        if (f) {
            fputs("junk\n", f);
            fclose(f);
        }
        setenv("DAQPORTMGR_PORTFILE", junk.c_str(), 1);
        CPortManager misconfigured;
        EXPECT_REASON(CPortManagerException::ConnectionFailed, misconfigured.allocatePort("x"));
        CHECK(contains(lastError.WasDoing(), "junk.port"));
        setenv("DAQPORTMGR_PORTFILE", portfile.c_str(), 1);

        int silentPort = 0;
        int silent = silentServer(&silentPort);
        CPortManager mute("127.0.0.1", silentPort);
        std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
        EXPECT_REASON(CPortManagerException::ConnectionFailed, mute.allocatePort("x"));
        double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        CHECK(waited >= 4 && waited < 15);
        close(silent);

        // The server goes away under a holder: its next calls fail cleanly.
        kill(daemonPid, SIGTERM);
        int status = 0;
        CHECK(waitpid(daemonPid, &status, 0) == daemonPid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
        daemonPid = -1;
        EXPECT_REASON(CPortManagerException::ConnectionFailed, holder.getPortUsage());
        EXPECT_REASON(CPortManagerException::ConnectionFailed, holder.allocatePort("again"));
    } catch (CException& e) {
        fprintf(stderr, "unexpected exception: %s : %s\n", e.ReasonText(), e.WasDoing());
        failures++;
    }

    CHECK(CPortManagerException::ReasonCodeToText(CPortManagerException::ConnectionFailed) ==
          "Connection to port management server failed");
    CHECK(CPortManagerException::ReasonCodeToText(7) == "ReasonCodeToText: Invalid reason code");
    CPortManagerException a("h", CPortManagerException::NotLocal, "doing");
    CPortManagerException b(a);
    CHECK(a == b && !(a != b));
    CHECK(a.ReasonCode() == CPortManagerException::NotLocal && std::string(a.WasDoing()) == "doing");
    CHECK(a != CPortManagerException("h", CPortManagerException::NoPorts, "doing"));

    if (failures) fprintf(stderr, "%d check(s) failed\n", failures);
    return failures ? 1 : 0;
}
