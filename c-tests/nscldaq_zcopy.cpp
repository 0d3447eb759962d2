// CZCopyRingBuffer and CTestRingBuffer as NSCLDAQ code uses them: items read in place
// (and copied only when they wrap), a get() that waits for its bytes, done() consuming
// exactly the item; and a test ring whose transfers never touch the ring.
#include <CRingBuffer.h>
#include <CTestRingBuffer.h>
#include <CZCopyRingBuffer.h>

#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "nscldaq_check.h"

namespace {

std::vector<unsigned char> item(size_t n, unsigned seed)
{
    std::vector<unsigned char> bytes(n);
    for (size_t i = 0; i < n; i++) bytes[i] = static_cast<unsigned char>(seed * 31 + i);
    return bytes;
}

bool inRing(const void* p, CRingBuffer& consumer)
{
    // The ring's memory runs from the read position up to the top, then from the start.
    const char* at = static_cast<const char*>(consumer.getPointer());
    const char* q = static_cast<const char*>(p);
    return q >= at && q < at + consumer.bytesToTop();
}

void zeroCopy(const std::string& name)
{
    CRingBuffer::create(name, 4096, 2);
    {
        CRingBuffer producer(name, CRingBuffer::producer);
        CRingBuffer consumer(name, CRingBuffer::consumer);
        CZCopyRingBuffer reader(&consumer);
        const size_t data = producer.getUsage().s_bufferSpace;

        // An item that does not wrap is read in place; get() again without done() gives
        // the same bytes; done() consumes exactly the item.
        std::vector<unsigned char> first = item(1000, 1);
        producer.put(first.data(), first.size());
        void* p = reader.get(first.size());
        CHECK(inRing(p, consumer));
        CHECK(memcmp(p, first.data(), first.size()) == 0);
        CHECK(reader.get(first.size()) == p);
        reader.done();
        CHECK(consumer.availableData() == 0);

        // Fill up to just before the top, then an item that wraps: it is a copy, the same
        // bytes on a second get(), and done() consumes it and nothing more.
        size_t toTop = consumer.bytesToTop();
        std::vector<unsigned char> pad = item(toTop - 100, 2);
        producer.put(pad.data(), pad.size());
        CHECK(reader.get(pad.size()) != 0);
        reader.done();
        std::vector<unsigned char> wrapping = item(300, 3), after = item(50, 4);
        producer.put(wrapping.data(), wrapping.size());
        producer.put(after.data(), after.size());
        CHECK(consumer.wouldWrap(wrapping.size()));
        void* copy = reader.get(wrapping.size());
        CHECK(memcmp(copy, wrapping.data(), wrapping.size()) == 0);
        void* again = reader.get(wrapping.size());
        CHECK(memcmp(again, wrapping.data(), wrapping.size()) == 0);
        CHECK(consumer.availableData() == wrapping.size() + after.size());
        reader.done();
        CHECK(consumer.availableData() == after.size());
        void* next = reader.get(after.size());
        CHECK(memcmp(next, after.data(), after.size()) == 0);
        reader.done();

        // get() waits for the bytes to arrive.
        std::vector<unsigned char> late = item(200, 5);
        std::thread later([&] {
            struct timespec pause = {0, 100 * 1000000L};
            nanosleep(&pause, 0);
            producer.put(late.data(), late.size());
        });
        void* waited = reader.get(late.size());
        later.join();
        CHECK(memcmp(waited, late.data(), late.size()) == 0);
        reader.done();

        // More than the ring can ever hold is an error, not a wait for ever.
        bool threw = false;
        try {
            reader.get(data);
        } catch (CRangeError&) {
            threw = true;
        }
        CHECK(threw);
    }
    CRingBuffer::remove(name);
}

void testRing(const std::string& name)
{
    CRingBuffer::create(name, 4096, 2);
    {
        CTestRingBuffer test(name);
        CHECK(test.availableData() == 0);
        CHECK(test.put("abcdef", 6) == 6);
        CHECK(test.put("gh", 2) == 2);
        CHECK(test.availableData() == 8);
        CHECK(std::string(test.getBuffer().begin(), test.getBuffer().end()) == "abcdefgh");
        char got[16] = "";
        CHECK(test.peek(got, 3) == 3 && memcmp(got, "abc", 3) == 0);
        CHECK(test.get(got, 2) == 2 && memcmp(got, "ab", 2) == 0);
        test.skip(1);
        CHECK(test.get(got, sizeof got) == 5 && memcmp(got, "defgh", 5) == 0);
        bool threw = false;
        try {
            test.get(got, sizeof got, 1);
        } catch (std::runtime_error&) {
            threw = true;
        }
        CHECK(threw);
        threw = false;
        try {
            test.skip(1);
        } catch (std::runtime_error&) {
            threw = true;
        }
        CHECK(threw);

        // Through the base class, as code under test sees it; the ring itself is untouched
        // (the test ring holds a consumer slot of it, nothing else).
        CRingBuffer& base = test;
        CHECK(base.put("xyz", 3) == 3);
        CHECK(base.availableData() == 3);
        CHECK(base.get(got, 3, 3) == 3 && memcmp(got, "xyz", 3) == 0);
        CRingBuffer::Usage usage = test.getUsage();
        CHECK(usage.s_consumers.size() == 1 && usage.s_consumers[0].second == 0);
        CHECK(usage.s_producer == -1);
    }
    CRingBuffer::remove(name);
}

}  // namespace

int main()
{
    const std::string name = "cxxzcopy" + std::to_string(getpid());
    try {
        zeroCopy(name);
        testRing(name + "t");
    } catch (CException& e) {
        fprintf(stderr, "unexpected exception: %s\n", e.ReasonText());
        failures++;
    }
    ring_remove(name.c_str());
    ring_remove((name + "t").c_str());
    return failures != 0;
}
