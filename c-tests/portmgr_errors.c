/* Every failure of the portmgr_* client is an errno code with a message, never a hang or
 * an abort: fake servers (forked here) that stay silent, answer garbage, answer with the
 * legacy server's refusal, or hang up. */
#include <daqflow.h>

#include "check.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* A listening socket on 127.0.0.1 and a port the kernel chose. */
static int listen_any(int *port)
{
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    int s = socket(AF_INET, SOCK_STREAM, 0);
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) != 0 || listen(s, 8) != 0 ||
        getsockname(s, (struct sockaddr *)&a, &len) != 0) {
        perror("fake server");
        exit(1);
    }
    *port = ntohs(a.sin_port);
    return s;
}

/* Forks a server that accepts one connection, reads one line, writes reply, then hangs
 * up. Returns its pid. */
static pid_t fake_server(const char *reply, int *port)
{
    int s = listen_any(port);
    pid_t pid = fork();
    if (pid == 0) {
        char c;
        int conn = accept(s, NULL, NULL);
        while (conn >= 0 && read(conn, &c, 1) == 1 && c != '\n') {
        }
        if (conn >= 0 && write(conn, reply, strlen(reply)) < 0) _exit(1);
        _exit(0);
    }
    close(s);
    return pid;
}

/* Forks a server that answers its first request line late (after 300 ms) with OK 1001 and
 * any further line with OK 1002; it exits 0 when the client shuts the connection down
 * without sending another line, 3 when a second request arrives. Returns its pid. */
