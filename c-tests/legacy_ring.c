/*
 * legacy_ring.c: an independent check of binary compatibility with NSCLDAQ 12.0 rings.
 *
 * Written from spec/ring-format.md alone, never from the Rust sources, so that a layout
 * or protocol mistake the library shares with its own tests still shows up here. The
 * program maps ring objects directly, reads every header field and client record at its
 * byte offset, and plays the part of an unmodified NSCLDAQ program: the legacy claim
 * protocol under the legacy fcntl range lock, the legacy put/get arithmetic with its
 * one-byte gap, and blocking by 3 ms polling (a legacy peer never wakes anybody). Data
 * flows both ways between that code and the library, each side in its own process.
 *
 * Exit status 0 only when every check passed. Every failed check prints file:line with
 * the expected and actual values. alarm() bounds every process so that a hang is a
 * failure, and every ring this program made is removed on the way out.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <daqflow.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the NSCLDAQ ring layout is little endian; records are read as native words"
#endif

/* ---------------------------------------------------------------------------------- */
/* Layout constants, straight from spec/ring-format.md sections 2-4.                  */

#define HDR_FIXED      80u  /* magic + six 8-byte fields */
#define REC_BYTES      16u
#define OFF_MAGIC      0u
#define OFF_NCONS      32u
#define OFF_DATABYTES  40u
#define OFF_PRODREC    48u
#define OFF_CONSREC    56u
#define OFF_DATAOFF    64u
#define OFF_TOPOFF     72u
#define REC_POS        0u
#define REC_PID        8u

#define LEGACY_POLL_NS 3000000L /* the C++ class sleeps 3 ms between checks */

#define PARENT_ALARM_S 240u
#define CHILD_ALARM_S  120u
#define PHASE_LIMIT_MS 90000 /* one streaming phase; far above what it needs */
#define MSG_WAIT_MS    20000

/* ---------------------------------------------------------------------------------- */
/* Reporting.                                                                         */

static int failures;

static void fail_at(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s:%d: [pid %ld] FAILED: ", file, line, (long)getpid());
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
    failures++;
}

#define FAIL(...) fail_at(__FILE__, __LINE__, __VA_ARGS__)
#define CHECK(cond, ...) \
    do { if (!(cond)) fail_at(__FILE__, __LINE__, __VA_ARGS__); } while (0)
#define CHECK_U(actual, expected, what)                                                \
    do {                                                                               \
        unsigned long long a_ = (unsigned long long)(actual);                          \
        unsigned long long e_ = (unsigned long long)(expected);                        \
        if (a_ != e_)                                                                  \
            fail_at(__FILE__, __LINE__, "%s: expected %llu, actual %llu", (what), e_, a_); \
    } while (0)
#define CHECK_I(actual, expected, what)                                                \
    do {                                                                               \
        long long a_ = (long long)(actual);                                            \
        long long e_ = (long long)(expected);                                          \
        if (a_ != e_)                                                                  \
            fail_at(__FILE__, __LINE__, "%s: expected %lld, actual %lld", (what), e_, a_); \
    } while (0)

/* A library call that must succeed; says which errno and what the library said. */
static int lib_ok_at(const char *file, int line, long long rc, const char *what)
{
    if (rc >= 0)
        return 1;
    fail_at(file, line, "%s returned %lld (%s): %s", what, rc, strerror((int)-rc),
            daqflow_last_error());
    return 0;
}
#define LIB_OK(rc, what) lib_ok_at(__FILE__, __LINE__, (long long)(rc), (what))

/* A library call that must fail with exactly this errno. */
static void lib_err_at(const char *file, int line, long long rc, int want, const char *what)
{
    if (rc == -(long long)want)
        return;
    fail_at(file, line, "%s: expected -%d (%s), actual %lld (%s)", what, want,
            strerror(want), rc, rc < 0 ? strerror((int)-rc) : "success");
}
#define LIB_ERR(rc, want, what) lib_err_at(__FILE__, __LINE__, (long long)(rc), (want), (what))

/* ---------------------------------------------------------------------------------- */
/* Rings and children to clean up, also from the SIGALRM handler.                     */

#define MAX_RINGS    32
#define MAX_CHILDREN 32
#define NAME_CAP     96

static char ring_names[MAX_RINGS][NAME_CAP];
static volatile sig_atomic_t n_rings;
static pid_t children[MAX_CHILDREN];
static volatile sig_atomic_t n_children;
static int in_child;

static const char *new_ring_name(const char *tag)
{
    char *slot;
    if (n_rings >= MAX_RINGS) {
        FAIL("too many rings for the cleanup table");
        exit(1);
    }
    slot = ring_names[n_rings];
    snprintf(slot, NAME_CAP, "legacy_ring_test_%ld_%s", (long)getpid(), tag);
    n_rings = n_rings + 1;
    return slot;
}

/* Copied by hand: a name longer than the buffer is cut, which shm_open then rejects. */
static void shm_path(char *out, size_t cap, const char *name)
{
    size_t i = 0;
    out[0] = '/';
    while (name[i] && i + 2 < cap) {
        out[i + 1] = name[i];
        i++;
    }
    out[i + 1] = 0;
}

static void cleanup_rings(void)
{
    int i;
    char path[NAME_CAP + 2];
    if (in_child)
        return;
    for (i = 0; i < n_rings; i++) {
        int rc = ring_remove(ring_names[i]);
        shm_path(path, sizeof path, ring_names[i]);
        /* Fallback for a ring the library refuses (say a half-made or corrupt one). */
        if (shm_unlink(path) == 0 && rc >= 0)
            FAIL("ring_remove(%s) returned %d but /dev/shm%s was still there", ring_names[i],
                 rc, path);
    }
    n_rings = 0;
}

static void on_alarm(int sig)
{
    static const char msg[] = "legacy_ring: FAILED: timed out (a hang counts as a failure)\n";
    int i;
    char path[NAME_CAP + 2];
    (void)sig;
    if (write(2, msg, sizeof msg - 1) < 0) {
        /* nothing else to do in a signal handler */
    }
    for (i = 0; i < n_children; i++)
        if (children[i] > 0)
            kill(children[i], SIGKILL);
    for (i = 0; i < n_rings; i++) {
        shm_path(path, sizeof path, ring_names[i]);
        shm_unlink(path);
    }
    _exit(1);
}

