/*
 * The Tcl `ring` package: the `ringbuffer` ensemble over libdaqflow's ring_* calls.
 *
 * Every subcommand works on the shared memory directly (no RingMaster daemon). Results
 * keep the legacy shapes, which scripts index by position (see docs/tcl.md). Nothing
 * here is process-global: the commands live in the interpreter that loaded the package.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <tcl.h>

#include "daqflow.h"
#include "dferror.h"

#define RING_VERSION "1.1"

/* Consumers read in one ring_usage call before falling back to a heap buffer. */
#define USAGE_STACK_SLOTS 128

/* ring_usage calls for one answer: the second has room for every slot of the ring, so
 * a third is needed only if the ring changed shape in between. */
#define USAGE_TRIES 3

/* A size or count argument: an integer in [min, max]. */
static int GetBounded(Tcl_Interp *interp, Tcl_Obj *obj, const char *what, Tcl_WideInt min, Tcl_WideInt max,
                      Tcl_WideInt *out)
{
    Tcl_WideInt value;
    if (Tcl_GetWideIntFromObj(interp, obj, &value) != TCL_OK) {
        return TCL_ERROR;
    }
    if (value < min || value > max) {
        return DfArgError(interp, ERANGE,
                          Tcl_ObjPrintf("%s %s is outside the range [%" TCL_LL_MODIFIER "d..%" TCL_LL_MODIFIER "d]",
                                        what, Tcl_GetString(obj), min, max));
    }
    *out = value;
    return TCL_OK;
}

/* Sets the error "<what>: ring <name> <why>" with errorCode {POSIX EBADMSG ...}, for
 * counts from a ring's header or another host's ring master that no ring can have;
 * returns -EBADMSG. */
static int HostileCounts(Tcl_Interp *interp, const char *what, const char *name, Tcl_Obj *why)
{
    Tcl_Obj *message = Tcl_ObjPrintf("%s: ring %s %s", what, name, Tcl_GetString(why));
    Tcl_DecrRefCount(why);
    DfArgError(interp, EBADMSG, message);
    return -EBADMSG;
}

/* {dataBytes putSpace maxConsumers producerPid maxGet minGet {{pid backlog} ...}} in *out
 * and 0, or a negated errno with the interpreter's result "<what>: <why>" and a POSIX
 * errorCode.
 * The counts come from shared memory anyone can write, or, for tcp://host/ring, from
 * that host's ring master: they are checked before anything is sized by them. */
