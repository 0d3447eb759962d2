/* ring_putv from C, with POSIX iovecs: records go whole and in order, the count says how
 * many went when the ring fills, nothing goes when a record can never fit or an iovec is
 * bad, and a consumer reads exactly the records' bytes. */
#include <daqflow.h>

#include "check.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#define RECORDS 10
#define RECORD 1000

static unsigned char data[RECORDS][RECORD];
static unsigned char big[9000];
static unsigned char out[RECORDS * RECORD];

/* Everything the consumer can read now, into out; returns the byte count. */
static size_t drain(ring_client *c)
{
    size_t got = 0;
    ssize_t n;
    while (got < sizeof out && (n = ring_get(c, out + got, 1, sizeof out - got, 0)) > 0) got += (size_t)n;
    return got;
}

int main(void)
{
    char name[64];
    ring_client *p = NULL, *c = NULL;
    struct iovec iov[RECORDS + 1];
    size_t i, got;
    snprintf(name, sizeof name, "cputv%ld", (long)getpid());
    /* 4096 requested: 8064 data bytes, so 8 records of 1000 fit at once. */
    CHECK(ring_create(name, 4096, 2) == 0);
    CHECK(ring_attach_consumer(name, &c) == 0);
    CHECK(ring_attach_producer(name, &p) == 0);
    if (!c || !p) return 1;
    for (i = 0; i < RECORDS; i++) {
        memset(data[i], (int)(i + 1), RECORD);
        iov[i].iov_base = data[i];
        iov[i].iov_len = RECORD;
    }

    /* Three records and an empty one ({NULL, 0} is fine). */
    iov[RECORDS].iov_base = NULL;
    iov[RECORDS].iov_len = 0;
    {
        struct iovec some[4];
        some[0] = iov[0];
        some[1] = iov[RECORDS];
        some[2] = iov[1];
        some[3] = iov[2];
        CHECK(ring_putv(p, some, 4, 0) == 4);
    }
    got = drain(c);
    CHECK(got == 3 * RECORD && out[0] == 1 && out[RECORD] == 2 && out[3 * RECORD - 1] == 3);

    /* A full ring: the records that fit, whole; then the rest from where it stopped. */
    CHECK(ring_putv(p, iov, RECORDS, 0) == 8);
    got = drain(c);
    CHECK(got == 8 * RECORD && out[7 * RECORD] == 8 && out[8 * RECORD - 1] == 8);
    CHECK(ring_putv(p, iov + 8, 2, 0) == 2);
    got = drain(c);
    CHECK(got == 2 * RECORD && out[0] == 9 && out[2 * RECORD - 1] == 10);

    /* Nothing fits: -ETIMEDOUT, nothing put. */
    CHECK(ring_put(p, big, 8063, 0) == 0);
    CHECK(ring_putv(p, iov, 1, 0) == -ETIMEDOUT);
    CHECK(drain(c) == 8063);

    /* Refused with nothing put: a record that can never fit, a NULL with a length. */
    iov[1].iov_base = big;
    iov[1].iov_len = 8064;
    CHECK(ring_putv(p, iov, 2, 0) == -EMSGSIZE);
    CHECK(strstr(daqflow_last_error(), "record 1 of 2") != NULL);
    iov[1].iov_base = NULL;
    iov[1].iov_len = 5;
    CHECK(ring_putv(p, iov, 2, 0) == -EINVAL);
    CHECK(ring_putv(p, NULL, 1, 0) == -EINVAL);
    CHECK(ring_putv(p, NULL, 0, 0) == 0);
    CHECK(ring_putv(c, iov, 1, 0) == -EINVAL);
    CHECK(ring_available_data(c) == 0);

    /* A count no array of iovecs can have (count * sizeof(struct iovec) past SSIZE_MAX,
     * e.g. a size computed from a failed call): -EINVAL before any iovec is read. The
     * one real iovec ends a page followed by an inaccessible one, so reading past it
     * is a segfault, not a quiet pass over whatever memory follows. */
    {
        long page = sysconf(_SC_PAGESIZE);
        int zero = open("/dev/zero", O_RDWR); /* MAP_ANONYMOUS is not POSIX (the C99 build) */
        unsigned char *pages = mmap(NULL, 2 * (size_t)page, PROT_READ | PROT_WRITE, MAP_PRIVATE, zero, 0);
        CHECK(zero >= 0 && pages != MAP_FAILED);
        if (zero >= 0) close(zero);
        if (pages != MAP_FAILED) {
            struct iovec *last = (struct iovec *)(pages + page) - 1;
            CHECK(mprotect(pages + page, (size_t)page, PROT_NONE) == 0);
            last->iov_base = data[0];
            last->iov_len = RECORD;
            CHECK(ring_putv(p, last, SIZE_MAX / 2 / sizeof(struct iovec) + 1, 0) == -EINVAL);
            CHECK(ring_putv(p, last, SIZE_MAX / sizeof(struct iovec), 0) == -EINVAL);
            CHECK(ring_available_data(c) == 0);
            munmap(pages, 2 * (size_t)page);
        }
    }

    ring_detach(p);
    ring_detach(c);
    CHECK(ring_remove(name) == 0);
    return failures != 0;
}
