// An unmodified NSCLDAQ-style consumer of tcp://host/ring: CRingBuffer(url, consumer),
// or with --access CRingAccess::daqConsumeFrom(url) after asking for a proxy ring of
// 1 MiB and 7 consumer slots (it then prints "proxy <data bytes> <slots>"),
// then whole ring items checked one by one (the items of examples/remote_role.rs:
// [u32 size][u32 type][u64 sequence][pattern], some byte-swapped) until the end item.
// Built by c-tests/run.sh but run by tests/remote_cxx.rs inside network namespaces.
#include <CRemoteAccess.h>
#include <CRingBuffer.h>
#include <Exception.h>

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <memory>
#include <string>
#include <vector>

namespace {

uint32_t word(const unsigned char* p, bool swapped)
{
    return swapped ? (uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3])
                   : (uint32_t(p[3]) << 24 | uint32_t(p[2]) << 16 | uint32_t(p[1]) << 8 | p[0]);
}

bool fill(CRingBuffer& ring, unsigned char* into, size_t n)
{
    return ring.get(into, n, n, 60) == n;  // 0: a minute without data
}

}  // namespace

int main(int argc, char** argv)
{
    bool access = argc == 3 && strcmp(argv[2], "--access") == 0;
    if (argc != 2 && !access) {
        fprintf(stderr, "usage: %s tcp://host/ring [--access]\n", argv[0]);
        return 2;
    }
    try {
        if (access) {
            CRingAccess::setProxyRingSize(1 << 20);
            CRingAccess::setProxyMaxConsumers(7);
        }
        std::unique_ptr<CRingBuffer> attached(access ? CRingAccess::daqConsumeFrom(argv[1])
                                                     : new CRingBuffer(argv[1], CRingBuffer::consumer));
        CRingBuffer& ring = *attached;
        if (access) {
            // The consumer's usage is its proxy ring's, as with NSCLDAQ.
            CRingBuffer::Usage usage = ring.getUsage();
            printf("proxy %zu %zu\n", usage.s_bufferSpace, usage.s_maxConsumers);
        }
        printf("attached\n");
        fflush(stdout);
        std::vector<unsigned char> item(1 << 20);
        uint64_t items = 0, bytes = 0;
        for (;;) {
            if (!fill(ring, item.data(), 16)) {
                fprintf(stderr, "stalled after %llu items\n", (unsigned long long)items);
                return 1;
            }
            bool swapped = (word(item.data() + 4, false) & 0xffff) == 0;
            uint32_t size = word(item.data(), swapped), type = word(item.data() + 4, swapped);
            uint64_t seq = 0;
            for (int i = 7; i >= 0; i--) seq = seq << 8 | item[8 + i];
            if (size < 16 || size > item.size() || seq != items) {
                fprintf(stderr, "item %llu: size %u sequence %llu\n", (unsigned long long)items, size,
                        (unsigned long long)seq);
                return 1;
            }
            if (!fill(ring, item.data() + 16, size - 16)) {
                fprintf(stderr, "stalled in item %llu\n", (unsigned long long)items);
                return 1;
            }
            for (uint32_t i = 16; i < size && type != 2; i++) {
                if (item[i] != (unsigned char)(uint8_t(seq) * 31 + uint8_t(i))) {
                    fprintf(stderr, "item %llu: byte %u differs\n", (unsigned long long)items, i);
                    return 1;
                }
            }
            bytes += size;
            if (type == 2) break;
            items++;
        }
        printf("items %llu bytes %llu\n", (unsigned long long)items, (unsigned long long)bytes);
        return 0;
    } catch (CException& e) {
        fprintf(stderr, "%s: %s\n", e.ReasonText(), e.WasDoing());
        return 1;
    }
}