static int UsageObj(Tcl_Interp *interp, const char *name, const char *what, Tcl_Obj **out)
{
    ring_usage_info info;
    ring_consumer_info stackSlots[USAGE_STACK_SLOTS];
    ring_consumer_info *slots = stackSlots;
    size_t capacity = USAGE_STACK_SLOTS;
    int n;

    for (int tries = 1;; tries++) {
        n = ring_usage(name, &info, slots, capacity);
        if (n < 0) {
            DfPosixError(interp, n, what);
            break;
        }
        if ((size_t)n <= capacity) {
            break;
        }
        /* More consumers than room. A ring has at most max_consumers slots in use, and no
         * ring more than RING_MAX_CONSUMERS, so room for those is room for all (16 MiB at
         * most); counts beyond either were not read from a real ring. */
        if ((uint32_t)n > info.max_consumers) {
            n = HostileCounts(interp, what, name,
                              Tcl_ObjPrintf("reports %d consumers in use but has only %u consumer slots", n,
                                            (unsigned)info.max_consumers));
            break;
        }
        if (info.max_consumers > RING_MAX_CONSUMERS) {
            n = HostileCounts(interp, what, name,
                              Tcl_ObjPrintf("claims %u consumer slots, more than the %u a ring can have",
                                            (unsigned)info.max_consumers, (unsigned)RING_MAX_CONSUMERS));
            break;
        }
        if (tries == USAGE_TRIES) {
            n = HostileCounts(interp, what, name,
                              Tcl_ObjPrintf("reported more consumers than its slots at each of %d tries", tries));
            break;
        }
        if (slots != stackSlots) {
            ckfree(slots);
        }
        capacity = info.max_consumers;
        slots = (ring_consumer_info *)attemptckalloc((unsigned)(capacity * sizeof *slots));
        if (slots == NULL) {
            slots = stackSlots;
            DfArgError(interp, ENOMEM,
                       Tcl_ObjPrintf("%s: no memory for the %u consumer slots of ring %s", what, (unsigned)capacity,
                                     name));
            n = -ENOMEM;
            break;
        }
    }
    if (n >= 0) {
        Tcl_Obj *consumers = Tcl_NewListObj(0, NULL);
        Tcl_Obj *fields[7];
        for (int i = 0; i < n; i++) {
            Tcl_Obj *pair[2] = {Tcl_NewIntObj(slots[i].pid), Tcl_NewWideIntObj((Tcl_WideInt)slots[i].backlog)};
            Tcl_ListObjAppendElement(NULL, consumers, Tcl_NewListObj(2, pair));
        }
        fields[0] = Tcl_NewWideIntObj((Tcl_WideInt)info.data_bytes);
        fields[1] = Tcl_NewWideIntObj((Tcl_WideInt)info.put_space);
        fields[2] = Tcl_NewWideIntObj((Tcl_WideInt)info.max_consumers);
        fields[3] = Tcl_NewIntObj(info.producer_pid);
        fields[4] = Tcl_NewWideIntObj((Tcl_WideInt)info.max_get);
        fields[5] = Tcl_NewWideIntObj((Tcl_WideInt)info.min_get);
        fields[6] = consumers;
        *out = Tcl_NewListObj(7, fields);
    }
    if (slots != stackSlots) {
        ckfree(slots);
    }
    return n < 0 ? n : 0;
}

/* ringbuffer create name ?size ?maxconsumers?? */
static int CreateCmd(void *cd, Tcl_Interp *interp, int objc, Tcl_Obj *const objv[])
{
    Tcl_WideInt size = 0, consumers = 0;
    int rc;
    (void)cd;
    if (objc < 2 || objc > 4) {
        Tcl_WrongNumArgs(interp, 1, objv, "name ?size ?maxconsumers??");
        return TCL_ERROR;
    }
    if (objc > 2 && GetBounded(interp, objv[2], "size", 0, INT64_MAX, &size) != TCL_OK) {
        return TCL_ERROR;
    }
    if (objc > 3 && GetBounded(interp, objv[3], "maxconsumers", 0, UINT32_MAX, &consumers) != TCL_OK) {
        return TCL_ERROR;
    }
    rc = ring_create(Tcl_GetString(objv[1]), (uint64_t)size, (uint32_t)consumers);
    /* As NSCLDAQ's (CRingBuffer::create): an existing ring that the host's ring master
       does not list is adopted (registered), and the create succeeds. */
    if (rc == -EEXIST && ring_adopt(Tcl_GetString(objv[1])) == 0) {
        rc = 0;
    }
    if (rc < 0) {
        return DfPosixError(interp, rc, "Failed to create ring buffer");
    }
    Tcl_SetObjResult(interp, objv[1]);
    return TCL_OK;
}

/* ringbuffer format name ?maxconsumers? */
static int FormatCmd(void *cd, Tcl_Interp *interp, int objc, Tcl_Obj *const objv[])
{
    Tcl_WideInt consumers = 0;
    int rc;
    (void)cd;
    if (objc < 2 || objc > 3) {
        Tcl_WrongNumArgs(interp, 1, objv, "name ?maxconsumers?");
        return TCL_ERROR;
    }
    if (objc > 2 && GetBounded(interp, objv[2], "maxconsumers", 0, UINT32_MAX, &consumers) != TCL_OK) {
        return TCL_ERROR;
    }
    rc = ring_format(Tcl_GetString(objv[1]), (uint32_t)consumers);
    if (rc < 0) {
        return DfPosixError(interp, rc, "Failed to format ring buffer");
    }
    Tcl_SetObjResult(interp, objv[1]);
    return TCL_OK;
}

