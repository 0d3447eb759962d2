// An NSCLDAQ-style C++ producer (CRingBuffer, copying and zero-copy puts) feeding a C
// consumer (peer_ring, on the C ABI), then a C producer feeding a C++ consumer: the same
// ring shared by the two interfaces in separate processes, every byte checked in order.
#include <CRingBuffer.h>
#include <Exception.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "nscldaq_check.h"

namespace {

const unsigned long TOTAL = 4ul << 20;  // bytes each way, through a 64 KiB ring
const size_t MAX_CHUNK = 3000;           // peer_ring.c uses the same stream and sizes

unsigned char streamByte(unsigned long seed, unsigned long i)
{
    return static_cast<unsigned char>(i * 131u + seed + (i >> 9));
}

size_t nextChunk(unsigned long* state)
{
    *state = *state * 1103515245u + 12345u;
    return 1 + static_cast<size_t>((*state >> 8) % MAX_CHUNK);
}

pid_t spawnPeer(const char* mode, const std::string& ring, unsigned long seed)
{
    const char* dir = getenv("DAQFLOW_PEER_DIR");
    std::string program = std::string(dir ? dir : ".") + "/peer_ring";
    std::string total = std::to_string(TOTAL), seedText = std::to_string(seed);
    pid_t pid = fork();
    if (pid == 0) {
        execl(program.c_str(), "peer_ring", mode, ring.c_str(), total.c_str(), seedText.c_str(), (char*)0);
        perror(program.c_str());
        _exit(127);
    }
    return pid;
}

// The peer's exit status; it is killed (and fails) if still running after `seconds`.
int reap(pid_t pid, int seconds)
{
    int status = 0;
    for (int i = 0; i < seconds * 100; i++) {
        if (waitpid(pid, &status, WNOHANG) == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
        struct timespec pause = {0, 10000000L};
        nanosleep(&pause, 0);
    }
    fprintf(stderr, "peer %d did not finish in %d s\n", static_cast<int>(pid), seconds);
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return 124;
}

void waitForConsumers(const std::string& ring, size_t n)
{
    CRingBuffer manager(ring, CRingBuffer::manager);
    for (int i = 0; i < 1000 && manager.getUsage().s_consumers.size() < n; i++) {
        struct timespec pause = {0, 10000000L};
        nanosleep(&pause, 0);
    }
}

void cxxProducesForC(const std::string& ring)
{
    const unsigned long seed = 17;
    pid_t peer = spawnPeer("consume", ring, seed);
    waitForConsumers(ring, 1);

    CRingBuffer* producer = CRingBuffer::createAndProduce(ring);  // exists: just attaches
    std::vector<unsigned char> buf(MAX_CHUNK);
    unsigned long done = 0, state = seed, zeroCopy = 0;
    while (done < TOTAL) {
        size_t n = nextChunk(&state);
        if (n > TOTAL - done) n = TOTAL - done;
        for (size_t i = 0; i < n; i++) buf[i] = streamByte(seed, done + i);
        // The legacy zero-copy idiom: write in place when the record does not wrap and
        // fits now, else fall back on put.
        if (!producer->wouldWrap(n) && producer->availablePutSpace() >= n) {
            memcpy(producer->getPointer(), buf.data(), n);
            producer->skip(n);
            zeroCopy++;
        } else if (producer->put(buf.data(), n, 20) != n) {
            fprintf(stderr, "put timed out at byte %lu\n", done);
            failures++;
            break;
        }
        done += n;
    }
    delete producer;
    CHECK(zeroCopy > 0);
    CHECK(reap(peer, 60) == 0);
}

void cProducesForCxx(const std::string& ring)
{
    const unsigned long seed = 99;
    CRingBuffer consumer(ring);  // before the producer starts: it sees everything
    pid_t peer = spawnPeer("produce", ring, seed);

    std::vector<unsigned char> buf(MAX_CHUNK);
    unsigned long done = 0, state = seed ^ 0x5a5a, zeroCopy = 0;
    bool ok = true;
    while (ok && done < TOTAL) {
        size_t max = nextChunk(&state);
        if (max > TOTAL - done) max = TOTAL - done;
        size_t got;
        const unsigned char* data;
        if (consumer.availableData() >= max && !consumer.wouldWrap(max)) {
            data = static_cast<const unsigned char*>(consumer.getPointer());
            got = max;
            zeroCopy++;
        } else {
            got = consumer.get(buf.data(), max, 1, 20);
            data = buf.data();
            if (got == 0) {
                fprintf(stderr, "get timed out at byte %lu\n", done);
                failures++;
                break;
            }
        }
        for (size_t i = 0; i < got; i++) {
            if (data[i] != streamByte(seed, done + i)) {
                fprintf(stderr, "byte %lu is %u, expected %u\n", done + i, data[i], streamByte(seed, done + i));
                failures++;
                ok = false;
                break;
            }
        }
        if (data != buf.data()) consumer.skip(got);
        done += got;
    }
    CHECK(done == TOTAL);
    CHECK(zeroCopy > 0);
    CHECK(reap(peer, 60) == 0);
}

}  // namespace

int main()
{
    std::string ring = "nscldaq-pair-" + std::to_string(getpid());
    try {
        CRingBuffer::create(ring, 65536, 4);
        cxxProducesForC(ring);
        cProducesForCxx(ring);
    } catch (CException& e) {
        fprintf(stderr, "unexpected exception: %s: %s\n", e.ReasonText(), e.WasDoing());
        failures++;
    }
    try {
        CRingBuffer::remove(ring);
    } catch (CException& e) {
        fprintf(stderr, "remove: %s: %s\n", e.ReasonText(), e.WasDoing());
        failures++;
    }
    if (failures) fprintf(stderr, "%d check(s) failed\n", failures);
    return failures ? 1 : 0;
}
