/*
 * Test helper: attaches as the producer of a ring, puts `bytes` bytes (byte i is
 * i % 251), prints "ready <pid>" and holds the ring until its standard input closes.
 * Usage: ring_producer ring bytes
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "daqflow.h"

int main(int argc, char **argv)
{
    ring_client *producer;
    unsigned char *data;
    size_t bytes;
    char line[64];
    int rc;

    if (argc != 3) {
        fprintf(stderr, "usage: %s ring bytes\n", argv[0]);
        return 2;
    }
    bytes = strtoul(argv[2], NULL, 10);
    rc = ring_attach_producer(argv[1], &producer);
    if (rc < 0) {
        fprintf(stderr, "attach: %s\n", daqflow_last_error());
        return 1;
    }
    data = malloc(bytes ? bytes : 1);
    if (data == NULL) {
        return 1;
    }
    for (size_t i = 0; i < bytes; i++) {
        data[i] = (unsigned char)(i % 251);
    }
    if (bytes > 0 && (rc = ring_put(producer, data, bytes, 5000)) < 0) {
        fprintf(stderr, "put: %s\n", daqflow_last_error());
        return 1;
    }
    printf("ready %ld\n", (long)getpid());
    fflush(stdout);
    while (fgets(line, sizeof line, stdin) != NULL) {
    }
    free(data);
    return ring_detach(producer) < 0;
}
