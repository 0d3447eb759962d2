/*
 * Fuzz harness for the Tcl packages' C stubs (tcl/ring.c, tcl/portallocator.c).
 *
 * The stubs sit between two untrusted sides: the script's arguments, and what
 * libdaqflow hands back, which comes from shared memory anyone can write or from
 * daemons on other hosts (usage counts, ring names, port listings). Here libdaqflow is
 * replaced by a fake whose every result (success or which errno, every field, every
 * count, every string) is read from the fuzz input, within the contract daqflow.h
 * states, and the same input picks the commands and their arguments. Each input runs
 * in a fresh interpreter; commands are built as word lists (Tcl_EvalObjv), so no input
 * is ever parsed as a script.
 */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tcl.h>

#include "daqflow.h"

int Ring_Init(Tcl_Interp *interp);
int Portallocator_Init(Tcl_Interp *interp);

/* ---- the input ------------------------------------------------------------------- */

static const uint8_t *inputAt;
static size_t inputLeft;

/* 0 once the input is used up: every later choice is the first one. */
static uint8_t Byte(void)
{
    if (inputLeft == 0) {
        return 0;
    }
    inputLeft--;
    return *inputAt++;
}

static uint64_t Bits(int bytes)
{
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++) {
        v |= (uint64_t)Byte() << (8 * i);
    }
    return v;
}

/* A count: mostly the edges where sizes are decided, sometimes any 32-bit value. */
static uint32_t Count(void)
{
    static const uint32_t edges[] = {0,       1,         2,          127,        128,        129,
                                     1000,    65535,     65536,      1u << 20,   (1u << 20) + 1,
                                     1u << 28, 0x10000001, INT32_MAX, 0x80000000u, UINT32_MAX};
    uint8_t pick = Byte();
    if (pick < 2 * sizeof edges / sizeof edges[0]) {
        return edges[pick / 2];
    }
    return pick < 200 ? pick - 32 : (uint32_t)Bits(4);
}

static uint64_t Wide(void)
{
    static const uint64_t edges[] = {0, 1, 8391008, UINT32_MAX, (uint64_t)INT64_MAX, UINT64_MAX};
    uint8_t pick = Byte();
    return pick < 6 ? edges[pick] : Bits(8);
}

/* 0 (success) or a negated errno, the ones the stubs treat specially among them. */
static int Rc(void)
{
    static const int errnos[] = {ENOENT, EACCES, EPERM,   EEXIST,       EINVAL,       EBADMSG,   ENOMEM, EIO,
                                 EPROTO, EPIPE,  EBUSY,   ECONNREFUSED, EADDRNOTAVAIL, ETIMEDOUT, ERANGE, 4095};
    uint8_t pick = Byte();
    return pick < 200 ? 0 : -errnos[pick % (sizeof errnos / sizeof errnos[0])];
}

/* A NUL-terminated string of input bytes (malloc'd): any bytes but NUL, as daqflow's
 * C strings may hold (names from /dev/shm, applications and users from a server). */
static char *CString(void)
{
    size_t n = Byte();
    char *s;
    if (n > 250) {
        n = Bits(2) % 4096;
    } else {
        n %= 40;
    }
    s = malloc(n + 1);
    for (size_t i = 0; i < n; i++) {
        uint8_t c = Byte();
        s[i] = (char)(c ? c : 'x');
    }
    s[n] = '\0';
    return s;
}

/* A word for a command: input bytes read as UTF-8 (Tcl takes invalid sequences as
 * single bytes), or a number at an edge of what the stubs accept. */
static Tcl_Obj *Word(void)
{
    static const char *const numbers[] = {"0",          "-1",         "1",          "4294967295", "4294967296",
                                          "2147483647", "2147483648", "-2147483649", "9223372036854775807",
                                          "9223372036854775808", "0x10000001", "1e3", " 7 ", "", "-0"};
    uint8_t pick = Byte();
    Tcl_DString text;
    Tcl_Encoding utf8;
    Tcl_Obj *word;
    char *raw;
    if (pick < 2 * sizeof numbers / sizeof numbers[0]) {
        return Tcl_NewStringObj(numbers[pick / 2], -1);
    }
    raw = CString();
    utf8 = Tcl_GetEncoding(NULL, "utf-8");
    Tcl_ExternalToUtfDString(utf8, raw, -1, &text);
    Tcl_FreeEncoding(utf8);
    word = Tcl_NewStringObj(Tcl_DStringValue(&text), Tcl_DStringLength(&text));
    Tcl_DStringFree(&text);
    free(raw);
    return word;
}

