/* The portmgr_* C client against a real daqportmgr (started here from PATH, on a port the
 * kernel picks, with a mkdtemp state directory; stopped with SIGTERM at the end). */
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

static char dir[64] = "/tmp/daqflow-ctest-XXXXXX";
static char portfile[128];
static pid_t daemon_pid = -1;

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Starts daqportmgr -listen 0 and returns the port it wrote to listen.port. The pool
 * lies below the kernel's ephemeral ports, where that listen port comes from: the
 * daemon skips a pool port something listens on, which would change the ports checked. */
static int start_daemon(void)
{
    char log[128], pidfile[128];
    snprintf(portfile, sizeof portfile, "%s/listen.port", dir);
    snprintf(log, sizeof log, "%s/log", dir);
    snprintf(pidfile, sizeof pidfile, "%s/pid", dir);
    daemon_pid = fork();
    if (daemon_pid == 0) {
        execlp("daqportmgr", "daqportmgr", "-listen", "0", "-ports", "28500-28502", "-log", log,
               "-portfile", portfile, "-pidfile", pidfile, (char *)NULL);
        perror("exec daqportmgr");
        _exit(127);
    }
    for (int i = 0; i < 1000; i++) {
        FILE *f = fopen(portfile, "r");
        int port = 0;
        if (f) {
            int ok = fscanf(f, "%d", &port) == 1;
            fclose(f);
            if (ok && port > 0) return port;
        }
        if (waitpid(daemon_pid, NULL, WNOHANG) == daemon_pid) break;
        sleep_ms(10);
    }
    fprintf(stderr, "daqportmgr did not start\n");
    exit(1);
}