static pid_t slow_server(int *port)
{
    int s = listen_any(port);
    pid_t pid = fork();
    if (pid == 0) {
        char c;
        int lines = 0;
        struct timespec late = {0, 300 * 1000 * 1000};
        int conn;
        signal(SIGPIPE, SIG_IGN);
        conn = accept(s, NULL, NULL);
        if (conn < 0) _exit(1);
        while (read(conn, &c, 1) == 1) {
            if (c != '\n') continue;
            if (++lines > 1) {
                if (write(conn, "OK 1002\r\n", 9) < 0) _exit(1);
                _exit(3);
            }
            nanosleep(&late, NULL);
            /* The client may have shut down by now: a failed write is expected then. */
            if (write(conn, "OK 1001\r\n", 9) < 0) continue;
        }
        _exit(0);
    }
    close(s);
    return pid;
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Opens a client on port, checks what one request against the fake server gives, and
 * the server's own reason (refusal; NULL when the server did not refuse). */
static void expect_allocate(const char *reply, int expected, const char *text, const char *refusal)
{
    int port, got = -77;
    const char *reason = NULL;
    portmgr *pm = NULL;
    pid_t pid = fake_server(reply, &port);
    CHECK(portmgr_open("127.0.0.1", port, &pm) == 0);
    CHECK(portmgr_allocate(pm, "app", &got) == expected);
    CHECK(strstr(daqflow_last_error(), text) != NULL);
    CHECK(got == -77);
    CHECK(portmgr_refusal(pm, &reason) == (refusal != NULL));
    CHECK(refusal == NULL ? reason == NULL : strcmp(reason, refusal) == 0);
    CHECK(portmgr_close(pm) == 0);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

int main(void)
{
    int port, got = -77;
    size_t n = 12345;
    portmgr *pm = NULL;
    portmgr_allocation *list = (portmgr_allocation *)&failures;
    double t0;

    /* A server that never answers (never even accepts: the kernel's backlog does). */
    {
        int s = listen_any(&port);
        CHECK(portmgr_open("127.0.0.1", port, &pm) == 0);
        CHECK(portmgr_set_timeout(pm, 300) == 0);
        t0 = now_s();
        CHECK(portmgr_allocate(pm, "app", &got) == -ETIMEDOUT);
        CHECK(now_s() - t0 >= 0.25 && now_s() - t0 < 5.0);
        CHECK(strstr(daqflow_last_error(), "no reply within 300 ms") != NULL);
        /* A timed-out handle is shut down: later calls fail at once, without waiting. */
        CHECK(portmgr_list(pm, &list, &n) == -EPIPE);
        CHECK(strstr(daqflow_last_error(), "open a new one") != NULL);
        CHECK(list == (portmgr_allocation *)&failures && n == 12345);
        CHECK(portmgr_close(pm) == 0);
        close(s);
    }

    expect_allocate("HELLO\r\n", -EPROTO, "HELLO", NULL);
    expect_allocate("OK notaport\r\n", -EPROTO, "notaport", NULL);
    expect_allocate("FAIL {unbalanced\r\n", -EPROTO, "not a Tcl list", NULL);
    /* The legacy server's texts map to the documented codes, its text kept. */
    expect_allocate("FAIL {somehost (10.1.2.3) : Only local applications get ports}\r\n", -EPERM,
                    "somehost (10.1.2.3) : Only local applications get ports",
                    "somehost (10.1.2.3) : Only local applications get ports");
    expect_allocate("FAIL {no free ports}\r\n", -EADDRNOTAVAIL, "no free ports", "no free ports");
    expect_allocate("", -ECONNRESET, "closed the connection", NULL);
    /* FRIB's portman (LF, "FAIL - reason", then a hang-up): the same codes as the legacy
     * texts, its own words kept, and the handle no longer usable. */
    expect_allocate("FAIL - No free ports available\n", -EADDRNOTAVAIL, "No free ports available",
                    "No free ports available");
    expect_allocate("FAIL - FAIL can only allocate to local senders\n\n", -EPERM, "local senders",
                    "FAIL can only allocate to local senders");
    expect_allocate("FAIL - Duplicate port allocation attempted\n", -EEXIST, "Duplicate", "Duplicate port allocation attempted");
    expect_allocate("FAIL - invalid request\n", -EIO, "invalid request", "invalid request");
    {
        pid_t pid = fake_server("FAIL - No free ports available\n", &port);
        CHECK(portmgr_open("127.0.0.1", port, &pm) == 0);
        CHECK(portmgr_usable(pm) == 1);
        CHECK(portmgr_allocate(pm, "app", &got) == -EADDRNOTAVAIL);
        CHECK(portmgr_usable(pm) == 0);
        CHECK(portmgr_list(pm, &list, &n) == -EPIPE);
        CHECK(portmgr_close(pm) == 0);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
    CHECK(portmgr_usable(NULL) == -EINVAL);
    /* The legacy "no free ports" keeps the connection. */
    {
        pid_t pid = fake_server("FAIL {no free ports}\r\n", &port);
        CHECK(portmgr_open("127.0.0.1", port, &pm) == 0);
        CHECK(portmgr_allocate(pm, "app", &got) == -EADDRNOTAVAIL);
        CHECK(portmgr_usable(pm) == 1);
        CHECK(portmgr_close(pm) == 0);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }

    /* A LIST cut short. */
    {
        pid_t pid = fake_server("OK 2\r\n45000 a u\r\n", &port);
        CHECK(portmgr_open("127.0.0.1", port, &pm) == 0);
        CHECK(portmgr_list(pm, &list, &n) == -ECONNRESET);
        CHECK(list == (portmgr_allocation *)&failures && n == 12345);
        CHECK(portmgr_close(pm) == 0);
        waitpid(pid, NULL, 0);
    }

    /* A reply that comes after the timeout must never answer a later request (it would
     * hand the caller the previous request's port). */
    {
        int status = -1;
        struct timespec wait = {0, 400 * 1000 * 1000};
        pid_t pid = slow_server(&port);
        CHECK(portmgr_open("127.0.0.1", port, &pm) == 0);
        CHECK(portmgr_set_timeout(pm, 100) == 0);
        CHECK(portmgr_allocate(pm, "a", &got) == -ETIMEDOUT);
        nanosleep(&wait, NULL); /* the late OK 1001 is queued by now */
        got = -77;
        CHECK(portmgr_allocate(pm, "b", &got) == -EPIPE);
        CHECK(got == -77);
        /* The handle shut its connection down, so the server saw it end (and a real one
         * releases its ports) without a second request. */
        CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
        CHECK(portmgr_close(pm) == 0);
    }

    /* Nothing listening. */
    {
        int s = listen_any(&port);
        close(s);
        pm = (portmgr *)&failures;
        CHECK(portmgr_open("127.0.0.1", port, &pm) == -ECONNREFUSED);
        CHECK(pm == (portmgr *)&failures);
        CHECK(strstr(daqflow_last_error(), "cannot connect") != NULL);
    }

    if (failures) fprintf(stderr, "%d check(s) failed\n", failures);
    return failures ? 1 : 0;
}