/* ---- ckalloc on malloc (fuzz_alloc.h) -------------------------------------------- */

char *DfFuzzAlloc(unsigned int size, int attempt)
{
    char *block = malloc(size ? size : 1);
    if (block == NULL && !attempt) {
        abort(); /* Tcl_Alloc panics */
    }
    return block;
}

char *DfFuzzRealloc(char *block, unsigned int size, int attempt)
{
    char *moved = realloc(block, size ? size : 1);
    if (moved == NULL && !attempt) {
        abort();
    }
    return moved;
}

void DfFuzzFree(char *block)
{
    free(block);
}

/* ---- the fake libdaqflow --------------------------------------------------------- */

const char *daqflow_last_error(void)
{
    return Byte() & 1 ? "" : "fuzzed failure";
}

/* The previous ring_usage answer, which the next call may give again (a ring that did
 * not change between two calls). */
static struct {
    int valid;
    ring_usage_info info;
    int n;
} lastUsage;

int ring_usage(const char *name, ring_usage_info *info, ring_consumer_info *consumers, size_t capacity)
{
    int rc = Rc();
    (void)name;
    if (rc < 0) {
        return rc;
    }
    if (!(lastUsage.valid && Byte() & 1)) {
        uint32_t n = Count();
        lastUsage.info.data_bytes = Wide();
        lastUsage.info.put_space = Wide();
        lastUsage.info.max_consumers = Count();
        lastUsage.info.producer_pid = (int32_t)Bits(4);
        lastUsage.info.max_get = Wide();
        lastUsage.info.min_get = Wide();
        /* A non-negative int, as the contract says. */
        lastUsage.n = n > INT_MAX ? INT_MAX : (int)n;
        lastUsage.info.n_consumers = (uint32_t)lastUsage.n;
        lastUsage.valid = 1;
    }
    *info = lastUsage.info;
    /* As the library: up to capacity entries, whatever the count. */
    for (size_t i = 0; i < capacity && i < (size_t)lastUsage.n; i++) {
        consumers[i].pid = (int32_t)Bits(1);
        consumers[i].slot = (uint32_t)i;
        consumers[i].backlog = Bits(1);
    }
    return lastUsage.n;
}

int ring_list(char ***names, size_t *count)
{
    int rc = Rc();
    size_t n;
    if (rc < 0) {
        return rc;
    }
    n = Byte() % 8;
    *names = n ? calloc(n, sizeof **names) : NULL;
    for (size_t i = 0; i < n; i++) {
        (*names)[i] = CString();
    }
    *count = n;
    return 0;
}

void ring_list_free(char **names, size_t count)
{
    for (size_t i = 0; names != NULL && i < count; i++) {
        free(names[i]);
    }
    free(names);
}

int ring_create(const char *name, uint64_t data_bytes, uint32_t max_consumers)
{
    (void)name, (void)data_bytes, (void)max_consumers;
    return Rc();
}

int ring_format(const char *name, uint32_t max_consumers)
{
    (void)name, (void)max_consumers;
    return Rc();
}

int ring_disconnect_producer(const char *name)
{
    (void)name;
    return Rc();
}

int ring_disconnect_consumer(const char *name, uint32_t slot)
{
    (void)name, (void)slot;
    return Rc();
}

int ring_adopt(const char *name)
{
    (void)name;
    return Rc();
}

int ring_remove(const char *name)
{
    (void)name;
    return Rc();
}

/* `ringbuffer wait` polls this, sleeping 1, 2, 4 ... ms between calls: a ring that is
 * not there is answered twice per input at most, so no input sleeps long. */
static int absentAnswers;

int ring_exists(const char *name)
{
    int rc = Rc();
    (void)name;
    if (rc < 0) {
        return rc;
    }
    return Byte() & 1 && absentAnswers++ < 2 ? 0 : 1;
}

struct portmgr {
    int refused; /* the last allocate got a FAIL reply */
};

int portmgr_open(const char *host, int port, portmgr **out)
{
    int rc = Rc();
    (void)host, (void)port;
    if (rc < 0) {
        return rc;
    }
    *out = calloc(1, sizeof **out);
    return 0;
}

int portmgr_close(portmgr *pm)
{
    free(pm);
    return 0;
}