/* ringbuffer disconnect producer name */
static int DisconnectProducerCmd(void *cd, Tcl_Interp *interp, int objc, Tcl_Obj *const objv[])
{
    int rc;
    (void)cd;
    if (objc != 2) {
        Tcl_WrongNumArgs(interp, 1, objv, "name");
        return TCL_ERROR;
    }
    rc = ring_disconnect_producer(Tcl_GetString(objv[1]));
    if (rc < 0) {
        return DfPosixError(interp, rc, "Failed to disconnect producer");
    }
    Tcl_ResetResult(interp);
    return TCL_OK;
}

/* ringbuffer disconnect consumer name index */
static int DisconnectConsumerCmd(void *cd, Tcl_Interp *interp, int objc, Tcl_Obj *const objv[])
{
    Tcl_WideInt index;
    int rc;
    (void)cd;
    if (objc != 3) {
        Tcl_WrongNumArgs(interp, 1, objv, "name index");
        return TCL_ERROR;
    }
    if (GetBounded(interp, objv[2], "consumer index", 0, UINT32_MAX, &index) != TCL_OK) {
        return TCL_ERROR;
    }
    rc = ring_disconnect_consumer(Tcl_GetString(objv[1]), (uint32_t)index);
    if (rc < 0) {
        return DfPosixError(interp, rc, "Failed to disconnect consumer");
    }
    Tcl_ResetResult(interp);
    return TCL_OK;
}

/* ringbuffer usage ?name? */
static int UsageCmd(void *cd, Tcl_Interp *interp, int objc, Tcl_Obj *const objv[])
{
    Tcl_Obj *result;
    char **names = NULL;
    size_t count = 0;
    int rc;
    (void)cd;
    if (objc > 2) {
        Tcl_WrongNumArgs(interp, 1, objv, "?name?");
        return TCL_ERROR;
    }
    if (objc == 2) {
        if (UsageObj(interp, Tcl_GetString(objv[1]), "Failed to get ring buffer usage", &result) < 0) {
            return TCL_ERROR;
        }
        Tcl_SetObjResult(interp, result);
        return TCL_OK;
    }
    rc = ring_list(&names, &count);
    if (rc < 0) {
        return DfPosixError(interp, rc, "Failed to list ring buffers");
    }
    result = Tcl_NewListObj(0, NULL);
    for (size_t i = 0; i < count; i++) {
        Tcl_Obj *usage, *pair[2];
        Tcl_Obj *what = Tcl_ObjPrintf("Failed to get usage of ring buffer %s", names[i]);
        Tcl_IncrRefCount(what);
        rc = UsageObj(interp, names[i], Tcl_GetString(what), &usage);
        Tcl_DecrRefCount(what);
        /* A ring removed since the listing, or one we may not read, is not in use by us:
         * skip it rather than fail the whole table. Anything else (a corrupt ring) is
         * reported with its name. */
        if (rc == -ENOENT || rc == -EACCES || rc == -EPERM) {
            Tcl_ResetResult(interp);
            continue;
        }
        if (rc < 0) {
            Tcl_DecrRefCount(result);
            ring_list_free(names, count);
            return TCL_ERROR;
        }
        pair[0] = Tcl_NewStringObj(names[i], -1);
        pair[1] = usage;
        Tcl_ListObjAppendElement(NULL, result, Tcl_NewListObj(2, pair));
    }
    ring_list_free(names, count);
    Tcl_SetObjResult(interp, result);
    return TCL_OK;
}

/* ringbuffer list */
static int ListCmd(void *cd, Tcl_Interp *interp, int objc, Tcl_Obj *const objv[])
{
    char **names = NULL;
    size_t count = 0;
    Tcl_Obj *result;
    int rc;
    (void)cd;
    if (objc != 1) {
        Tcl_WrongNumArgs(interp, 1, objv, NULL);
        return TCL_ERROR;
    }
    rc = ring_list(&names, &count);
    if (rc < 0) {
        return DfPosixError(interp, rc, "Failed to list ring buffers");
    }
    result = Tcl_NewListObj(0, NULL);
    for (size_t i = 0; i < count; i++) {
        Tcl_ListObjAppendElement(NULL, result, Tcl_NewStringObj(names[i], -1));
    }
    ring_list_free(names, count);
    Tcl_SetObjResult(interp, result);
    return TCL_OK;
}

