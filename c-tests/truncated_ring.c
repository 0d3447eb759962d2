/* A ring truncated under its clients (rings are 0666: anyone may ftruncate one) is an
 * error on the next call, not SIGBUS; while SIGBUS from anything else still does what
 * it did before the library was loaded: kills, or reaches the program's own handler.
 * Each case runs in a forked child, so one that dies cannot take the others with it. */
#include <daqflow.h>

#include "check.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

static char ring_name[64];

static char ring_path[96];

static void truncate_ring(off_t len)
{
    int fd = open(ring_path, O_WRONLY);
    if (fd < 0 || ftruncate(fd, len) != 0) {
        perror("truncate the ring");
        exit(90);
    }
    close(fd);
}

static void fresh_ring(void)
{
    /* A truncated ring is no longer a ring: ring_remove rightly refuses it. */
    unlink(ring_path);
    if (ring_create(ring_name, 65536, 4) != 0) {
        fprintf(stderr, "ring_create: %s\n", daqflow_last_error());
        exit(91);
    }
}

static int is_truncation_error(long rc)
{
    return rc == -EBADMSG && strstr(daqflow_last_error(), "truncated") != NULL;
}

/* Runs `body` in a child; returns its wait status. */
static int in_child(void (*body)(void))
{
    int status = 0;
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        exit(92);
    }
    if (pid == 0) {
        body();
        exit(failures == 0 ? 0 : 1);
    }
    if (waitpid(pid, &status, 0) != pid) {
        perror("waitpid");
        exit(93);
    }
    return status;
}

/* How a child ended, as "exit N" or "signal N". */
static const char *ending(int status, int *n)
{
    *n = WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status);
    return WIFSIGNALED(status) ? "signal" : "exit";
}

/* `how` is "exit" or "signal". */
static void expect(const char *what, int status, const char *how, int n)
{
    int got;
    const char *ended = ending(status, &got);
    if (strcmp(ended, how) != 0 || got != n) {
        fprintf(stderr, "%s: wanted %s %d, got %s %d\n", what, how, n, ended, got);
        failures++;
    }
}

/* Every call on a truncated ring fails with EBADMSG and says why. */
static void clients_survive(void)
{
    ring_client *producer = NULL, *consumer = NULL;
    char buf[4096];
    uint64_t put_space;
    struct ring_span spans[2];
    fresh_ring();
    CHECK(ring_attach_producer(ring_name, &producer) == 0);
    CHECK(ring_attach_consumer(ring_name, &consumer) == 0);
    memset(buf, 'x', sizeof buf);
    CHECK(ring_put(producer, buf, sizeof buf, 1000) == 0);
    truncate_ring(0);
    CHECK(is_truncation_error(ring_get(consumer, buf, 1, sizeof buf, 1000)));
    CHECK(is_truncation_error(ring_put(producer, buf, sizeof buf, 1000)));
    CHECK(is_truncation_error(ring_peek(consumer, buf, sizeof buf)));
    CHECK(is_truncation_error(ring_borrow(consumer, 1, sizeof buf, spans, 0)));
    CHECK(is_truncation_error(ring_reserve(producer, 16, spans, 0)));
    put_space = ring_available_put_space(producer);
    CHECK(put_space == 0 && strstr(daqflow_last_error(), "truncated") != NULL);
    CHECK(ring_detach(consumer) == 0 || strstr(daqflow_last_error(), "truncated") != NULL);
    CHECK(ring_detach(producer) == 0 || strstr(daqflow_last_error(), "truncated") != NULL);
}

/* A truncation that leaves the header but takes the data area strikes in the copy. */
static void copy_survives(void)
{
    ring_client *producer = NULL, *consumer = NULL;
    static char buf[60000];
    fresh_ring();
    CHECK(ring_attach_producer(ring_name, &producer) == 0);
    CHECK(ring_attach_consumer(ring_name, &consumer) == 0);
    memset(buf, 'y', sizeof buf);
    CHECK(ring_put(producer, buf, sizeof buf, 1000) == 0);
    truncate_ring(4096);
    CHECK(is_truncation_error(ring_get(consumer, buf, sizeof buf, sizeof buf, 1000)));
    ring_detach(consumer);
    ring_detach(producer);
}

static volatile sig_atomic_t own_handler_ran;

