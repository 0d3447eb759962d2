/* The C side of the Python tests and benchmark: a producer or consumer of NSCLDAQ ring
 * items (uint32 size counting itself, uint32 type, body; little-endian, as on x86).
 *
 *   df_items produce RING COUNT BODY SEED    puts COUNT items
 *   df_items consume RING COUNT BODY SEED    gets COUNT items, checking every byte;
 *                                            says "attached" first, "items/s N MB/s M" last
 *   df_items flood RING COUNT BODY SEED      as produce, but the bodies' bytes after the
 *                                            index are item 0's (the benchmark's producer:
 *                                            a put is then a memcpy)
 *   df_items drain RING COUNT BODY SEED      as consume, but reads the items in place
 *                                            (ring_borrow) and checks only their headers:
 *                                            the C reference of the Python benchmark
 *
 * Item i has type 1 + i % 65535 (never 0 in the low 16 bits, which the remote feeder
 * takes for the other byte order, as NSCLDAQ does) and a body of BODY bytes (BODY 0: 4 to 3003 bytes, varying
 * with i) whose first 4 bytes are i and byte j >= 4 is body_byte(SEED, i, j). Every wait
 * has a timeout, so a lost item is a failure, not a hang. Exit status 0 when every item
 * arrived whole and in order. */
#define _POSIX_C_SOURCE 200809L
#include <daqflow.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { MAX_BODY = 1 << 20, WAIT_MS = 30000 };

static unsigned char body_byte(uint32_t seed, uint32_t i, uint32_t j)
{
    return (unsigned char)(i * 131u + j * 7u + seed);
}

static uint32_t item_type(uint32_t i)
{
    return 1 + i % 65535;
}