/* ringbuffer remove name */
static int RemoveCmd(void *cd, Tcl_Interp *interp, int objc, Tcl_Obj *const objv[])
{
    int rc;
    (void)cd;
    if (objc != 2) {
        Tcl_WrongNumArgs(interp, 1, objv, "name");
        return TCL_ERROR;
    }
    rc = ring_remove(Tcl_GetString(objv[1]));
    if (rc == -ENOENT) {
        /* NSCLDAQ's own words, which scripts compare with. */
        Tcl_Obj *message = Tcl_ObjPrintf("Ring buffer %s does not exist", Tcl_GetString(objv[1]));
        return DfArgError(interp, ENOENT, message);
    }
    if (rc < 0) {
        return DfPosixError(interp, rc, "Failed to remove ring buffer");
    }
    Tcl_SetObjResult(interp, objv[1]);
    return TCL_OK;
}

/* ringbuffer exists name: 1 if a ring of that name exists, else 0. */
static int ExistsCmd(void *cd, Tcl_Interp *interp, int objc, Tcl_Obj *const objv[])
{
    int rc;
    (void)cd;
    if (objc != 2) {
        Tcl_WrongNumArgs(interp, 1, objv, "name");
        return TCL_ERROR;
    }
    rc = ring_exists(Tcl_GetString(objv[1]));
    if (rc < 0) {
        return DfPosixError(interp, rc, "Failed to look for ring buffer");
    }
    Tcl_SetObjResult(interp, Tcl_NewBooleanObj(rc));
    return TCL_OK;
}

static int64_t MonotonicUs(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000000 + now.tv_nsec / 1000;
}

/* TCL_ERROR (with the interpreter's message) once the script running wait is cancelled
 * (interp cancel, thread::cancel) or its time limit has passed. A cancel from another
 * thread, like a signal caught by a Tcl extension, arrives as an async handler that Tcl
 * runs only between commands: run them here. Tcl looks at the clock for a time limit
 * only on every granularity-th check and counts those checks per command, so a check
 * from one long command must ask for a full one. */
static int Interrupted(Tcl_Interp *interp)
{
    int granularity, rc;
    if (Tcl_AsyncReady() && Tcl_AsyncInvoke(interp, TCL_OK) != TCL_OK) {
        return TCL_ERROR;
    }
    if (Tcl_Canceled(interp, TCL_LEAVE_ERR_MSG) != TCL_OK) {
        return TCL_ERROR;
    }
    if (!Tcl_LimitTypeEnabled(interp, TCL_LIMIT_TIME)) {
        return TCL_OK;
    }
    granularity = Tcl_LimitGetGranularity(interp, TCL_LIMIT_TIME);
    Tcl_LimitSetGranularity(interp, TCL_LIMIT_TIME, 1);
    rc = Tcl_LimitCheck(interp);
    Tcl_LimitSetGranularity(interp, TCL_LIMIT_TIME, granularity);
    return rc;
}

/* ringbuffer wait name ?timeout-ms?: 1 once the ring exists, 0 if timeout-ms (default -1,
 * forever; 0 looks once) passes first. Polls: a ring appears as a file in /dev/shm and
 * there is nothing to block on portably; the interval grows from 1 ms to 50 ms so a ring
 * made right away is seen at once and a long wait costs little. */
