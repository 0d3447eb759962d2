/* Loads libdaqflow with dlopen (the way a Tcl `load` or a Python ctypes user would),
 * maps a ring, which installs the library's SIGBUS handler, detaches, removes the ring
 * and unloads the library; then faults on a truncated file mapping of its own. That
 * SIGBUS must kill it as SIGBUS: a handler left pointing into an unloaded library would
 * jump into whatever is mapped there now (usually nothing: SIGSEGV).
 * Usage: unload LIBRARY RING-NAME. Exits 2..5 when a step before the fault fails. */
#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

typedef struct ring_client ring_client;

int main(int argc, char **argv)
{
    void *lib;
    int (*create)(const char *, unsigned long long, unsigned);
    int (*attach)(const char *, ring_client **);
    int (*detach)(ring_client *);
    int (*remove)(const char *);
    ring_client *consumer = NULL;
    char path[] = "/tmp/daqflow-unload-XXXXXX";
    volatile char *page;
    int fd;
    if (argc != 3)
        return 2;
    lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (lib == NULL) {
        fprintf(stderr, "%s\n", dlerror());
        return 3;
    }
    *(void **)&create = dlsym(lib, "ring_create");
    *(void **)&attach = dlsym(lib, "ring_attach_consumer");
    *(void **)&detach = dlsym(lib, "ring_detach");
    *(void **)&remove = dlsym(lib, "ring_remove");
    if (!create || !attach || !detach || !remove || create(argv[2], 65536, 4) != 0)
        return 4;
    if (attach(argv[2], &consumer) != 0) {
        remove(argv[2]);
        return 4;
    }
    detach(consumer);
    remove(argv[2]);
    dlclose(lib);

    fd = mkstemp(path);
    if (fd < 0 || ftruncate(fd, 8192) != 0)
        return 5;
    page = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    unlink(path);
    if (page == MAP_FAILED || ftruncate(fd, 0) != 0)
        return 5;
    page[4096] = 1; /* SIGBUS */
    return 6;
}