/* ---------------------------------------------------------------------------------- */
/* Small helpers.                                                                     */

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ns(long ns)
{
    struct timespec ts;
    ts.tv_sec = ns / 1000000000L;
    ts.tv_nsec = ns % 1000000000L;
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static uint64_t get_le64(const unsigned char *p)
{
    uint64_t v = 0;
    int i;
    for (i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static void put_le64(unsigned char *p, uint64_t v)
{
    int i;
    for (i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get_le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_le32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

static uint32_t mix32(uint32_t x)
{
    x ^= x >> 16;
    x *= 0x7feb352dU;
    x ^= x >> 15;
    x *= 0x846ca68bU;
    x ^= x >> 16;
    return x;
}

static uint64_t page_size(void)
{
    long p = sysconf(_SC_PAGESIZE);
    return p > 0 ? (uint64_t)p : 4096u;
}

/* ---------------------------------------------------------------------------------- */
/* The legacy side: what NSCLDAQ's CRingBuffer does, per the spec.                     */

#define SLOT_PRODUCER (-1)
#define SLOT_NONE     (-2)

struct lring {
    int fd;
    unsigned char *base;
    uint64_t size;      /* mapping size = object size */
    uint64_t n;         /* max consumers */
    uint64_t prod_rec;  /* offset of the producer record */
    uint64_t cons_rec;  /* offset of consumer record 0 */
    uint64_t B, T, D;   /* dataOffset, topOffset, dataBytes */
    int slot;           /* SLOT_PRODUCER, a consumer slot, or SLOT_NONE */
};

static uint64_t rec_off(const struct lring *r, int slot)
{
    return slot == SLOT_PRODUCER ? r->prod_rec : r->cons_rec + REC_BYTES * (uint64_t)slot;
}

static uint64_t *pos_word(const struct lring *r, int slot)
{
    return (uint64_t *)(void *)(r->base + rec_off(r, slot) + REC_POS);
}

static int32_t *pid_word(const struct lring *r, int slot)
{
    return (int32_t *)(void *)(r->base + rec_off(r, slot) + REC_PID);
}

static uint64_t ld_pos(const struct lring *r, int slot)
{
    return __atomic_load_n(pos_word(r, slot), __ATOMIC_ACQUIRE);
}

static void st_pos(const struct lring *r, int slot, uint64_t v)
{
    __atomic_store_n(pos_word(r, slot), v, __ATOMIC_RELEASE);
}

static int32_t ld_pid(const struct lring *r, int slot)
{
    return __atomic_load_n(pid_word(r, slot), __ATOMIC_ACQUIRE);
}

static void st_pid(const struct lring *r, int slot, int32_t v)
{
    __atomic_store_n(pid_word(r, slot), v, __ATOMIC_SEQ_CST);
}

/* The header is untrusted input (spec section 3): check it before using any of it. */
static int lr_parse(struct lring *r)
{
    const unsigned char *h = r->base;
    if (r->size < HDR_FIXED + 2 * REC_BYTES || memcmp(h + OFF_MAGIC, "NSCLRing", 9) != 0)
        return -EBADMSG;
    r->n = get_le64(h + OFF_NCONS);
    r->D = get_le64(h + OFF_DATABYTES);
    r->prod_rec = get_le64(h + OFF_PRODREC);
    r->cons_rec = get_le64(h + OFF_CONSREC);
    r->B = get_le64(h + OFF_DATAOFF);
    r->T = get_le64(h + OFF_TOPOFF);
    if (r->n < 1 || r->n > r->size / REC_BYTES)
        return -EBADMSG;
    if (r->prod_rec % 8 || r->cons_rec % 8 || r->prod_rec < HDR_FIXED || r->cons_rec < HDR_FIXED)
        return -EBADMSG;
    if (r->prod_rec + REC_BYTES > r->B || r->cons_rec + REC_BYTES * r->n > r->B)
        return -EBADMSG;
    if (r->T >= r->size || r->B > r->T || r->B + r->D != r->T + 1 || r->D < 2)
        return -EBADMSG;
    return 0;
}

static void lr_close(struct lring *r)
{
    if (r->base)
        munmap(r->base, (size_t)r->size);
    if (r->fd >= 0)
        close(r->fd);
    r->base = NULL;
    r->fd = -1;
}

/* Maps the object without parsing it (for raw byte checks); 0 or -errno. */
static int lr_map(const char *name, struct lring *r)
{
    char path[NAME_CAP + 2];
    struct stat st;
    void *m;
    memset(r, 0, sizeof *r);
    r->fd = -1;
    r->slot = SLOT_NONE;
    shm_path(path, sizeof path, name);
    r->fd = shm_open(path, O_RDWR, 0);
    if (r->fd < 0)
        return -errno;
    if (fstat(r->fd, &st) != 0 || st.st_size <= 0) {
        int e = errno ? errno : EBADMSG;
        lr_close(r);
        return -e;
    }
    r->size = (uint64_t)st.st_size;
    m = mmap(NULL, (size_t)r->size, PROT_READ | PROT_WRITE, MAP_SHARED, r->fd, 0);
    if (m == MAP_FAILED) {
        int e = errno;
        lr_close(r);
        return -e;
    }
    r->base = m;
    return 0;
}

static int lr_open(const char *name, struct lring *r)
{
    int rc = lr_map(name, r);
    if (rc == 0 && (rc = lr_parse(r)) != 0)
        lr_close(r);
    return rc;
}

/* Classic (per-process) POSIX record lock, the very range NSCLDAQ locks. */
static int lr_lock_fd(int fd, uint64_t n, short type)
{
    struct flock fl;
    memset(&fl, 0, sizeof fl);
    fl.l_type = type;
    fl.l_whence = SEEK_SET;
    fl.l_start = 0;
    fl.l_len = (off_t)(HDR_FIXED + REC_BYTES * (n + 1));
    while (fcntl(fd, F_SETLKW, &fl) != 0) {
        if (errno != EINTR)
            return -errno;
    }
    return 0;
}

static int lr_lock(const struct lring *r) { return lr_lock_fd(r->fd, r->n, F_WRLCK); }
static void lr_unlock(const struct lring *r) { (void)lr_lock_fd(r->fd, r->n, F_UNLCK); }

static void lr_format_locked(struct lring *r, uint64_t n)
{
    unsigned char *h = r->base;
    uint64_t B = HDR_FIXED + REC_BYTES * (n + 1), i;
    memset(h, 0, 32);
    memcpy(h + OFF_MAGIC, "NSCLRing", 9);
    put_le64(h + OFF_NCONS, n);
    put_le64(h + OFF_DATABYTES, r->size - B);
    put_le64(h + OFF_PRODREC, HDR_FIXED);
    put_le64(h + OFF_CONSREC, HDR_FIXED + REC_BYTES);
    put_le64(h + OFF_DATAOFF, B);
    put_le64(h + OFF_TOPOFF, r->size - 1);
    for (i = 0; i <= n; i++) {
        put_le64(h + HDR_FIXED + REC_BYTES * i + REC_POS, B);
        put_le32(h + HDR_FIXED + REC_BYTES * i + REC_PID, (uint32_t)-1);
    }
}

/* Legacy creation: umask cleared, O_EXCL, ftruncate to the rounded size, format. */
static int lr_create(const char *name, uint64_t data_bytes, uint64_t n, struct lring *r)
{
    char path[NAME_CAP + 2];
    uint64_t pg = page_size();
    uint64_t size = (data_bytes + HDR_FIXED + REC_BYTES * (n + 1) + pg - 1) / pg * pg;
    mode_t old;
    int fd, rc;
    shm_path(path, sizeof path, name);
    old = umask(0);
    fd = shm_open(path, O_CREAT | O_EXCL | O_RDWR, 0666);
    umask(old);
    if (fd < 0)
        return -errno;
    if (ftruncate(fd, (off_t)size) != 0) {
        rc = -errno;
        close(fd);
        shm_unlink(path);
        return rc;
    }
    close(fd);
    if ((rc = lr_map(name, r)) != 0)
        return rc;
    if ((rc = lr_lock_fd(r->fd, n, F_WRLCK)) != 0) {
        lr_close(r);
        return rc;
    }
    lr_format_locked(r, n);
    (void)lr_lock_fd(r->fd, n, F_UNLCK);
    if ((rc = lr_parse(r)) != 0)
        lr_close(r);
    return rc;
}

static int lr_attach_producer(struct lring *r)
{
    int rc = lr_lock(r);
    if (rc)
        return rc;
    if (ld_pid(r, SLOT_PRODUCER) != -1) {
        lr_unlock(r);
        return -EACCES;
    }
    /* The put pointer is kept: it survives producer restarts. */
    st_pid(r, SLOT_PRODUCER, (int32_t)getpid());
    lr_unlock(r);
    r->slot = SLOT_PRODUCER;
    return 0;
}

static int lr_attach_consumer(struct lring *r)
{
    uint64_t i;
    int rc = lr_lock(r);
    if (rc)
        return rc;
    for (i = 0; i < r->n; i++)
        if (ld_pid(r, (int)i) == -1)
            break;
    if (i == r->n) {
        lr_unlock(r);
        return -ENOMEM;
    }
    /* pid 0 tells producers to hold off while the pointer copy may be stale. */
    st_pid(r, (int)i, 0);
    for (;;) {
        uint64_t p = ld_pos(r, SLOT_PRODUCER);
        st_pos(r, (int)i, p);
        if (ld_pos(r, SLOT_PRODUCER) == p)
            break;
    }
    st_pid(r, (int)i, (int32_t)getpid());
    lr_unlock(r);
    r->slot = (int)i;
    return 0;
}

static int lr_detach(struct lring *r)
{
    int rc;
    if (r->slot == SLOT_NONE)
        return 0;
    if ((rc = lr_lock(r)) != 0)
        return rc;
    st_pid(r, r->slot, -1); /* the position is left alone, as legacy does */
    lr_unlock(r);
    r->slot = SLOT_NONE;
    return 0;
}

static int lr_pos_ok(const struct lring *r, uint64_t pos)
{
    return pos >= r->B && pos <= r->T;
}

static uint64_t lr_backlog(const struct lring *r, uint64_t c, uint64_t p)
{
    return p >= c ? p - c : (r->T - c + 1) + (p - r->B);
}

static uint64_t lr_advance(const struct lring *r, uint64_t pos, uint64_t n)
{
    pos += n;
    if (pos > r->T)
        pos -= r->D;
    return pos;
}

/* Free space as the legacy producer sees it; -1 while someone is joining. */
static long long lr_free_space(const struct lring *r, uint64_t p)
{
    uint64_t i, maxb = 0;
    for (i = 0; i < r->n; i++) {
        int32_t pid = ld_pid(r, (int)i);
        uint64_t c;
        if (pid == 0)
            return -1;
        if (pid < 0)
            continue;
        c = ld_pos(r, (int)i);
        if (!lr_pos_ok(r, c))
            return -2;
        if (lr_backlog(r, c, p) > maxb)
            maxb = lr_backlog(r, c, p);
    }
    return (long long)(r->D - 1 - maxb);
}

/* Legacy put: returns n, 0 on timeout (timeout_ms < 0: forever), -ERANGE, -EBADMSG. */
static long long lr_put(struct lring *r, const void *buf, uint64_t n, int timeout_ms)
{
    long long deadline = now_ms() + timeout_ms;
    uint64_t p = ld_pos(r, SLOT_PRODUCER), first;
    if (n > r->D)
        return -ERANGE;
    if (!lr_pos_ok(r, p))
        return -EBADMSG;
    for (;;) {
        long long space = lr_free_space(r, p);
        if (space == -2)
            return -EBADMSG;
        if (space >= 0 && (uint64_t)space >= n)
            break;
        if (timeout_ms >= 0 && now_ms() >= deadline)
            return 0;
        sleep_ns(LEGACY_POLL_NS);
    }
    first = r->T - p + 1;
    if (first > n)
        first = n;
    memcpy(r->base + p, buf, (size_t)first);
    memcpy(r->base + r->B, (const unsigned char *)buf + first, (size_t)(n - first));
    st_pos(r, SLOT_PRODUCER, lr_advance(r, p, n));
    return (long long)n;
}

/* Legacy get: waits for min bytes, copies min(backlog, max); 0 on timeout. */
static long long lr_get(struct lring *r, void *buf, uint64_t max, uint64_t min, int timeout_ms)
{
    long long deadline = now_ms() + timeout_ms;
    uint64_t c = ld_pos(r, r->slot), p, have, n, first;
    if (min > r->D)
        return -ERANGE;
    if (!lr_pos_ok(r, c))
        return -EBADMSG;
    for (;;) {
        p = ld_pos(r, SLOT_PRODUCER);
        if (!lr_pos_ok(r, p))
            return -EBADMSG;
        have = lr_backlog(r, c, p);
        if (have >= min && have > 0)
            break;
        if (timeout_ms >= 0 && now_ms() >= deadline)
            return 0;
        sleep_ns(LEGACY_POLL_NS);
    }
    n = have < max ? have : max;
    first = r->T - c + 1;
    if (first > n)
        first = n;
    memcpy(buf, r->base + c, (size_t)first);
    memcpy((unsigned char *)buf + first, r->base + r->B, (size_t)(n - first));
    st_pos(r, r->slot, lr_advance(r, c, n));
    return (long long)n;
}

static uint64_t lr_my_backlog(const struct lring *r)
{
    return lr_backlog(r, ld_pos(r, r->slot), ld_pos(r, SLOT_PRODUCER));
}

/* ---------------------------------------------------------------------------------- */
/* NSCLDAQ-style ring items: le32 size (including itself), le32 type, then the body;   */
/* our bodies start with a le32 sequence number and the rest derives from it.         */

#define ITEM_HDR     12u
#define TYPE_PHYSICS 30u
#define TYPE_END     2u
#define MAX_ITEM     30000u

static uint32_t item_size(uint32_t seq)
{
    uint32_t h = mix32(seq * 2u + 1u);
    if (h % 13u == 0)
        return ITEM_HDR + (h >> 4) % (MAX_ITEM - ITEM_HDR + 1);
    return ITEM_HDR + (h >> 8) % 1500u;
}

static unsigned char body_byte(uint32_t seq, uint32_t off)
{
    uint32_t h = mix32(seq * 0x9e3779b9u ^ (off >> 2));
    return (unsigned char)(h >> ((off & 3u) * 8u));
}

static void build_item(unsigned char *buf, uint32_t seq, uint32_t type, uint32_t size)
{
    uint32_t off;
    put_le32(buf, size);
    put_le32(buf + 4, type);
    put_le32(buf + 8, seq);
    for (off = ITEM_HDR; off < size; off++)
        buf[off] = body_byte(seq, off);
}

static uint32_t items_for(uint64_t target)
{
    uint64_t total = 0;
    uint32_t seq = 0;
    while (total < target)
        total += item_size(seq++);
    return seq;
}

/* Checks a byte stream of items, however it was split into reads. */
struct checker {
    const char *who;
    uint32_t seq, off, size, type;
    unsigned char head[ITEM_HDR];
    uint64_t total;
    uint32_t expect_items;
    int done, bad;
};

static int check_feed(struct checker *ck, const unsigned char *p, size_t n)
{
    size_t i;
    for (i = 0; i < n && !ck->bad; i++, ck->total++) {
        unsigned char b = p[i];
        if (ck->done) {
            FAIL("%s: %lu byte(s) after the end item (stream offset %llu)", ck->who,
                 (unsigned long)(n - i), (unsigned long long)ck->total);
            ck->bad = 1;
            break;
        }
        if (ck->off < ITEM_HDR) {
            ck->head[ck->off++] = b;
            if (ck->off < ITEM_HDR)
                continue;
            ck->size = get_le32(ck->head);
            ck->type = get_le32(ck->head + 4);
            if (get_le32(ck->head + 8) != ck->seq) {
                FAIL("%s: item at stream offset %llu: expected sequence %u, actual %u", ck->who,
                     (unsigned long long)(ck->total + 1 - ITEM_HDR), ck->seq,
                     get_le32(ck->head + 8));
                ck->bad = 1;
            } else if (ck->type == TYPE_END) {
                if (ck->size != ITEM_HDR || ck->seq != ck->expect_items) {
                    FAIL("%s: end item: expected size %u after %u items, actual size %u after %u",
                         ck->who, ITEM_HDR, ck->expect_items, ck->size, ck->seq);
                    ck->bad = 1;
                }
                ck->done = 1;
            } else if (ck->type != TYPE_PHYSICS || ck->size != item_size(ck->seq)) {
                FAIL("%s: item %u header: expected size %u type %u, actual size %u type %u",
                     ck->who, ck->seq, item_size(ck->seq), TYPE_PHYSICS, ck->size, ck->type);
                ck->bad = 1;
            } else if (ck->size == ITEM_HDR) {
                ck->seq++;
                ck->off = 0;
            }
        } else {
            if (b != body_byte(ck->seq, ck->off)) {
                FAIL("%s: item %u byte %u (stream offset %llu): expected 0x%02x, actual 0x%02x",
                     ck->who, ck->seq, ck->off, (unsigned long long)ck->total,
                     body_byte(ck->seq, ck->off), b);
                ck->bad = 1;
                break;
            }
            if (++ck->off == ck->size) {
                ck->seq++;
                ck->off = 0;
            }
        }
    }
    return ck->bad ? -1 : 0;
}

/* How many bytes the checker wants next to finish the current header or body. */
static uint32_t check_need(const struct checker *ck)
{
    return ck->off < ITEM_HDR ? ITEM_HDR - ck->off : ck->size - ck->off;
}

/* Raw byte pattern for the gap tests: byte k of the stream. */
static unsigned char raw_byte(uint64_t k)
{
    return (unsigned char)(mix32((uint32_t)(k >> 2) + 0x5bd1e995u) >> ((k & 3u) * 8u));
}

static void raw_fill(unsigned char *buf, uint64_t from, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++)
        buf[i] = raw_byte(from + i);
}

static int raw_check(const char *who, const unsigned char *buf, uint64_t from, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++)
        if (buf[i] != raw_byte(from + i)) {
            FAIL("%s: stream byte %llu: expected 0x%02x, actual 0x%02x", who,
                 (unsigned long long)(from + i), raw_byte(from + i), buf[i]);
            return -1;
        }
    return 0;
}

/* ---------------------------------------------------------------------------------- */
/* Child processes, driven over a pair of pipes with int32 messages.                   */

struct job {
    const char *what;
    const char *ring;
    int (*fn)(struct job *);
    int mode;          /* 0: arbitrary chunks with min 1; 1: exact header/body reads */
    uint64_t target;   /* bytes of items to produce */
    int cmd_rd, cmd_wr; /* parent -> child */
    int rep_rd, rep_wr; /* child -> parent */
    pid_t pid;
    int status;
    int reaped;
};

static int send_i32(int fd, int32_t v)
{
    return write(fd, &v, sizeof v) == (ssize_t)sizeof v ? 0 : -1;
}

static int recv_i32(int fd, int32_t *v, int timeout_ms)
{
    struct pollfd pfd;
    int rc;
    pfd.fd = fd;
    pfd.events = POLLIN;
    pfd.revents = 0;
    do
        rc = poll(&pfd, 1, timeout_ms);
    while (rc < 0 && errno == EINTR);
    if (rc <= 0)
        return -1;
    return read(fd, v, sizeof *v) == (ssize_t)sizeof *v ? 0 : -1;
}

/* Parent side: a message the child must send, or a failure. */
static int expect_msg_at(const char *file, int line, struct job *j, int32_t *v)
{
    int32_t dummy;
    if (recv_i32(j->rep_rd, v ? v : &dummy, MSG_WAIT_MS) == 0)
        return 0;
    fail_at(file, line, "%s (pid %ld): no message within %d ms (the child failed or hung)",
            j->what, (long)j->pid, MSG_WAIT_MS);
    return -1;
}
#define EXPECT_MSG(j, v) expect_msg_at(__FILE__, __LINE__, (j), (v))

/* Child side: waits for the parent's go-ahead; the parent gone means give up. */
static int child_wait(struct job *j)
{
    int32_t v;
    if (recv_i32(j->cmd_rd, &v, MSG_WAIT_MS * 2) != 0) {
        FAIL("%s: no word from the parent", j->what);
        return -1;
    }
    return (int)v;
}

static void spawn(struct job *j)
{
    int cmd[2], rep[2];
    pid_t pid;
    if (pipe(cmd) != 0 || pipe(rep) != 0) {
        FAIL("pipe: %s", strerror(errno));
        exit(1);
    }
    fflush(stdout);
    fflush(stderr);
    pid = fork();
    if (pid < 0) {
        FAIL("fork: %s", strerror(errno));
        exit(1);
    }
    if (pid == 0) {
        int rc;
        in_child = 1;
        n_children = 0;
        failures = 0;
        signal(SIGALRM, SIG_DFL);
        alarm(CHILD_ALARM_S);
        close(cmd[1]);
        close(rep[0]);
        j->cmd_rd = cmd[0];
        j->rep_wr = rep[1];
        j->pid = getpid();
        rc = j->fn(j);
        fflush(stdout);
        fflush(stderr);
        _exit(rc != 0 || failures != 0 ? 1 : 0);
    }
    close(cmd[0]);
    close(rep[1]);
    j->cmd_wr = cmd[1];
    j->rep_rd = rep[0];
    j->pid = pid;
    j->reaped = 0;
    if (n_children < MAX_CHILDREN) {
        children[n_children] = pid;
        n_children = n_children + 1;
    }
}

static void report_status(struct job *j)
{
    if (WIFEXITED(j->status) && WEXITSTATUS(j->status) == 0)
        return;
    if (WIFEXITED(j->status))
        FAIL("%s (pid %ld) exited with status %d (its messages are above)", j->what,
             (long)j->pid, WEXITSTATUS(j->status));
    else if (WIFSIGNALED(j->status))
        FAIL("%s (pid %ld) was killed by signal %d%s", j->what, (long)j->pid,
             WTERMSIG(j->status), WTERMSIG(j->status) == SIGALRM ? " (its alarm: it hung)" : "");
}

static int try_reap(struct job *j)
{
    if (!j->reaped && waitpid(j->pid, &j->status, WNOHANG) == j->pid) {
        j->reaped = 1;
        close(j->cmd_wr);
        close(j->rep_rd);
        report_status(j);
    }
    return j->reaped;
}

static void reap(struct job *j, int timeout_ms)
{
    long long deadline = now_ms() + timeout_ms;
    while (!try_reap(j)) {
        if (now_ms() > deadline) {
            FAIL("%s (pid %ld) did not finish within %d ms; killing it", j->what, (long)j->pid,
                 timeout_ms);
            kill(j->pid, SIGKILL);
            waitpid(j->pid, &j->status, 0);
            j->reaped = 1;
            close(j->cmd_wr);
            close(j->rep_rd);
            return;
        }
        sleep_ns(1000000L);
    }
}

/* ---------------------------------------------------------------------------------- */
/* Stream children.                                                                   */

static int legacy_producer_stream(struct job *j)
{
    struct lring r;
    unsigned char *buf = malloc(MAX_ITEM);
    uint32_t seq, count = items_for(j->target);
    int rc = lr_open(j->ring, &r);
    if (!buf || rc != 0) {
        FAIL("%s: cannot open the ring: %d", j->what, rc);
        return 1;
    }
    if ((rc = lr_attach_producer(&r)) != 0) {
        FAIL("%s: legacy producer attach: %s", j->what, strerror(-rc));
        return 1;
    }
    send_i32(j->rep_wr, 1);
    if (child_wait(j) < 0)
        return 1;
    for (seq = 0; seq <= count; seq++) {
        uint32_t size = seq < count ? item_size(seq) : ITEM_HDR;
        long long put;
        build_item(buf, seq, seq < count ? TYPE_PHYSICS : TYPE_END, size);
        put = lr_put(&r, buf, size, 20000);
        if (put != (long long)size) {
            FAIL("%s: put of item %u (%u bytes): expected %u, actual %lld (0 = timeout)", j->what,
                 seq, size, size, put);
            return 1;
        }
    }
    lr_detach(&r);
    lr_close(&r);
    free(buf);
    return 0;
}

static int legacy_consumer_stream(struct job *j)
{
    struct lring r;
    struct checker ck;
    static const uint64_t chunks[] = {5, 333, 4096, 70000, 1, 20011};
    unsigned char *buf = malloc(80000);
    unsigned k = 0;
    int rc = lr_open(j->ring, &r);
    memset(&ck, 0, sizeof ck);
    ck.who = j->what;
    ck.expect_items = items_for(j->target);
    if (!buf || rc != 0) {
        FAIL("%s: cannot open the ring: %d", j->what, rc);
        return 1;
    }
    if ((rc = lr_attach_consumer(&r)) != 0) {
        FAIL("%s: legacy consumer attach: %s", j->what, strerror(-rc));
        return 1;
    }
    send_i32(j->rep_wr, r.slot);
    while (!ck.done && !ck.bad) {
        uint64_t want = j->mode ? check_need(&ck) : chunks[k++ % 6];
        long long got = lr_get(&r, buf, want, j->mode ? want : 1, 20000);
        if (got <= 0) {
            FAIL("%s: legacy get (min %llu): %lld after %llu bytes", j->what,
                 (unsigned long long)(j->mode ? want : 1), got, (unsigned long long)ck.total);
            return 1;
        }
        if (j->mode && (uint64_t)got != want)
            FAIL("%s: get with min = max = %llu returned %lld", j->what,
                 (unsigned long long)want, got);
        check_feed(&ck, buf, (size_t)got);
    }
    lr_detach(&r);
    lr_close(&r);
    free(buf);
    return ck.bad;
}

static int lib_consumer_stream(struct job *j)
{
    ring_client *c = NULL;
    struct checker ck;
    static const size_t chunks[] = {5, 333, 4096, 70000, 1, 20011};
    unsigned char *buf = malloc(80000);
    unsigned k = 0;
    int rc;
    memset(&ck, 0, sizeof ck);
    ck.who = j->what;
    ck.expect_items = items_for(j->target);
    rc = ring_attach_consumer(j->ring, &c);
    if (!buf || !LIB_OK(rc, "ring_attach_consumer"))
        return 1;
    send_i32(j->rep_wr, ring_slot(c));
    while (!ck.done && !ck.bad) {
        size_t want = j->mode ? check_need(&ck) : chunks[k++ % 6];
        ssize_t got = ring_get(c, buf, j->mode ? want : 1, want, 20000);
        if (got <= 0) {
            FAIL("%s: ring_get(min %lu, max %lu) returned %ld after %llu bytes: %s", j->what,
                 (unsigned long)(j->mode ? want : 1), (unsigned long)want, (long)got,
                 (unsigned long long)ck.total, daqflow_last_error());
            return 1;
        }
        if (j->mode && (size_t)got != want)
            FAIL("%s: ring_get with min = max = %lu returned %ld", j->what, (unsigned long)want,
                 (long)got);
        check_feed(&ck, buf, (size_t)got);
    }
    LIB_OK(ring_detach(c), "ring_detach (consumer)");
    free(buf);
    return ck.bad;
}

static int lib_producer_stream(struct job *j)
{
    ring_client *p = NULL;
    unsigned char *buf = malloc(MAX_ITEM);
    uint32_t seq, count = items_for(j->target);
    int rc = ring_attach_producer(j->ring, &p);
    if (!buf || !LIB_OK(rc, "ring_attach_producer"))
        return 1;
    send_i32(j->rep_wr, 1);
    if (child_wait(j) < 0)
        return 1;
    for (seq = 0; seq <= count; seq++) {
        uint32_t size = seq < count ? item_size(seq) : ITEM_HDR;
        build_item(buf, seq, seq < count ? TYPE_PHYSICS : TYPE_END, size);
        rc = ring_put(p, buf, size, 20000);
        if (!LIB_OK(rc, "ring_put")) {
            FAIL("%s: item %u (%u bytes) not put", j->what, seq, size);
            return 1;
        }
    }
    LIB_OK(ring_detach(p), "ring_detach (producer)");
    free(buf);
    return 0;
}

/* ---------------------------------------------------------------------------------- */
/* Parent-side inspection.                                                            */

static void check_record(const struct lring *r, int slot, int32_t pid, const char *what,
                         int line)
{
    int32_t got_pid = ld_pid(r, slot);
    uint64_t pos = ld_pos(r, slot);
    if (got_pid != pid)
        fail_at(__FILE__, line, "%s: record at offset %llu: pid expected %ld, actual %ld", what,
                (unsigned long long)(rec_off(r, slot) + REC_PID), (long)pid, (long)got_pid);
    if (!lr_pos_ok(r, pos))
        fail_at(__FILE__, line,
                "%s: record at offset %llu: position %llu outside [dataOffset %llu, topOffset %llu]",
                what, (unsigned long long)rec_off(r, slot), (unsigned long long)pos,
                (unsigned long long)r->B, (unsigned long long)r->T);
}

/* Samples every record while children stream: positions must stay inside the data area
 * (a legacy peer copies with them unchecked) and pids must be ours or free. */
static void monitor(const struct lring *r, struct job **jobs, int njobs)
{
    long long deadline = now_ms() + PHASE_LIMIT_MS;
    int done = 0, reported = 0, i;
    while (done < njobs) {
        int s;
        done = 0;
        for (s = -1; s < (int)r->n && !reported; s++) {
            int32_t pid = ld_pid(r, s);
            uint64_t pos = ld_pos(r, s);
            int known = pid == -1 || pid == 0;
            for (i = 0; i < njobs; i++)
                known |= pid == jobs[i]->pid;
            if (!lr_pos_ok(r, pos) || !known) {
                FAIL("while streaming, record %d (offset %llu): pid %ld position %llu "
                     "(data area [%llu, %llu])",
                     s, (unsigned long long)rec_off(r, s), (long)pid, (unsigned long long)pos,
                     (unsigned long long)r->B, (unsigned long long)r->T);
                reported = 1;
            }
        }
        for (i = 0; i < njobs; i++)
            done += try_reap(jobs[i]);
        if (now_ms() > deadline) {
            FAIL("streaming did not finish within %d ms", PHASE_LIMIT_MS);
            for (i = 0; i < njobs; i++)
                if (!jobs[i]->reaped)
                    reap(jobs[i], 0);
            return;
        }
        sleep_ns(1000000L);
    }
}

/* ---------------------------------------------------------------------------------- */
/* 1. Geometry: every header field and record at its byte offset.                     */

static void check_geometry(const char *tag, uint64_t req_data, uint32_t req_n,
                           uint64_t table_size, uint64_t table_B, uint64_t table_D)
{
    const char *name = new_ring_name(tag);
    uint64_t data = req_data ? req_data : RING_DEFAULT_DATA_BYTES;
    uint64_t n = req_n ? req_n : RING_DEFAULT_MAX_CONSUMERS;
    uint64_t pg = page_size();
    uint64_t B = HDR_FIXED + REC_BYTES * (n + 1);
    uint64_t size = (data + B + pg - 1) / pg * pg;
    char path[NAME_CAP + 16], what[160];
    struct stat st;
    struct lring r;
    const unsigned char *h;
    ring_usage_info info;
    uint64_t i;
    int rc;

    if (pg == 4096 && table_size) {
        /* The measured table of section 2 must agree with the formula we check against. */
        CHECK_U(size, table_size, "spec table: shm size");
        CHECK_U(B, table_B, "spec table: dataOffset");
        CHECK_U(size - B, table_D, "spec table: dataBytes");
    }
    rc = ring_create(name, req_data, req_n);
    if (!LIB_OK(rc, "ring_create"))
        return;
    LIB_ERR(ring_create(name, req_data, req_n), EEXIST, "ring_create of an existing name");
    CHECK_I(ring_exists(name), 1, "ring_exists of a new ring");

    snprintf(path, sizeof path, "/dev/shm/%s", name);
    if (stat(path, &st) != 0) {
        FAIL("%s: %s", path, strerror(errno));
        return;
    }
    CHECK((st.st_mode & 07777) == 0666, "%s (create %llu, %u): mode of %s: expected 0666, actual 0%o",
          tag, (unsigned long long)req_data, req_n, path, (unsigned)(st.st_mode & 07777));
    snprintf(what, sizeof what, "%s: shm size (round_up(%llu + %llu, %llu))", tag,
             (unsigned long long)data, (unsigned long long)B, (unsigned long long)pg);
    CHECK_U(st.st_size, size, what);

    rc = lr_map(name, &r);
    if (rc != 0) {
        FAIL("%s: cannot map %s: %s", tag, path, strerror(-rc));
        return;
    }
    h = r.base;
    CHECK(memcmp(h, "NSCLRing", 9) == 0,
          "%s: magic at offset 0: expected \"NSCLRing\" then NUL, actual \"%.9s\" (byte 8 = %u)",
          tag, (const char *)h, h[8]);
#define FIELD(off, expect, label)                                                      \
    do {                                                                               \
        snprintf(what, sizeof what, "%s: header offset %u (%s)", tag, (unsigned)(off), \
                 (label));                                                             \
        CHECK_U(get_le64(h + (off)), (expect), what);                                  \
    } while (0)
    FIELD(OFF_NCONS, n, "max consumers");
    FIELD(OFF_DATABYTES, size - B, "data bytes");
    FIELD(OFF_PRODREC, 80, "producer record offset");
    FIELD(OFF_CONSREC, 96, "first consumer record offset");
    FIELD(OFF_DATAOFF, B, "data offset");
    FIELD(OFF_TOPOFF, size - 1, "top offset");
#undef FIELD
    snprintf(what, sizeof what, "%s: dataOffset + dataBytes == topOffset + 1", tag);
    CHECK_U(get_le64(h + OFF_DATAOFF) + get_le64(h + OFF_DATABYTES), get_le64(h + OFF_TOPOFF) + 1,
            what);
    for (i = 0; i <= n; i++) {
        uint64_t off = HDR_FIXED + REC_BYTES * i;
        snprintf(what, sizeof what, "%s: %s record %llu at offset %llu: position", tag,
                 i ? "consumer" : "producer", (unsigned long long)(i ? i - 1 : 0),
                 (unsigned long long)off);
        CHECK_U(get_le64(h + off + REC_POS), B, what);
        snprintf(what, sizeof what, "%s: %s record %llu at offset %llu: pid", tag,
                 i ? "consumer" : "producer", (unsigned long long)(i ? i - 1 : 0),
                 (unsigned long long)(off + REC_PID));
        CHECK_I((int32_t)get_le32(h + off + REC_PID), -1, what);
    }
    CHECK_I(lr_parse(&r), 0, "legacy header parse of a library ring");

    memset(&info, 0, sizeof info);
    rc = ring_usage(name, &info, NULL, 0);
    if (LIB_OK(rc, "ring_usage")) {
        snprintf(what, sizeof what, "%s: ring_usage", tag);
        CHECK_I(rc, 0, what);
        CHECK_U(info.data_bytes, size - B, "ring_usage data_bytes");
        CHECK_U(info.put_space, size - B - 1, "ring_usage put_space of an empty ring");
        CHECK_U(info.max_consumers, n, "ring_usage max_consumers");
        CHECK_I(info.producer_pid, -1, "ring_usage producer_pid");
        CHECK_U(info.n_consumers, 0, "ring_usage n_consumers");
        CHECK_U(info.max_get, 0, "ring_usage max_get");
        CHECK_U(info.min_get, 0, "ring_usage min_get");
    }
    lr_close(&r);
    LIB_OK(ring_remove(name), "ring_remove");
    CHECK(stat(path, &st) != 0 && errno == ENOENT, "%s still exists after ring_remove", path);
}

/* The largest put, the advance rule at the top, and the never-fits errors. */
static void check_limits(void)
{
    const char *name = new_ring_name("limits");
    ring_client *p = NULL, *c = NULL;
    struct lring r;
    unsigned char *buf;
    uint64_t D;
    if (!LIB_OK(ring_create(name, 4096, 2), "ring_create(4096, 2)"))
        return;
    if (lr_open(name, &r) != 0) {
        FAIL("cannot map %s", name);
        return;
    }
    D = r.D;
    buf = calloc(1, (size_t)D + 1);
    if (LIB_OK(ring_attach_producer(name, &p), "ring_attach_producer")) {
        check_record(&r, SLOT_PRODUCER, (int32_t)getpid(), "library producer", __LINE__);
        CHECK_U(ring_available_put_space(p), D - 1, "put space with no consumer");
        /* No consumer: the largest put is D - 1 and never blocks. */
        LIB_OK(ring_put(p, buf, (size_t)D - 1, 0), "ring_put of D - 1 bytes, no consumer");
        CHECK_U(ld_pos(&r, SLOT_PRODUCER), r.T, "put pointer after D - 1 bytes from dataOffset");
        LIB_OK(ring_put(p, buf, 1, 0), "ring_put of 1 byte at the top, no consumer");
        CHECK_U(ld_pos(&r, SLOT_PRODUCER), r.B,
                "put pointer after a write ending exactly on topOffset");
        LIB_ERR(ring_put(p, buf, (size_t)D, 200), EMSGSIZE, "ring_put of dataBytes bytes");
        LIB_ERR(ring_put(p, buf, (size_t)D + 1, 200), EMSGSIZE, "ring_put of dataBytes + 1");
        if (LIB_OK(ring_attach_consumer(name, &c), "ring_attach_consumer")) {
            int cs = ring_slot(c);
            CHECK_I(cs, 0, "first consumer slot (spec 6: lowest free)");
            if (cs < 0 || (uint64_t)cs >= r.n)
                cs = 0;
            check_record(&r, cs, (int32_t)getpid(), "library consumer", __LINE__);
            CHECK_U(ld_pos(&r, cs), r.B, "a new consumer's position is the put pointer");
            CHECK_U(ring_available_data(c), 0, "a new consumer sees nothing put before it joined");
            LIB_ERR(ring_get(c, buf, (size_t)D, (size_t)D, 200), EMSGSIZE,
                    "ring_get with min = dataBytes (the gap makes it impossible)");
            LIB_ERR(ring_get(c, buf, (size_t)D + 1, (size_t)D + 1, 200), EMSGSIZE,
                    "ring_get with min = dataBytes + 1");
            LIB_ERR(ring_get(c, buf, 1, 1, 0), ETIMEDOUT, "ring_get on an empty ring, timeout 0");
            LIB_OK(ring_detach(c), "ring_detach (consumer)");
            CHECK_I(ld_pid(&r, cs), -1, "consumer pid after ring_detach");
        }
        LIB_OK(ring_detach(p), "ring_detach (producer)");
        CHECK_I(ld_pid(&r, SLOT_PRODUCER), -1, "producer pid after ring_detach");
        CHECK_U(ld_pos(&r, SLOT_PRODUCER), r.B, "ring_detach leaves the put pointer alone");
    }
    free(buf);
    lr_close(&r);
    LIB_OK(ring_remove(name), "ring_remove");
}

/* A ring made by the legacy code is a ring to the library; a near-miss magic is not. */
static void check_legacy_created(void)
{
    const char *name = new_ring_name("legacy_made");
    const char *bad = new_ring_name("not_a_ring");
    struct lring r;
    ring_usage_info info;
    char path[NAME_CAP + 2];
    int rc, fd;

    rc = lr_create(name, 100000, 7, &r);
    if (rc != 0) {
        FAIL("legacy create: %s", strerror(-rc));
        return;
    }
    CHECK_I(ring_exists(name), 1, "ring_exists of a legacy-created ring");
    LIB_ERR(ring_create(name, 4096, 1), EEXIST, "ring_create over a legacy-created ring");
    memset(&info, 0, sizeof info);
    if (LIB_OK(ring_usage(name, &info, NULL, 0), "ring_usage of a legacy-created ring")) {
        CHECK_U(info.data_bytes, r.D, "ring_usage data_bytes (legacy-created)");
        CHECK_U(info.max_consumers, 7, "ring_usage max_consumers (legacy-created)");
        CHECK_I(info.producer_pid, -1, "ring_usage producer_pid (legacy-created)");
    }
    /* Reformatting keeps the object size; everything else derives from the new N. */
    if (LIB_OK(ring_format(name, 3), "ring_format(3) of a legacy-created ring")) {
        const unsigned char *h = r.base;
        uint64_t B = HDR_FIXED + REC_BYTES * 4, i;
        CHECK(memcmp(h, "NSCLRing", 9) == 0, "magic after ring_format");
        CHECK_U(get_le64(h + OFF_NCONS), 3, "header offset 32 after ring_format(3)");
        CHECK_U(get_le64(h + OFF_DATABYTES), r.size - B, "header offset 40 after ring_format(3)");
        CHECK_U(get_le64(h + OFF_PRODREC), 80, "header offset 48 after ring_format(3)");
        CHECK_U(get_le64(h + OFF_CONSREC), 96, "header offset 56 after ring_format(3)");
        CHECK_U(get_le64(h + OFF_DATAOFF), B, "header offset 64 after ring_format(3)");
        CHECK_U(get_le64(h + OFF_TOPOFF), r.size - 1, "header offset 72 after ring_format(3)");
        for (i = 0; i < 4; i++) {
            CHECK_U(get_le64(h + 80 + 16 * i), B, "record position after ring_format(3)");
            CHECK_I((int32_t)get_le32(h + 88 + 16 * i), -1, "record pid after ring_format(3)");
        }
    }
    lr_close(&r);
    LIB_OK(ring_remove(name), "ring_remove of a legacy-created ring");

    /* The abandoned 12.0-dev magic, on an otherwise plausible object. */
    shm_path(path, sizeof path, bad);
    fd = shm_open(path, O_CREAT | O_EXCL | O_RDWR, 0600);
    if (fd < 0 || ftruncate(fd, 8192) != 0) {
        FAIL("cannot make %s: %s", path, strerror(errno));
    } else {
        unsigned char hdr[96];
        memset(hdr, 0, sizeof hdr);
        memcpy(hdr, "NSCLRing12", 11);
        if (pwrite(fd, hdr, sizeof hdr, 0) != (ssize_t)sizeof hdr)
            FAIL("pwrite: %s", strerror(errno));
        CHECK_I(ring_exists(bad), 0, "ring_exists of an object with magic NSCLRing12");
    }
    if (fd >= 0)
        close(fd);
    shm_unlink(path);
}

/* The library takes the legacy fcntl range lock: a C++ peer holding it must stall it. */
static int hold_lock(struct job *j)
{
    struct lring r;
    int rc = lr_open(j->ring, &r);
    if (rc != 0 || lr_lock(&r) != 0) {
        FAIL("lock holder: cannot open or lock");
        return 1;
    }
    send_i32(j->rep_wr, 1);
    sleep_ns(600000000L);
    /* Said before the unlock: whoever got the lock after us finds this already sent. */
    send_i32(j->rep_wr, 2);
    lr_unlock(&r);
    lr_close(&r);
    return 0;
}

static void check_lock(void)
{
    const char *name = new_ring_name("lock");
    struct job j;
    ring_client *c = NULL;
    int32_t releasing = 0;
    if (!LIB_OK(ring_create(name, 65536, 4), "ring_create"))
        return;
    memset(&j, 0, sizeof j);
    j.what = "legacy lock holder";
    j.ring = name;
    j.fn = hold_lock;
    spawn(&j);
    if (EXPECT_MSG(&j, NULL) == 0) {
        if (LIB_OK(ring_attach_consumer(name, &c), "ring_attach_consumer under a legacy lock")) {
            /* Not timed (a parent slow to start the attach would see a shorter wait):
             * the holder says it is releasing just before it does, so an attach that
             * waited for the lock finds that said already. */
            CHECK(recv_i32(j.rep_rd, &releasing, 0) == 0 && releasing == 2,
                  "ring_attach_consumer while a legacy process held fcntl(F_WRLCK) on [0, %u): "
                  "returned while the lock was still held",
                  (unsigned)(HDR_FIXED + REC_BYTES * 5));
            ring_detach(c);
        }
    }
    reap(&j, 10000);
    LIB_OK(ring_remove(name), "ring_remove");
}

/* ---------------------------------------------------------------------------------- */
/* 3a. Legacy producer -> library consumers (and a legacy one alongside).              */

static void check_usage_consumers(const char *name, struct job **cons, const int32_t *slots,
                                  int ncons, int32_t producer_pid)
{
    ring_usage_info info;
    ring_consumer_info list[8];
    int rc, i, k;
    memset(&info, 0, sizeof info);
    rc = ring_usage(name, &info, list, 8);
    if (!LIB_OK(rc, "ring_usage"))
        return;
    CHECK_I(rc, ncons, "ring_usage return (attached consumers)");
    CHECK_U(info.n_consumers, ncons, "ring_usage n_consumers");
    CHECK_I(info.producer_pid, producer_pid, "ring_usage producer_pid");
    for (i = 0; i < ncons && i < rc; i++) {
        int found = 0;
        for (k = 0; k < rc && k < 8; k++)
            if (list[k].pid == cons[i]->pid) {
                found = 1;
                CHECK_U(list[k].slot, slots[i], "ring_usage consumer slot");
                CHECK_U(list[k].backlog, 0, "ring_usage backlog before the producer starts");
            }
        CHECK(found, "ring_usage does not list consumer pid %ld (%s)", (long)cons[i]->pid,
              cons[i]->what);
    }
    for (k = 1; k < rc && k < 8; k++)
        CHECK(list[k - 1].slot < list[k].slot, "ring_usage consumers not in slot order");
}

static void stream_phase(const char *label, const char *name, struct job *prod,
                         struct job **cons, int ncons)
{
    struct lring r;
    int32_t slots[8];
    struct job *all[9];
    int i, ok = 1;
    if (lr_open(name, &r) != 0) {
        FAIL("%s: cannot map the ring", label);
        return;
    }
    for (i = 0; i < ncons; i++) {
        int lowest = 0;
        while ((uint64_t)lowest < r.n && ld_pid(&r, lowest) != -1)
            lowest++;
        spawn(cons[i]);
        if (EXPECT_MSG(cons[i], &slots[i]) != 0) {
            ok = 0;
            break;
        }
        /* Spec 6: the lowest free slot. Later checks follow the slot actually taken. */
        CHECK(slots[i] == lowest, "%s: took consumer slot %d; the lowest free slot was %d "
              "(spec 6: take the lowest slot with pid -1)", cons[i]->what, (int)slots[i], lowest);
        if (slots[i] >= 0 && (uint64_t)slots[i] < r.n)
            check_record(&r, slots[i], (int32_t)cons[i]->pid, cons[i]->what, __LINE__);
        all[i] = cons[i];
    }
    if (ok) {
        spawn(prod);
        all[ncons] = prod;
        if (EXPECT_MSG(prod, NULL) == 0) {
            check_record(&r, SLOT_PRODUCER, (int32_t)prod->pid, prod->what, __LINE__);
            check_usage_consumers(name, cons, slots, ncons, (int32_t)prod->pid);
            send_i32(prod->cmd_wr, 1);
        }
        monitor(&r, all, ncons + 1);
    } else {
        for (i = 0; i < ncons; i++)
            if (cons[i]->pid)
                reap(cons[i], 0);
    }
    for (i = -1; i < (int)r.n; i++)
        CHECK_I(ld_pid(&r, i), -1, "every slot free after the phase");
    lr_close(&r);
}

static void init_job(struct job *j, const char *what, const char *ring, int (*fn)(struct job *),
                     int mode, uint64_t target)
{
    memset(j, 0, sizeof *j);
    j->what = what;
    j->ring = ring;
    j->fn = fn;
    j->mode = mode;
    j->target = target;
}

#define STREAM_BYTES (6u * 1024u * 1024u)

static void check_legacy_to_library(void)
{
    const char *name = new_ring_name("legacy_to_lib");
    struct job prod, c0, c1, c2;
    struct job *cons[3];
    if (!LIB_OK(ring_create(name, 65536, 4), "ring_create"))
        return;
    init_job(&prod, "legacy producer", name, legacy_producer_stream, 0, STREAM_BYTES);
    init_job(&c0, "library consumer (chunks)", name, lib_consumer_stream, 0, STREAM_BYTES);
    init_job(&c1, "library consumer (exact items)", name, lib_consumer_stream, 1, STREAM_BYTES);
    init_job(&c2, "legacy consumer (chunks)", name, legacy_consumer_stream, 0, STREAM_BYTES);
    cons[0] = &c0;
    cons[1] = &c1;
    cons[2] = &c2;
    stream_phase("legacy -> library", name, &prod, cons, 3);
    LIB_OK(ring_remove(name), "ring_remove");
}

/* 3b. Library producer -> legacy consumers, on a ring the legacy code made. */
static void check_library_to_legacy(void)
{
    const char *name = new_ring_name("lib_to_legacy");
    struct job prod, c0, c1, c2;
    struct job *cons[3];
    struct lring r;
    int rc = lr_create(name, 65536, 4, &r);
    if (rc != 0) {
        FAIL("legacy create: %s", strerror(-rc));
        return;
    }
    lr_close(&r);
    init_job(&prod, "library producer", name, lib_producer_stream, 0, STREAM_BYTES);
    init_job(&c0, "legacy consumer (chunks)", name, legacy_consumer_stream, 0, STREAM_BYTES);
    init_job(&c1, "legacy consumer (exact items)", name, legacy_consumer_stream, 1, STREAM_BYTES);
    init_job(&c2, "library consumer (chunks)", name, lib_consumer_stream, 0, STREAM_BYTES);
    cons[0] = &c0;
    cons[1] = &c1;
    cons[2] = &c2;
    stream_phase("library -> legacy", name, &prod, cons, 3);
    LIB_OK(ring_remove(name), "ring_remove");
}

/* ---------------------------------------------------------------------------------- */
/* 3c. The one-byte gap, legacy producer against a library consumer that waits.        */

#define PRE_JOIN 100u
#define FIRST_K  5000u

static int gap_legacy_producer(struct job *j)
{
    struct lring r;
    unsigned char *buf;
    uint64_t done = 0, D;
    long long rc = lr_open(j->ring, &r);
    if (rc != 0 || lr_attach_producer(&r) != 0) {
        FAIL("gap producer: cannot open or attach");
        return 1;
    }
    D = r.D;
    buf = malloc((size_t)D);
    /* Put before anyone joins: nobody must ever see these bytes. */
    memset(buf, 0xee, PRE_JOIN);
    CHECK_I(lr_put(&r, buf, PRE_JOIN, 0), PRE_JOIN, "legacy put with no consumer");
    send_i32(j->rep_wr, 1);
    if (child_wait(j) < 0)
        return 1;
    raw_fill(buf, 0, FIRST_K);
    CHECK_I(lr_put(&r, buf, FIRST_K, 0), FIRST_K, "legacy put of the first block");
    send_i32(j->rep_wr, 2);
    if (child_wait(j) < 0)
        return 1;
    /* Fill exactly to the gap, in pieces that straddle the top. */
    raw_fill(buf, FIRST_K, (size_t)D - 1);
    while (done < D - 1) {
        uint64_t n = D - 1 - done < 4000 ? D - 1 - done : 4000;
        rc = lr_put(&r, buf + done, n, 0);
        if (rc != (long long)n) {
            FAIL("legacy put at %llu of %llu to fill the ring: expected %llu, actual %lld",
                 (unsigned long long)done, (unsigned long long)(D - 1), (unsigned long long)n, rc);
            return 1;
        }
        done += n;
    }
    CHECK_I(lr_free_space(&r, ld_pos(&r, SLOT_PRODUCER)), 0,
            "legacy free space after D - 1 bytes against a library consumer");
    CHECK_I(lr_put(&r, buf, 1, 300), 0, "legacy put of one more byte into a full ring (timeout)");
    send_i32(j->rep_wr, 3);
    child_wait(j);
    lr_detach(&r);
    lr_close(&r);
    free(buf);
    return 0;
}

static void check_gap_legacy_producer(void)
{
    const char *name = new_ring_name("gap_legacy_prod");
    struct job j;
    struct lring r;
    ring_client *c = NULL, *p = NULL;
    ring_usage_info info;
    ring_consumer_info list[4];
    unsigned char *buf;
    uint64_t D, get_at, put_at, got = 0;
    ssize_t n;
    int cs = 0;
    if (!LIB_OK(ring_create(name, 65536, 4), "ring_create"))
        return;
    if (lr_open(name, &r) != 0) {
        FAIL("cannot map %s", name);
        return;
    }
    D = r.D;
    buf = malloc((size_t)D + 16);
    init_job(&j, "gap: legacy producer", name, gap_legacy_producer, 0, 0);
    spawn(&j);
    if (EXPECT_MSG(&j, NULL) != 0)
        goto out;
    CHECK_U(ld_pos(&r, SLOT_PRODUCER), r.B + PRE_JOIN, "put pointer after the pre-join put");
    LIB_ERR(ring_attach_producer(name, &p), EACCES,
            "ring_attach_producer while a legacy producer is attached");
    if (!LIB_OK(ring_attach_consumer(name, &c), "ring_attach_consumer"))
        goto out;
    /* Later checks follow the slot the library took, so that one wrong choice of slot
     * is reported once rather than as a cascade. */
    cs = ring_slot(c);
    CHECK_I(cs, 0, "library consumer slot on an empty ring (spec 6: lowest free slot)");
    if (cs < 0 || (uint64_t)cs >= r.n) {
        FAIL("ring_slot returned %d, outside [0, %llu)", cs, (unsigned long long)r.n);
        goto out;
    }
    check_record(&r, cs, (int32_t)getpid(), "library consumer", __LINE__);
    CHECK_U(ld_pos(&r, cs), r.B + PRE_JOIN, "a joining consumer copies the put pointer");
    CHECK_U(ring_available_data(c), 0, "data a new consumer sees from before it joined");
    send_i32(j.cmd_wr, 1);
    if (EXPECT_MSG(&j, NULL) != 0)
        goto out;

    /* The legacy producer holds FIRST_K bytes: usage must say who and how much. */
    memset(&info, 0, sizeof info);
    if (LIB_OK(ring_usage(name, &info, list, 4), "ring_usage")) {
        CHECK_I(info.producer_pid, j.pid, "ring_usage producer_pid (legacy producer)");
        CHECK_U(info.max_get, FIRST_K, "ring_usage max_get");
        CHECK_U(info.min_get, FIRST_K, "ring_usage min_get");
        CHECK_U(info.put_space, D - 1 - FIRST_K, "ring_usage put_space");
        CHECK_U(info.n_consumers, 1, "ring_usage n_consumers");
        CHECK_I(list[0].pid, getpid(), "ring_usage consumer[0].pid");
        CHECK_U(list[0].slot, cs, "ring_usage consumer[0].slot");
        CHECK_U(list[0].backlog, FIRST_K, "ring_usage consumer[0].backlog");
    }
    CHECK_U(ring_available_data(c), FIRST_K, "ring_available_data after the legacy put");
    n = ring_get(c, buf, FIRST_K, FIRST_K, 2000);
    if (LIB_OK(n, "ring_get of the first block")) {
        CHECK_I(n, FIRST_K, "ring_get count");
        raw_check("gap: first block via the library", buf, 0, (size_t)n);
    }
    CHECK_U(ld_pos(&r, cs), r.B + PRE_JOIN + FIRST_K, "consumer position after the get");
    send_i32(j.cmd_wr, 1);
    if (EXPECT_MSG(&j, NULL) != 0)
        goto out;

    /* Full: exactly D - 1 outstanding. */
    CHECK_U(ring_available_data(c), D - 1, "ring_available_data of a ring the legacy filled");
    get_at = ld_pos(&r, cs);
    put_at = ld_pos(&r, SLOT_PRODUCER);
    CHECK_U(lr_advance(&r, get_at, D - 1), put_at, "put pointer is D - 1 ahead of the consumer");
    memset(&info, 0, sizeof info);
    if (LIB_OK(ring_usage(name, &info, NULL, 0), "ring_usage (full)")) {
        CHECK_U(info.put_space, 0, "ring_usage put_space of a full ring");
        CHECK_U(info.max_get, D - 1, "ring_usage max_get of a full ring");
    }
    send_i32(j.cmd_wr, 1);
    reap(&j, 10000);
    CHECK_I(ld_pid(&r, SLOT_PRODUCER), -1, "producer pid after the legacy detach");
    CHECK_U(ld_pos(&r, SLOT_PRODUCER), put_at, "legacy detach leaves the put pointer");

    /* Now the library's producer takes over where the legacy one stopped. */
    if (LIB_OK(ring_attach_producer(name, &p), "ring_attach_producer after legacy detach")) {
        check_record(&r, SLOT_PRODUCER, (int32_t)getpid(), "library producer", __LINE__);
        CHECK_U(ld_pos(&r, SLOT_PRODUCER), put_at, "put pointer survives a producer change");
        CHECK_U(ring_available_put_space(p), 0, "ring_available_put_space of a full ring");
        LIB_ERR(ring_put(p, buf, 1, 0), ETIMEDOUT, "ring_put into a full ring, timeout 0");
        LIB_ERR(ring_put(p, buf, 1, 50), ETIMEDOUT, "ring_put into a full ring, timeout 50 ms");
        n = ring_get(c, buf, 1, 1, 1000);
        if (LIB_OK(n, "ring_get of one byte")) {
            raw_check("gap: first byte of the fill", buf, FIRST_K, 1);
            got = 1;
        }
        CHECK_U(ring_available_put_space(p), 1, "put space after the consumer took one byte");
        while (got < D - 1) {
            n = ring_get(c, buf, 1, 7777, 1000);
            if (!LIB_OK(n, "ring_get draining the full ring"))
                break;
            if (raw_check("gap: fill via the library", buf, FIRST_K + got, (size_t)n))
                break;
            got += (uint64_t)n;
        }
        CHECK_U(got, D - 1, "bytes drained from the full ring");
        CHECK_U(ring_available_data(c), 0, "ring_available_data after draining");
        CHECK_U(ring_available_put_space(p), D - 1, "put space after draining");
        LIB_OK(ring_detach(p), "ring_detach (producer)");
    }
    get_at = ld_pos(&r, cs);
    LIB_OK(ring_detach(c), "ring_detach (consumer)");
    CHECK_I(ld_pid(&r, cs), -1, "consumer pid after ring_detach");
    CHECK_U(ld_pos(&r, cs), get_at, "ring_detach leaves the consumer position alone");
out:
    if (!j.reaped)
        reap(&j, 5000);
    free(buf);
    lr_close(&r);
    LIB_OK(ring_remove(name), "ring_remove");
}

/* 3d. The one-byte gap, library producer against a legacy consumer that waits. */
static int gap_legacy_consumer(struct job *j)
{
    struct lring r;
    unsigned char *buf;
    uint64_t got = 0;
    long long n;
    if (lr_open(j->ring, &r) != 0 || lr_attach_consumer(&r) != 0) {
        FAIL("gap consumer: cannot open or attach");
        return 1;
    }
    buf = malloc((size_t)r.D);
    send_i32(j->rep_wr, r.slot);
    if (child_wait(j) < 0)
        return 1;
    CHECK_U(lr_my_backlog(&r), r.D - 1, "legacy consumer backlog of a ring the library filled");
    while (got < r.D - 1) {
        n = lr_get(&r, buf, 6000, 1, 1000);
        if (n <= 0) {
            FAIL("legacy get draining: %lld after %llu bytes", n, (unsigned long long)got);
            return 1;
        }
        if (raw_check("gap: library fill via the legacy consumer", buf, got, (size_t)n))
            return 1;
        got += (uint64_t)n;
    }
    CHECK_I(lr_get(&r, buf, 1, 1, 100), 0, "legacy get on the drained ring (timeout)");
    send_i32(j->rep_wr, 2);
    child_wait(j);
    lr_detach(&r);
    lr_close(&r);
    free(buf);
    return 0;
}

static void check_gap_library_producer(void)
{
    const char *name = new_ring_name("gap_lib_prod");
    struct job j;
    struct lring r;
    ring_client *p = NULL, *c = NULL;
    ring_consumer_info list[4];
    ring_usage_info info;
    unsigned char *buf;
    uint64_t D, put = 0;
    int32_t slot = -9;
    int rc;
    if (!LIB_OK(ring_create(name, 4096, 2), "ring_create"))
        return;
    if (lr_open(name, &r) != 0) {
        FAIL("cannot map %s", name);
        return;
    }
    D = r.D;
    buf = malloc((size_t)D + 16);
    raw_fill(buf, 0, (size_t)D + 16);
    init_job(&j, "gap: legacy consumer", name, gap_legacy_consumer, 0, 0);
    if (!LIB_OK(ring_attach_producer(name, &p), "ring_attach_producer"))
        goto out;
    /* Move the pointers off dataOffset so the fill crosses the top. */
    LIB_OK(ring_put(p, buf, 3000, 0), "ring_put with no consumer");
    spawn(&j);
    if (EXPECT_MSG(&j, &slot) != 0)
        goto out;
    CHECK_I(slot, 0, "legacy consumer slot");
    check_record(&r, 0, (int32_t)j.pid, "legacy consumer", __LINE__);
    CHECK_U(ld_pos(&r, 0), r.B + 3000, "legacy consumer copied the put pointer");
    /* The library must take the lowest free slot, after the legacy one. */
    if (LIB_OK(ring_attach_consumer(name, &c), "ring_attach_consumer")) {
        int cs = ring_slot(c);
        CHECK_I(cs, 1, "library consumer slot next to a legacy one in slot 0 (spec 6: lowest free)");
        if (cs >= 0 && (uint64_t)cs < r.n)
            check_record(&r, cs, (int32_t)getpid(), "library consumer", __LINE__);
        else
            FAIL("ring_slot returned %d, outside [0, %llu)", cs, (unsigned long long)r.n);
        LIB_OK(ring_detach(c), "ring_detach (consumer)");
    }
    memset(&info, 0, sizeof info);
    rc = ring_usage(name, &info, list, 4);
    if (LIB_OK(rc, "ring_usage")) {
        CHECK_I(rc, 1, "ring_usage consumers");
        CHECK_I(list[0].pid, j.pid, "ring_usage consumer[0].pid (legacy consumer)");
        CHECK_U(list[0].slot, 0, "ring_usage consumer[0].slot");
        CHECK_U(list[0].backlog, 0, "ring_usage consumer[0].backlog");
    }
    CHECK_U(ring_available_put_space(p), D - 1, "put space with an idle legacy consumer");
    while (put < D - 1) {
        size_t n = D - 1 - put < 1000 ? (size_t)(D - 1 - put) : 1000;
        if (!LIB_OK(ring_put(p, buf + put, n, 0), "ring_put filling to the gap"))
            break;
        put += n;
    }
    CHECK_U(ring_available_put_space(p), 0, "put space after D - 1 bytes");
    LIB_ERR(ring_put(p, buf, 1, 0), ETIMEDOUT, "ring_put past the gap, timeout 0");
    memset(&info, 0, sizeof info);
    if (LIB_OK(ring_usage(name, &info, list, 4), "ring_usage (full)")) {
        CHECK_U(info.max_get, D - 1, "ring_usage max_get, legacy consumer");
        CHECK_U(list[0].backlog, D - 1, "ring_usage backlog of the legacy consumer");
    }
    send_i32(j.cmd_wr, 1);
    if (EXPECT_MSG(&j, NULL) == 0)
        CHECK_U(ring_available_put_space(p), D - 1, "put space once the legacy consumer drained");
    send_i32(j.cmd_wr, 1);
    reap(&j, 10000);
out:
    if (j.pid && !j.reaped)
        reap(&j, 5000);
    if (p)
        LIB_OK(ring_detach(p), "ring_detach (producer)");
    free(buf);
    lr_close(&r);
    LIB_OK(ring_remove(name), "ring_remove");
}

/* ---------------------------------------------------------------------------------- */

int main(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGALRM, &sa, NULL);
    alarm(PARENT_ALARM_S);
    atexit(cleanup_rings);
    setvbuf(stdout, NULL, _IOLBF, 0);

    printf("legacy_ring: geometry\n");
    check_geometry("geo_default", 0, 0, 8392704, 1696, 8391008);
    check_geometry("geo_1m_10", 1048576, 10, 1052672, 256, 1052416);
    check_geometry("geo_64k_4", 65536, 4, 69632, 160, 69472);
    check_geometry("geo_4k_2", 4096, 2, 8192, 128, 8064);
    check_geometry("geo_exact_page", 4096 - 128, 2, 4096, 128, 3968);
    check_geometry("geo_one_over", 4096 - 127, 2, 8192, 128, 8064);
    check_geometry("geo_1_1", 1, 1, 4096, 112, 3984);
    check_geometry("geo_100000_7", 100000, 7, 102400, 208, 102192);
    printf("legacy_ring: limits\n");
    check_limits();
    printf("legacy_ring: legacy-created rings\n");
    check_legacy_created();
    printf("legacy_ring: fcntl lock\n");
    check_lock();
    printf("legacy_ring: legacy producer -> library consumers\n");
    check_legacy_to_library();
    printf("legacy_ring: library producer -> legacy consumers\n");
    check_library_to_legacy();
    printf("legacy_ring: one-byte gap, legacy producer\n");
    check_gap_legacy_producer();
    printf("legacy_ring: one-byte gap, library producer\n");
    check_gap_library_producer();

    cleanup_rings();
    if (failures) {
        fprintf(stderr, "legacy_ring: %d check(s) FAILED\n", failures);
        return 1;
    }
    printf("legacy_ring: all checks passed\n");
    return 0;
}