static void own_handler(int sig, siginfo_t *info, void *context)
{
    (void)sig;
    (void)info;
    (void)context;
    own_handler_ran = 1;
    _exit(42);
}

/* Maps a scratch file, truncates it and touches the lost page. */
static void foreign_fault(void)
{
    char path[] = "/tmp/daqflow-sigbus-XXXXXX";
    volatile char *p;
    int fd = mkstemp(path);
    if (fd < 0 || ftruncate(fd, 8192) != 0) {
        perror("scratch file");
        exit(94);
    }
    p = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    unlink(path);
    if (p == MAP_FAILED || ftruncate(fd, 0) != 0) {
        perror("scratch mapping");
        exit(95);
    }
    p[4096] = 1; /* SIGBUS */
    exit(96);
}

static void attach_then_foreign_fault(void)
{
    ring_client *consumer = NULL;
    fresh_ring();
    CHECK(ring_attach_consumer(ring_name, &consumer) == 0);
    foreign_fault();
}

/* The program's own handler, installed before the library's, still gets foreign
 * faults; ring faults never reach it. */
static void own_handler_then_faults(void)
{
    struct sigaction sa;
    ring_client *consumer = NULL, *producer = NULL;
    char buf[256];
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = own_handler;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGBUS, &sa, NULL);
    fresh_ring();
    CHECK(ring_attach_producer(ring_name, &producer) == 0);
    CHECK(ring_attach_consumer(ring_name, &consumer) == 0);
    memset(buf, 'z', sizeof buf);
    CHECK(ring_put(producer, buf, sizeof buf, 1000) == 0);
    truncate_ring(0);
    CHECK(is_truncation_error(ring_get(consumer, buf, 1, sizeof buf, 1000)));
    CHECK(!own_handler_ran);
    if (failures != 0)
        exit(1);
    foreign_fault();
}

/* kill -BUS is not a fault: it kills as before. */
static void attach_then_killed(void)
{
    ring_client *consumer = NULL;
    fresh_ring();
    CHECK(ring_attach_consumer(ring_name, &consumer) == 0);
    kill(getpid(), SIGBUS);
    exit(97);
}

static volatile sig_atomic_t one_shot_calls;

static void one_shot_handler(int sig)
{
    (void)sig;
    one_shot_calls++;
}

/* A handler installed with SA_RESETHAND runs once: the kernel resets the disposition
 * before calling it, so a fault it returns from repeats and kills. Chained to from the
 * library's handler it must still run once, not forever. */
static void one_shot_handler_then_fault(void)
{
    struct sigaction sa;
    ring_client *consumer = NULL;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = one_shot_handler;
    sa.sa_flags = SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGBUS, &sa, NULL);
    fresh_ring();
    CHECK(ring_attach_consumer(ring_name, &consumer) == 0);
    alarm(10); /* a handler called over and over ends here, not in a hang */
    foreign_fault();
}

/* A program that ignores SIGBUS is not killed by kill -BUS because it mapped a ring. */
static void ignored_then_killed(void)
{
    ring_client *consumer = NULL;
    signal(SIGBUS, SIG_IGN);
    fresh_ring();
    CHECK(ring_attach_consumer(ring_name, &consumer) == 0);
    kill(getpid(), SIGBUS);
    ring_detach(consumer);
    exit(failures == 0 ? 0 : 1);
}

int main(void)
{
    snprintf(ring_name, sizeof ring_name, "truncated-c-%d", (int)getpid());
    snprintf(ring_path, sizeof ring_path, "/dev/shm/%s", ring_name);
    expect("clients of a ring truncated to 0", in_child(clients_survive), "exit", 0);
    expect("a copy from a ring truncated to one page", in_child(copy_survives), "exit", 0);
    expect("a fault outside any ring, no handler", in_child(attach_then_foreign_fault), "signal", SIGBUS);
    expect("a program's own SIGBUS handler", in_child(own_handler_then_faults), "exit", 42);
    expect("kill -BUS", in_child(attach_then_killed), "signal", SIGBUS);
    expect("a fault with an SA_RESETHAND handler", in_child(one_shot_handler_then_fault), "signal", SIGBUS);
    expect("kill -BUS with SIGBUS ignored", in_child(ignored_then_killed), "exit", 0);
    unlink(ring_path);
    if (failures != 0) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    return 0;
}