static int WaitCmd(void *cd, Tcl_Interp *interp, int objc, Tcl_Obj *const objv[])
{
    Tcl_WideInt timeout = -1;
    int64_t deadline;
    int step = 1;
    const char *name;
    (void)cd;
    if (objc < 2 || objc > 3) {
        Tcl_WrongNumArgs(interp, 1, objv, "name ?timeout-ms?");
        return TCL_ERROR;
    }
    if (objc == 3 && GetBounded(interp, objv[2], "timeout-ms", -1, INT32_MAX, &timeout) != TCL_OK) {
        return TCL_ERROR;
    }
    name = Tcl_GetString(objv[1]);
    deadline = MonotonicUs() + timeout * 1000;
    for (;;) {
        int rc = ring_exists(name);
        if (rc < 0) {
            return DfPosixError(interp, rc, "Failed to look for ring buffer");
        }
        if (rc == 1) {
            Tcl_SetObjResult(interp, Tcl_NewBooleanObj(1));
            return TCL_OK;
        }
        if (timeout >= 0) {
            int64_t left = deadline - MonotonicUs();
            if (left <= 0) {
                Tcl_SetObjResult(interp, Tcl_NewBooleanObj(0));
                return TCL_OK;
            }
            /* Rounded up: never report a timeout before it has passed. */
            left = (left + 999) / 1000;
            Tcl_Sleep(left < step ? (int)left : step);
        } else {
            Tcl_Sleep(step);
        }
        step = step * 2 > 50 ? 50 : step * 2;
        if (Interrupted(interp) != TCL_OK) {
            return TCL_ERROR;
        }
    }
}

typedef struct {
    const char *sub;     /* subcommand name in the ensemble */
    const char *impl;    /* implementing command in ::ring */
    Tcl_ObjCmdProc *proc;
} Subcommand;

/* Fills an ensemble's mapping from `subs`; an empty proc means "already created". */
static int MakeEnsemble(Tcl_Interp *interp, Tcl_Namespace *ns, const char *name, const Subcommand *subs, int n)
{
    Tcl_Obj *map = Tcl_NewDictObj();
    Tcl_Command ens;
    for (int i = 0; i < n; i++) {
        if (subs[i].proc != NULL && Tcl_CreateObjCommand(interp, subs[i].impl, subs[i].proc, NULL, NULL) == NULL) {
            Tcl_DecrRefCount(map);
            return TCL_ERROR;
        }
        Tcl_DictObjPut(NULL, map, Tcl_NewStringObj(subs[i].sub, -1), Tcl_NewStringObj(subs[i].impl, -1));
    }
    ens = Tcl_CreateEnsemble(interp, name, ns, TCL_ENSEMBLE_PREFIX);
    if (ens == NULL) {
        Tcl_DecrRefCount(map);
        return TCL_ERROR;
    }
    return Tcl_SetEnsembleMappingDict(interp, ens, map);
}

/* Called by `load ... Ring`: creates the ::ringbuffer ensemble in this interpreter. */
DLLEXPORT int Ring_Init(Tcl_Interp *interp)
{
    static const Subcommand disconnect[] = {
        {"producer", "::ring::DisconnectProducer", DisconnectProducerCmd},
        {"consumer", "::ring::DisconnectConsumer", DisconnectConsumerCmd},
    };
    static const Subcommand top[] = {
        {"create", "::ring::Create", CreateCmd},
        {"format", "::ring::Format", FormatCmd},
        {"disconnect", "::ring::Disconnect", NULL},
        {"usage", "::ring::Usage", UsageCmd},
        {"list", "::ring::List", ListCmd},
        {"remove", "::ring::Remove", RemoveCmd},
        {"exists", "::ring::Exists", ExistsCmd},
        {"wait", "::ring::Wait", WaitCmd},
    };
    Tcl_Namespace *ns;

    if (Tcl_InitStubs(interp, "8.6", 0) == NULL) {
        return TCL_ERROR;
    }
    ns = Tcl_FindNamespace(interp, "::ring", NULL, 0);
    if (ns == NULL) {
        ns = Tcl_CreateNamespace(interp, "::ring", NULL, NULL);
        if (ns == NULL) {
            return TCL_ERROR;
        }
    }
    if (MakeEnsemble(interp, ns, "::ring::Disconnect", disconnect, 2) != TCL_OK ||
        MakeEnsemble(interp, ns, "::ringbuffer", top, (int)(sizeof top / sizeof top[0])) != TCL_OK) {
        return TCL_ERROR;
    }
    return Tcl_PkgProvideEx(interp, "ring", RING_VERSION, NULL);
}
