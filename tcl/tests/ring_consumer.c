/*
 * Test helper: attaches as a consumer of a ring and prints "attached <slot> <pid>".
 * Each line "get N" on standard input takes N bytes (waiting up to 5 s), checks that
 * they continue the producer's pattern (byte i is i % 251) and prints "got N". Detaches
 * when standard input closes. With a count, attaches that many consumers (the first
 * one reads) and prints the first one's slot.
 * Usage: ring_consumer ring ?count?
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "daqflow.h"

int main(int argc, char **argv)
{
    ring_client *consumer, **extra;
    char line[64];
    size_t offset = 0;
    int rc, count = 1;

    if (argc < 2 || argc > 3 || (argc == 3 && (count = atoi(argv[2])) < 1)) {
        fprintf(stderr, "usage: %s ring ?count?\n", argv[0]);
        return 2;
    }
    rc = ring_attach_consumer(argv[1], &consumer);
    if (rc < 0) {
        fprintf(stderr, "attach: %s\n", daqflow_last_error());
        return 1;
    }
    extra = calloc((size_t)count, sizeof *extra);
    if (extra == NULL) {
        return 1;
    }
    for (int i = 1; i < count; i++) {
        if (ring_attach_consumer(argv[1], &extra[i]) < 0) {
            fprintf(stderr, "attach %d: %s\n", i, daqflow_last_error());
            return 1;
        }
    }
    printf("attached %d %ld\n", ring_slot(consumer), (long)getpid());
    fflush(stdout);
    while (fgets(line, sizeof line, stdin) != NULL) {
        size_t want;
        unsigned char *buf;
        ssize_t got;
        if (sscanf(line, "get %zu", &want) != 1) {
            printf("bad request\n");
            fflush(stdout);
            continue;
        }
        buf = malloc(want ? want : 1);
        if (buf == NULL) {
            return 1;
        }
        got = ring_get(consumer, buf, want, want, 5000);
        if (got < 0) {
            printf("error %s\n", daqflow_last_error());
        } else {
            int ok = 1;
            for (ssize_t i = 0; i < got; i++) {
                ok &= buf[i] == (unsigned char)((offset + (size_t)i) % 251);
            }
            offset += (size_t)got;
            printf(ok ? "got %zd\n" : "corrupt %zd\n", got);
        }
        fflush(stdout);
        free(buf);
    }
    for (int i = 1; i < count; i++) {
        ring_detach(extra[i]);
    }
    free(extra);
    return ring_detach(consumer) < 0;
}