/* Whatever happens, the daemon does not outlive the test, nor does its directory. */
static void cleanup(void)
{
    char cmd[160];
    if (daemon_pid > 0) {
        kill(daemon_pid, SIGKILL);
        waitpid(daemon_pid, NULL, 0);
    }
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

static int ipv6_loopback_works(void)
{
    struct sockaddr_in6 a;
    int s = socket(AF_INET6, SOCK_STREAM, 0), ok;
    if (s < 0) return 0;
    memset(&a, 0, sizeof a);
    a.sin6_family = AF_INET6;
    a.sin6_addr = in6addr_loopback;
    ok = bind(s, (struct sockaddr *)&a, sizeof a) == 0;
    close(s);
    return ok;
}

static size_t list_count(portmgr *pm)
{
    portmgr_allocation *list = NULL;
    size_t n = 999;
    CHECK(portmgr_list(pm, &list, &n) == 0);
    portmgr_list_free(list, n);
    return n;
}

int main(void)
{
    portmgr *pm = NULL, *pm2 = NULL, *untouched = (portmgr *)&failures;
    portmgr_allocation *list = NULL;
    size_t n = 0;
    int port = 0, listen_port, status = 0;

    if (!mkdtemp(dir)) { perror("mkdtemp"); return 1; }
    atexit(cleanup);
    listen_port = start_daemon();

    /* port <= 0: the port file named by the environment. */
    setenv("DAQPORTMGR_PORTFILE", portfile, 1);
    CHECK(portmgr_open(NULL, 0, &pm) == 0);

    CHECK(portmgr_allocate(pm, "my app", &port) == 0);
    CHECK(port == 28502);
    CHECK(portmgr_allocate(pm, "my app", &port) == 0);
    CHECK(port == 28501);

    CHECK(portmgr_list(pm, &list, &n) == 0);
    CHECK(n == 2);
    if (n == 2) {
        /* Legacy order and suffixes: ports as strings, later ones named app_1. */
        CHECK(list[0].port == 28501 && strcmp(list[0].application, "my app") == 0);
        CHECK(list[1].port == 28502 && strcmp(list[1].application, "my app_1") == 0);
        CHECK(strcmp(list[0].user, list[1].user) == 0 && list[0].user[0] != '\0');
    }
    portmgr_list_free(list, n);

    CHECK(portmgr_find_server(pm, "my app", NULL, &port) == 0 && port == 28501);
    CHECK(portmgr_find_server(pm, "my app_1", NULL, &port) == 0 && port == 28502);
    port = -77;
    CHECK(portmgr_find_server(pm, "nope", NULL, &port) == -ENOENT);
    CHECK(strstr(daqflow_last_error(), "nope") != NULL);
    CHECK(port == -77); /* out-parameters only on success */
    CHECK(portmgr_find_server(pm, "my app", "someone-else", &port) == -ENOENT);

    CHECK(portmgr_allocate(pm, "third", &port) == 0 && port == 28500);
    port = -77;
    CHECK(portmgr_allocate(pm, "fourth", &port) == -EADDRNOTAVAIL);
    CHECK(strstr(daqflow_last_error(), "no free ports") != NULL);
    CHECK(port == -77);
    CHECK(portmgr_allocate(pm, "line\nbreak", &port) == -EINVAL);

    /* Another handle sees them; closing the first releases them all. */
    CHECK(portmgr_open("127.0.0.1", listen_port, &pm2) == 0);
    CHECK(list_count(pm2) == 3);
    CHECK(portmgr_close(pm) == 0);
    for (int i = 0; i < 200 && list_count(pm2) != 0; i++) sleep_ms(10);
    CHECK(list_count(pm2) == 0);

    if (ipv6_loopback_works()) {
        portmgr *v6 = NULL;
        CHECK(portmgr_open("::1", listen_port, &v6) == 0);
        CHECK(portmgr_allocate(v6, "v6", &port) == 0 && port == 28500);
        CHECK(portmgr_close(v6) == 0);
    }

    /* Arguments. */
    CHECK(portmgr_open(NULL, 0, NULL) == -EINVAL);
    CHECK(portmgr_allocate(NULL, "x", &port) == -EINVAL);
    CHECK(portmgr_allocate(pm2, NULL, &port) == -EINVAL);
    CHECK(portmgr_allocate(pm2, "x", NULL) == -EINVAL);
    CHECK(portmgr_list(pm2, NULL, &n) == -EINVAL);
    CHECK(portmgr_find_server(pm2, NULL, NULL, &port) == -EINVAL);
    CHECK(portmgr_open("127.0.0.1", 70000, &pm) == -EINVAL);
    CHECK(portmgr_set_timeout(pm2, 0) == -EINVAL);
    CHECK(portmgr_set_timeout(pm2, 500) == 0);
    CHECK(portmgr_set_timeout(pm2, -1) == 0);
    CHECK(portmgr_close(NULL) == 0);
    portmgr_list_free(NULL, 0);
    CHECK(portmgr_close(pm2) == 0);

    /* A port file that does not hold a port is an error, not a guess. */
    {
        char junk[128];
        FILE *f;
        snprintf(junk, sizeof junk, "%s/junk.port", dir);
        f = fopen(junk, "w");
        if (f) { fputs("junk\n", f); fclose(f); }
        setenv("DAQPORTMGR_PORTFILE", junk, 1);
        CHECK(portmgr_open(NULL, 0, &untouched) == -EINVAL);
        CHECK(strstr(daqflow_last_error(), "junk.port") != NULL);
        CHECK(untouched == (portmgr *)&failures);
    }

    /* SIGTERM: the daemon exits 0, after which nothing answers. */
    kill(daemon_pid, SIGTERM);
    CHECK(waitpid(daemon_pid, &status, 0) == daemon_pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    daemon_pid = -1;
    CHECK(portmgr_open("127.0.0.1", listen_port, &untouched) == -ECONNREFUSED);
    CHECK(untouched == (portmgr *)&failures);

    if (failures) fprintf(stderr, "%d check(s) failed\n", failures);
    return failures ? 1 : 0;
}
