// The generated header must compile as C++ and link (cbindgen's cpp_compat): a C++
// readout program uses the ring through the same calls as C.
#include <daqflow.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <unistd.h>
#include <vector>

namespace {

int fail(const char *what, long rc) {
    std::fprintf(stderr, "%s: %ld (%s)\n", what, rc, daqflow_last_error());
    return 1;
}

}  // namespace

int main() {
    const std::string name = "cxx-header-" + std::to_string(getpid());
    int rc = ring_create(name.c_str(), 65536, 4);
    if (rc != 0) return fail("ring_create", rc);

    ring_client *producer = nullptr;
    ring_client *consumer = nullptr;
    int status = 1;
    if ((rc = ring_attach_consumer(name.c_str(), &consumer)) != 0) {
        fail("ring_attach_consumer", rc);
    } else if ((rc = ring_attach_producer(name.c_str(), &producer)) != 0) {
        fail("ring_attach_producer", rc);
    } else {
        std::vector<unsigned char> out(1000), in(1000);
        for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<unsigned char>(i * 7);
        ring_usage_info info{};
        ring_span spans[2];
        if ((rc = ring_put(producer, out.data(), out.size(), 1000)) != 0) {
            fail("ring_put", rc);
        } else if (ring_get(consumer, in.data(), in.size(), in.size(), 1000) != static_cast<ssize_t>(in.size()) ||
                   in != out) {
            fail("ring_get round trip", -1);
        } else if ((rc = ring_usage(name.c_str(), &info, nullptr, 0)) != 1 || info.producer_pid != getpid()) {
            fail("ring_usage", rc);
        } else if ((rc = ring_put(producer, out.data(), 70000, 0)) != -EMSGSIZE) {
            fail("oversized ring_put should be -EMSGSIZE", rc);
        } else if ((rc = ring_reserve(producer, 10, spans, 0)) != 0 || spans[0].len + spans[1].len != 10) {
            fail("ring_reserve", rc);
        } else {
            std::memset(spans[0].data, 0x5a, spans[0].len);
            if ((rc = ring_commit(producer, 10)) != 0) return fail("ring_commit", rc);
            status = ring_available_data(consumer) == 10 ? 0 : fail("ring_available_data", -1);
        }
    }
    ring_detach(consumer);
    ring_detach(producer);
    ring_remove(name.c_str());
    return status;
}
