/* The C side of the C/C++ ring pairs (started by nscldaq_pair, not run on its own):
 *   peer_ring produce RING BYTES SEED   puts BYTES bytes of the test stream in chunks
 *   peer_ring consume RING BYTES SEED   gets and checks BYTES bytes of it
 * The stream's byte i is stream_byte(SEED, i); chunk sizes vary so that records straddle
 * the top of the ring. Every wait has a timeout, so a lost byte is a failure, not a hang.
 * Exit status 0 when every byte arrived in order. */
#include <daqflow.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_CHUNK = 3000, WAIT_MS = 20000 };

static unsigned char stream_byte(unsigned long seed, unsigned long i)
{
    return (unsigned char)(i * 131u + seed + (i >> 9));
}

/* Sizes 1..MAX_CHUNK from a small LCG, the same sequence on every run. */
static size_t next_chunk(unsigned long *state)
{
    *state = *state * 1103515245u + 12345u;
    return 1 + (size_t)((*state >> 8) % MAX_CHUNK);
}

static int produce(ring_client *ring, unsigned long total, unsigned long seed)
{
    unsigned char buf[MAX_CHUNK];
    unsigned long done = 0, state = seed;
    while (done < total) {
        size_t n = next_chunk(&state), i;
        int rc;
        if (n > total - done) n = (size_t)(total - done);
        for (i = 0; i < n; i++) buf[i] = stream_byte(seed, done + i);
        if ((rc = ring_put(ring, buf, n, WAIT_MS)) != 0) {
            fprintf(stderr, "peer_ring: put at byte %lu: %d (%s)\n", done, rc, daqflow_last_error());
            return 1;
        }
        done += n;
    }
    return 0;
}

static int consume(ring_client *ring, unsigned long total, unsigned long seed)
{
    unsigned char buf[MAX_CHUNK];
    unsigned long done = 0, state = seed ^ 0x5a5a;
    while (done < total) {
        size_t max = next_chunk(&state), i;
        ssize_t got;
        if (max > total - done) max = (size_t)(total - done);
        got = ring_get(ring, buf, 1, max, WAIT_MS);
        if (got <= 0) {
            fprintf(stderr, "peer_ring: get at byte %lu: %ld (%s)\n", done, (long)got, daqflow_last_error());
            return 1;
        }
        for (i = 0; i < (size_t)got; i++) {
            if (buf[i] != stream_byte(seed, done + i)) {
                fprintf(stderr, "peer_ring: byte %lu is %u, expected %u\n", done + i, buf[i],
                        stream_byte(seed, done + i));
                return 1;
            }
        }
        done += (unsigned long)got;
    }
    return 0;
}

int main(int argc, char **argv)
{
    ring_client *ring = NULL;
    unsigned long total, seed;
    int producing, rc, status;

    if (argc != 5 || (strcmp(argv[1], "produce") != 0 && strcmp(argv[1], "consume") != 0)) {
        fprintf(stderr, "usage: peer_ring produce|consume RING BYTES SEED\n");
        return 2;
    }
    producing = strcmp(argv[1], "produce") == 0;
    total = strtoul(argv[3], NULL, 10);
    seed = strtoul(argv[4], NULL, 10);
    rc = producing ? ring_attach_producer(argv[2], &ring) : ring_attach_consumer(argv[2], &ring);
    if (rc != 0) {
        fprintf(stderr, "peer_ring: attach to %s: %d (%s)\n", argv[2], rc, daqflow_last_error());
        return 1;
    }
    status = producing ? produce(ring, total, seed) : consume(ring, total, seed);
    ring_detach(ring);
    return status;
}