/* 1 when the handle may still be used, 0 once it is gone: either, from the input. */
int portmgr_usable(portmgr *pm)
{
    if (!pm) {
        return -EINVAL;
    }
    return Byte() & 1;
}

int portmgr_default_port(void)
{
    int rc = Rc();
    return rc < 0 ? rc : (int)(Bits(2) % 65535) + 1;
}

int portmgr_allocate(portmgr *pm, const char *application, int *port_out)
{
    int rc = Rc();
    (void)application;
    pm->refused = rc < 0 && Byte() & 1;
    if (rc == 0) {
        *port_out = (int)Bits(2);
    }
    return rc;
}

int portmgr_refusal(portmgr *pm, const char **reason)
{
    static char *last;
    if (!pm->refused) {
        return 0;
    }
    free(last);
    last = CString();
    *reason = last;
    return 1;
}

int portmgr_list(portmgr *pm, portmgr_allocation **list, size_t *count)
{
    int rc = Rc();
    size_t n;
    (void)pm;
    if (rc < 0) {
        return rc;
    }
    /* At most 65535 (one per port), as the library guarantees; the full 65535 only
     * rarely, or it would take most of the fuzzing time. */
    n = Byte();
    if (n == 255) {
        n = Byte() == 255 ? 65535 : Bits(2) % 1024;
    } else {
        n %= 16;
    }
    *list = n ? calloc(n, sizeof **list) : NULL;
    for (size_t i = 0; i < n; i++) {
        (*list)[i].port = (int)Bits(2);
        (*list)[i].application = CString();
        (*list)[i].user = CString();
    }
    *count = n;
    return 0;
}

void portmgr_list_free(portmgr_allocation *list, size_t count)
{
    for (size_t i = 0; list != NULL && i < count; i++) {
        free(list[i].application);
        free(list[i].user);
    }
    free(list);
}

int portmgr_find_server(portmgr *pm, const char *service, const char *user, int *port_out)
{
    int rc = Rc();
    (void)pm, (void)service, (void)user;
    if (rc == 0) {
        *port_out = (int)Bits(2);
    }
    return rc;
}

/* ---- driving the commands -------------------------------------------------------- */

/* Runs the command of `objc` words (fresh objects, owned here); returns its code, with
 * its result in the interpreter. */
static int Run(Tcl_Interp *interp, int objc, Tcl_Obj **objv)
{
    int code;
    for (int i = 0; i < objc; i++) {
        Tcl_IncrRefCount(objv[i]);
    }
    code = Tcl_EvalObjv(interp, objc, objv, TCL_EVAL_GLOBAL);
    for (int i = 0; i < objc; i++) {
        Tcl_DecrRefCount(objv[i]);
    }
    return code;
}

/* A usage list that `ringbuffer usage name` returned must hold every consumer the
 * (last) ring_usage call counted, and its maxConsumers. */
static void CheckUsage(Tcl_Interp *interp)
{
    Tcl_Obj *consumers, *slots;
    Tcl_WideInt max = -1;
    int n = -1;
    if (Tcl_ListObjIndex(NULL, Tcl_GetObjResult(interp), 2, &slots) != TCL_OK || slots == NULL ||
        Tcl_GetWideIntFromObj(NULL, slots, &max) != TCL_OK ||
        Tcl_ListObjIndex(NULL, Tcl_GetObjResult(interp), 6, &consumers) != TCL_OK || consumers == NULL ||
        Tcl_ListObjLength(NULL, consumers, &n) != TCL_OK || n != lastUsage.n ||
        max != (Tcl_WideInt)lastUsage.info.max_consumers) {
        fprintf(stderr, "usage result %s does not match the library's %d consumers of %u slots\n",
                Tcl_GetString(Tcl_GetObjResult(interp)), lastUsage.n, (unsigned)lastUsage.info.max_consumers);
        abort();
    }
}

static Tcl_Obj *Lit(const char *word)
{
    return Tcl_NewStringObj(word, -1);
}

/* Up to `most` input words after the `fixed` ones already in objv. */
static int MoreWords(Tcl_Obj **objv, int fixed, int most)
{
    int n = Byte() % (most + 1);
    for (int i = 0; i < n; i++) {
        objv[fixed + i] = Word();
    }
    return fixed + n;
}

