// CRingBuffer::putv, daqflow's batch put for NSCLDAQ's class: records go whole and in
// order, the count says how many went before the timeout, a record that can never fit
// throws CRangeError with nothing put, and only a producer may call it.
#include <CRingBuffer.h>
#include <RangeError.h>
#include <StateException.h>

#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "nscldaq_check.h"

namespace {

void batches(const std::string& name)
{
    CRingBuffer::create(name, 4096, 2);  // 8064 data bytes: 8 records of 1000 fit
    CRingBuffer consumer(name, CRingBuffer::consumer);
    CRingBuffer producer(name, CRingBuffer::producer);
    std::vector<std::vector<unsigned char> > records(10, std::vector<unsigned char>(1000));
    std::vector<struct iovec> iov(records.size());
    for (size_t i = 0; i < records.size(); i++) {
        memset(records[i].data(), static_cast<int>(i + 1), records[i].size());
        iov[i].iov_base = records[i].data();
        iov[i].iov_len = records[i].size();
    }
    std::vector<unsigned char> out(10000);

    CHECK(producer.putv(iov.data(), 3) == 3);
    CHECK(consumer.get(out.data(), out.size(), 1, 0) == 3000);
    CHECK(out[0] == 1 && out[1000] == 2 && out[2999] == 3);

    // A 0 s timeout: the records that fit, then the rest from where it stopped.
    CHECK(producer.putv(iov.data(), iov.size(), 0) == 8);
    CHECK(consumer.get(out.data(), out.size(), 1, 0) == 8000);
    CHECK(out[7999] == 8);
    CHECK(producer.putv(iov.data() + 8, 2, 0) == 2);
    CHECK(consumer.get(out.data(), out.size(), 1, 0) == 2000);
    CHECK(out[0] == 9 && out[1999] == 10);

    std::vector<unsigned char> big(8064);
    iov[1].iov_base = big.data();
    iov[1].iov_len = big.size();
    bool threw = false;
    try {
        producer.putv(iov.data(), 2, 0);
    } catch (CRangeError&) {
        threw = true;
    }
    CHECK(threw);
    CHECK(consumer.availableData() == 0);

    threw = false;
    try {
        consumer.putv(iov.data(), 1, 0);
    } catch (CStateException&) {
        threw = true;
    }
    CHECK(threw);
}

}  // namespace

int main()
{
    const std::string name = "cxxputv" + std::to_string(getpid());
    try {
        batches(name);
    } catch (CException& e) {
        fprintf(stderr, "unexpected exception: %s\n", e.ReasonText());
        failures++;
    }
    ring_remove(name.c_str());
    return failures != 0;
}
