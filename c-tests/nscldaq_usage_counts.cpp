// CRingBuffer::getUsage() given consumer counts no ring can have, as a corrupt header or
// another host's ring master (for a tcp:// name) may report them (issue 12.1). This
// program defines ring_usage() and ring_exists() itself, so the header's inline code
// calls these instead of the library's, and each call answers what the test says:
// getUsage must throw CErrnoException(EBADMSG), never size a vector by the count nor
// ask again for ever.
#include <CRingBuffer.h>

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <string>

#include "nscldaq_check.h"

namespace {

// What the next ring_usage call reports; each call adds `step` to both counts.
uint32_t slots, inUse, step;
int calls;

}  // namespace

extern "C" int ring_exists(const char*)
{
    return 1;
}

extern "C" int ring_usage(const char*, ring_usage_info* info, ring_consumer_info* consumers, size_t capacity)
{
    memset(info, 0, sizeof *info);
    info->data_bytes = 8391008;
    info->put_space = 8391007;
    info->max_consumers = slots;
    info->producer_pid = -1;
    info->n_consumers = inUse;
    for (size_t i = 0; i < capacity && i < inUse; ++i) {
        consumers[i].pid = 1;
        consumers[i].slot = UINT32_MAX;
        consumers[i].backlog = 0;
    }
    int n = static_cast<int>(inUse);
    slots += step;
    inUse += step;
    ++calls;
    return n;
}

namespace {

// The errno of getUsage's CErrnoException and its text, or 0 when it returned.
int usageErrno(uint32_t s, uint32_t n, uint32_t d, std::string& text, size_t& reported)
{
    slots = s;
    inUse = n;
    step = d;
    calls = 0;
    CRingBuffer ring("fake", CRingBuffer::manager);
    try {
        reported = ring.getUsage().s_consumers.size();
        return 0;
    } catch (CErrnoException& e) {
        text = e.WasDoing();
        return e.ReasonCode();
    }
}

}  // namespace

int main()
{
    // The old loop asked again for ever while the count grew: fail, not hang.
    alarm(20);
    std::string text;
    size_t reported = 0;

    // 0x10000001 slots: sized by that, 16 bytes per slot, the old code asked for 4 GiB.
    CHECK(usageErrno(0x10000001u, 65, 0, text, reported) == EBADMSG);
    CHECK(text.find("claims 268435457 consumer slots, more than the 1048576") != std::string::npos);

    // More consumers in use than slots, one more at every call.
    CHECK(usageErrno(10, 65, 1, text, reported) == EBADMSG);
    CHECK(text.find("reports 65 consumers in use but has only 10 consumer slots") != std::string::npos);
    CHECK(calls == 1);

    // A count near INT_MAX: refused before anything is sized by it.
    CHECK(usageErrno(100, INT32_MAX, 0, text, reported) == EBADMSG);

    // Consistent at each call, but more at every call: three calls, then an error.
    CHECK(usageErrno(100, 100, 100, text, reported) == EBADMSG);
    CHECK(text.find("more consumers than its slots at each of 3 tries") != std::string::npos);
    CHECK(calls == 3);

    // A large but possible ring: every consumer is reported, in two calls.
    CHECK(usageErrno(RING_MAX_CONSUMERS, 1000, 0, text, reported) == 0);
    CHECK(reported == 1000);
    CHECK(calls == 2);

    if (failures) fprintf(stderr, "%d failure(s)\n", failures);
    return failures ? 1 : 0;
}