static uint32_t body_len(uint32_t fixed, uint32_t i)
{
    return fixed ? fixed : 4 + (i * 2654435761u >> 7) % 3000;
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int produce(ring_client *ring, uint32_t count, uint32_t fixed, uint32_t seed, unsigned char *item, int flood)
{
    for (uint32_t i = 0; i < count; i++) {
        uint32_t len = body_len(fixed, i), size = len + 8, type = item_type(i);
        memcpy(item, &size, 4);
        memcpy(item + 4, &type, 4);
        memcpy(item + 8, &i, 4);
        if (!flood || i == 0)
            for (uint32_t j = 4; j < len; j++) item[8 + j] = body_byte(seed, i, j);
        int rc = ring_put(ring, item, size, WAIT_MS);
        if (rc != 0) {
            fprintf(stderr, "df_items: put of item %u: %d (%s)\n", i, rc, daqflow_last_error());
            return 1;
        }
    }
    return 0;
}

static int get_exactly(ring_client *ring, unsigned char *buf, size_t n, uint32_t i)
{
    ssize_t got = ring_get(ring, buf, n, n, WAIT_MS);
    if (got != (ssize_t)n) {
        fprintf(stderr, "df_items: get of item %u: %ld (%s)\n", i, (long)got, daqflow_last_error());
        return 1;
    }
    return 0;
}

static int consume(ring_client *ring, uint32_t count, uint32_t fixed, uint32_t seed, unsigned char *item)
{
    double start = 0, bytes = 0;
    printf("attached\n");
    fflush(stdout);
    for (uint32_t i = 0; i < count; i++) {
        uint32_t size, type, len = body_len(fixed, i), index;
        if (get_exactly(ring, item, 8, i)) return 1;
        if (i == 0) start = now();
        memcpy(&size, item, 4);
        memcpy(&type, item + 4, 4);
        if (size != len + 8 || type != item_type(i)) {
            fprintf(stderr, "df_items: item %u: size %u type %u, expected %u and %u\n", i, size, type, len + 8,
                    item_type(i));
            return 1;
        }
        if (get_exactly(ring, item, len, i)) return 1;
        memcpy(&index, item, 4);
        if (index != i) {
            fprintf(stderr, "df_items: item %u carries index %u\n", i, index);
            return 1;
        }
        for (uint32_t j = 4; j < len; j++) {
            if (item[j] != body_byte(seed, i, j)) {
                fprintf(stderr, "df_items: item %u byte %u is %u, expected %u\n", i, j, item[j], body_byte(seed, i, j));
                return 1;
            }
        }
        bytes += size;
    }
    double seconds = now() - start;
    printf("items/s %.0f MB/s %.1f\n", count / seconds, bytes / seconds / 1e6);
    return 0;
}

/* What Consumer.items() does, in C: borrow what is there (up to 1 MiB), walk the whole
 * items in it, release them. Fixed-size items only (BODY > 0). */
static int drain(ring_client *ring, uint32_t count, uint32_t fixed)
{
    double start = 0, bytes = 0;
    uint32_t i = 0, size = fixed + 8;
    printf("attached\n");
    fflush(stdout);
    while (i < count) {
        ring_span spans[2];
        ssize_t lent = ring_borrow(ring, size, 1 << 20, spans, WAIT_MS);
        if (lent < 0) {
            fprintf(stderr, "df_items: borrow at item %u: %ld (%s)\n", i, (long)lent, daqflow_last_error());
            return 1;
        }
        if (i == 0) start = now();
        size_t at = 0;
        const unsigned char *p = spans[0].data;
        while (at + size <= spans[0].len && i < count) {
            uint32_t got, type;
            memcpy(&got, p + at, 4);
            memcpy(&type, p + at + 4, 4);
            if (got != size || type != item_type(i)) {
                fprintf(stderr, "df_items: item %u: size %u type %u\n", i, got, type);
                return 1;
            }
            at += size;
            bytes += size;
            i++;
        }
        if (at == 0) {
            /* The item wraps round the end of the ring (lent >= size: ring_borrow's min). */
            unsigned char head[8];
            size_t first = spans[0].len < 8 ? spans[0].len : 8;
            uint32_t got, type;
            memcpy(head, spans[0].data, first);
            memcpy(head + first, spans[1].data, 8 - first);
            memcpy(&got, head, 4);
            memcpy(&type, head + 4, 4);
            if (got != size || type != item_type(i)) {
                fprintf(stderr, "df_items: item %u: size %u type %u\n", i, got, type);
                return 1;
            }
            at = size;
            bytes += size;
            i++;
        }
        ring_release(ring, at);
    }
    double seconds = now() - start;
    printf("items/s %.0f MB/s %.1f\n", count / seconds, bytes / seconds / 1e6);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 6 || (strcmp(argv[1], "produce") && strcmp(argv[1], "flood") && strcmp(argv[1], "consume") &&
                      strcmp(argv[1], "drain"))) {
        fprintf(stderr, "usage: df_items produce|flood|consume|drain RING COUNT BODY SEED\n");
        return 2;
    }
    uint32_t count = (uint32_t)strtoul(argv[3], NULL, 0), fixed = (uint32_t)strtoul(argv[4], NULL, 0);
    uint32_t seed = (uint32_t)strtoul(argv[5], NULL, 0);
    if ((fixed && fixed < 4) || fixed > MAX_BODY) {
        fprintf(stderr, "df_items: BODY must be 0 or 4 to %d\n", MAX_BODY);
        return 2;
    }
    unsigned char *item = malloc(MAX_BODY + 8);
    ring_client *ring;
    int flood = !strcmp(argv[1], "flood"), producer = flood || !strcmp(argv[1], "produce");
    int rc = producer ? ring_attach_producer(argv[2], &ring) : ring_attach_consumer(argv[2], &ring);
    if (!item || rc < 0) {
        fprintf(stderr, "df_items: attach to %s: %d (%s)\n", argv[2], rc, daqflow_last_error());
        return 1;
    }
    if (!fixed && !strcmp(argv[1], "drain")) {
        fprintf(stderr, "df_items: drain needs a fixed BODY\n");
        return 2;
    }
    int failed = producer              ? produce(ring, count, fixed, seed, item, flood)
                 : !strcmp(argv[1], "drain") ? drain(ring, count, fixed)
                                             : consume(ring, count, fixed, seed, item);
    ring_detach(ring);
    free(item);
    return failed;
}