static void RingCommand(Tcl_Interp *interp)
{
    static const char *const subs[] = {"usage", "list", "create", "format", "remove", "exists", "wait", "u", "cr"};
    Tcl_Obj *objv[8];
    int objc = 0;
    uint8_t op = Byte();
    objv[objc++] = Lit("::ringbuffer");
    switch (op % 4) {
    case 0: /* a subcommand with a few words */
        objv[objc++] = Lit(subs[Byte() % (sizeof subs / sizeof subs[0])]);
        objc = MoreWords(objv, objc, 4);
        break;
    case 1: /* the disconnect ensemble */
        objv[objc++] = Lit("disconnect");
        objv[objc++] = Lit(Byte() & 1 ? "producer" : "consumer");
        objc = MoreWords(objv, objc, 3);
        break;
    case 2: /* usage of one ring, the stub's most involved path */
        objv[objc++] = Lit("usage");
        objv[objc++] = Word();
        if (Run(interp, objc, objv) == TCL_OK) {
            CheckUsage(interp);
        }
        return;
    default: /* any words at all */
        objc = MoreWords(objv, objc, 5);
        break;
    }
    Run(interp, objc, objv);
}

static void PortAllocatorCommand(Tcl_Interp *interp, Tcl_Obj *objects)
{
    static const char *const methods[] = {"listPorts", "findServer",   "findServerAllUsers", "allocatePort",
                                          "cget",      "configure",    "destroy",            "listP"};
    static const char *const options[] = {"-hostname", "-port", "-h", "-bogus"};
    Tcl_Obj *objv[10];
    int objc = 0, known = 0;
    uint8_t op = Byte();
    Tcl_ListObjLength(NULL, objects, &known);
    if (op % 3 == 0 || known == 0) {
        /* A new object: ::portAllocator ?create? name ?-option value ...? */
        objv[objc++] = Lit("::portAllocator");
        if (Byte() & 1) {
            objv[objc++] = Lit("create");
        }
        objv[objc++] = Byte() & 1 ? Lit("%AUTO%") : Word();
        for (int i = Byte() % 3; i > 0; i--) {
            objv[objc++] = Lit(options[Byte() % 4]);
            objv[objc++] = Word();
        }
        for (int i = 0; i < objc; i++) {
            Tcl_IncrRefCount(objv[i]);
        }
        if (Tcl_EvalObjv(interp, objc, objv, TCL_EVAL_GLOBAL) == TCL_OK) {
            Tcl_ListObjAppendElement(NULL, objects, Tcl_GetObjResult(interp));
        }
        for (int i = 0; i < objc; i++) {
            Tcl_DecrRefCount(objv[i]);
        }
        return;
    }
    Tcl_ListObjIndex(NULL, objects, Byte() % known, &objv[objc]);
    objv[objc] = Tcl_DuplicateObj(objv[objc]);
    objc++;
    objv[objc++] = Lit(methods[Byte() % (sizeof methods / sizeof methods[0])]);
    if (Byte() & 1) {
        objv[objc++] = Lit(options[Byte() % 4]);
    }
    objc = MoreWords(objv, objc, 4);
    Run(interp, objc, objv);
}

typedef int InitProc(Tcl_Interp *interp);

static void OneInput(const uint8_t *data, size_t size, InitProc *init, int portAllocator)
{
    static int found;
    Tcl_Interp *interp;
    Tcl_Obj *objects;
    if (!found) {
        Tcl_FindExecutable("tclsh");
        found = 1;
    }
    inputAt = data;
    inputLeft = size;
    lastUsage.valid = 0;
    absentAnswers = 0;
    interp = Tcl_CreateInterp();
    if (init(interp) != TCL_OK) {
        fprintf(stderr, "package init failed: %s\n", Tcl_GetStringResult(interp));
        abort();
    }
    objects = Tcl_NewListObj(0, NULL);
    Tcl_IncrRefCount(objects);
    for (int commands = 0; inputLeft > 0 && commands < 32; commands++) {
        if (portAllocator) {
            PortAllocatorCommand(interp, objects);
        } else {
            RingCommand(interp);
        }
    }
    Tcl_DecrRefCount(objects);
    Tcl_DeleteInterp(interp);
}

void df_fuzz_tcl_ring(const uint8_t *data, size_t size)
{
    OneInput(data, size, Ring_Init, 0);
}

void df_fuzz_tcl_portallocator(const uint8_t *data, size_t size)
{
    OneInput(data, size, Portallocator_Init, 1);
}
