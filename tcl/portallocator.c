/*
 * The Tcl `portAllocator` package: proxy objects for the port manager, over libdaqflow's
 * portmgr_* client.
 *
 * Queries (listPorts, findServer*) use a connection of their own that is closed at once,
 * so a timeout on a query can never cost the ports an object holds. allocatePort keeps one
 * connection per object: the ports stay allocated as long as it is open. `destroy` (or
 * deleting the command or the interpreter) moves a connection that holds ports to a
 * process-wide list of C handles that are never closed, so the ports stay allocated until
 * the process exits, as the legacy package documents.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <tcl.h>

#include "daqflow.h"
#include "dferror.h"

#define PORTALLOCATOR_VERSION "1.0"
#define DEFAULT_HOST "localhost"
#define DEFAULT_PORT 30000

/* Connections that outlived their objects because they hold ports (see above). They are
 * C handles, not Tcl objects, so any thread's interpreter may add to the list. */
TCL_DECLARE_MUTEX(keptLock)
static portmgr **kept;
static size_t keptCount, keptCapacity;

static void KeepOpen(portmgr *pm)
{
    Tcl_MutexLock(&keptLock);
    if (keptCount == keptCapacity) {
        keptCapacity = keptCapacity ? 2 * keptCapacity : 8;
        kept = (portmgr **)ckrealloc(kept, keptCapacity * sizeof *kept);
    }
    kept[keptCount++] = pm;
    Tcl_MutexUnlock(&keptLock);
}

/* Per interpreter: the counter behind %AUTO% names. */
typedef struct {
    unsigned long autoCount;
} ClassData;

typedef struct {
    Tcl_Command token;
    char *hostname;
    int port;        /* 0: whatever the port file says when connecting */
    portmgr *holder; /* the connection allocatePort uses; NULL until the first one */
    int held;        /* ports allocated through holder */
    int deleted;     /* the command is gone; the struct lives on while a method runs */
} Allocator;

static void SetHostname(Allocator *a, const char *host)
{
    size_t n = strlen(host) + 1;
    char *copy = ckalloc(n);
    memcpy(copy, host, n);
    if (a->hostname != NULL) {
        ckfree(a->hostname);
    }
    a->hostname = copy;
}

/* The holder is done with: keep it open if it holds ports, else close it. */
static void ReleaseHolder(Allocator *a)
{
    if (a->holder != NULL) {
        if (a->held > 0) {
            KeepOpen(a->holder);
        } else {
            portmgr_close(a->holder);
        }
    }
    a->holder = NULL;
    a->held = 0;
}

/* The port a connection with port 0 goes to (the library reads the daemon's port file). */
static int EffectivePort(Tcl_Interp *interp, const Allocator *a, int *port)
{
    int rc;
    if (a->port > 0) {
        *port = a->port;
        return TCL_OK;
    }
    rc = portmgr_default_port();
    if (rc < 0) {
        return DfPosixError(interp, rc, NULL);
    }
    *port = rc;
    return TCL_OK;
}

static int Connect(Tcl_Interp *interp, const Allocator *a, portmgr **pm)
{
    int rc = portmgr_open(a->hostname, a->port, pm);
    if (rc < 0) {
        return DfPosixError(interp, rc, NULL);
    }
    return TCL_OK;
}

/* ---- options ---------------------------------------------------------------------- */

static const char *const optionNames[] = {"-hostname", "-port", NULL};
enum { OPT_HOSTNAME, OPT_PORT };

static int OptionValue(Tcl_Interp *interp, const Allocator *a, int which, Tcl_Obj **out)
{
    int port = 0;
    if (which == OPT_HOSTNAME) {
        *out = Tcl_NewStringObj(a->hostname, -1);
        return TCL_OK;
    }
    if (EffectivePort(interp, a, &port) != TCL_OK) {
        return TCL_ERROR;
    }
    *out = Tcl_NewIntObj(port);
    return TCL_OK;
}

/* As Tk and snit describe an option: {-name dbName dbClass default current}. */
static int OptionDescription(Tcl_Interp *interp, const Allocator *a, int which, Tcl_Obj **out)
{
    static const char *const db[][3] = {{"hostname", "Hostname", DEFAULT_HOST}, {"port", "Port", ""}};
    Tcl_Obj *fields[5];
    if (OptionValue(interp, a, which, &fields[4]) != TCL_OK) {
        return TCL_ERROR;
    }
    fields[0] = Tcl_NewStringObj(optionNames[which], -1);
    fields[1] = Tcl_NewStringObj(db[which][0], -1);
    fields[2] = Tcl_NewStringObj(db[which][1], -1);
    fields[3] = which == OPT_PORT ? Tcl_NewIntObj(DEFAULT_PORT) : Tcl_NewStringObj(db[which][2], -1);
    *out = Tcl_NewListObj(5, fields);
    return TCL_OK;
}

/* Applies -option value pairs (all checked before any is applied). */
static int Configure(Tcl_Interp *interp, Allocator *a, int objc, Tcl_Obj *const objv[])
{
    const char *host = NULL;
    int port = -1;
    if (objc % 2 != 0) {
        return DfArgError(interp, EINVAL,
                          Tcl_ObjPrintf("value for \"%s\" missing", Tcl_GetString(objv[objc - 1])));
    }
    for (int i = 0; i < objc; i += 2) {
        int which;
        if (Tcl_GetIndexFromObj(interp, objv[i], optionNames, "option", 0, &which) != TCL_OK) {
            return TCL_ERROR;
        }
        if (which == OPT_HOSTNAME) {
            host = Tcl_GetString(objv[i + 1]);
            if (host[0] == '\0') {
                return DfArgError(interp, EINVAL, Tcl_NewStringObj("-hostname must not be empty", -1));
            }
        } else if (Tcl_GetIntFromObj(interp, objv[i + 1], &port) != TCL_OK) {
            return TCL_ERROR;
        } else if (port < 1 || port > 65535) {
            return DfArgError(interp, EINVAL,
                              Tcl_ObjPrintf("-port %s is not a TCP port (1-65535)", Tcl_GetString(objv[i + 1])));
        }
    }
    if ((host != NULL && strcmp(host, a->hostname) != 0) || (port > 0 && port != a->port)) {
        /* Another server from now on; ports held at the old one stay held. */
        ReleaseHolder(a);
    }
    if (host != NULL) {
        SetHostname(a, host);
    }
    if (port > 0) {
        a->port = port;
    }
    return TCL_OK;
}

/* ---- methods ---------------------------------------------------------------------- */

static int CgetMethod(Tcl_Interp *interp, Allocator *a, int objc, Tcl_Obj *const objv[])
{
    int which;
    Tcl_Obj *value;
    if (objc != 3) {
        Tcl_WrongNumArgs(interp, 2, objv, "option");
        return TCL_ERROR;
    }
    if (Tcl_GetIndexFromObj(interp, objv[2], optionNames, "option", 0, &which) != TCL_OK ||
        OptionValue(interp, a, which, &value) != TCL_OK) {
        return TCL_ERROR;
    }
    Tcl_SetObjResult(interp, value);
    return TCL_OK;
}

static int ConfigureMethod(Tcl_Interp *interp, Allocator *a, int objc, Tcl_Obj *const objv[])
{
    Tcl_Obj *result;
    int which;
    if (objc == 2) {
        result = Tcl_NewListObj(0, NULL);
        for (which = 0; optionNames[which] != NULL; which++) {
            Tcl_Obj *description;
            if (OptionDescription(interp, a, which, &description) != TCL_OK) {
                Tcl_DecrRefCount(result);
                return TCL_ERROR;
            }
            Tcl_ListObjAppendElement(NULL, result, description);
        }
        Tcl_SetObjResult(interp, result);
        return TCL_OK;
    }
    if (objc == 3) {
        if (Tcl_GetIndexFromObj(interp, objv[2], optionNames, "option", 0, &which) != TCL_OK ||
            OptionDescription(interp, a, which, &result) != TCL_OK) {
            return TCL_ERROR;
        }
        Tcl_SetObjResult(interp, result);
        return TCL_OK;
    }
    if (Configure(interp, a, objc - 2, objv + 2) != TCL_OK) {
        return TCL_ERROR;
    }
    Tcl_ResetResult(interp);
    return TCL_OK;
}

/* Every allocation on the server, over a connection of its own. */
static int ListAllocations(Tcl_Interp *interp, const Allocator *a, portmgr_allocation **list, size_t *count)
{
    portmgr *pm;
    int rc;
    if (Connect(interp, a, &pm) != TCL_OK) {
        return TCL_ERROR;
    }
    rc = portmgr_list(pm, list, count);
    if (rc < 0) {
        DfPosixError(interp, rc, NULL);
    }
    portmgr_close(pm);
    return rc < 0 ? TCL_ERROR : TCL_OK;
}

static int ListPortsMethod(Tcl_Interp *interp, Allocator *a, int objc, Tcl_Obj *const objv[])
{
    portmgr_allocation *list = NULL;
    size_t count = 0;
    Tcl_Obj *result;
    if (objc != 2) {
        Tcl_WrongNumArgs(interp, 2, objv, NULL);
        return TCL_ERROR;
    }
    if (ListAllocations(interp, a, &list, &count) != TCL_OK) {
        return TCL_ERROR;
    }
    result = Tcl_NewListObj(0, NULL);
    for (size_t i = 0; i < count; i++) {
        Tcl_Obj *fields[3] = {Tcl_NewIntObj(list[i].port), Tcl_NewStringObj(list[i].application, -1),
                              Tcl_NewStringObj(list[i].user, -1)};
        Tcl_ListObjAppendElement(NULL, result, Tcl_NewListObj(3, fields));
    }
    portmgr_list_free(list, count);
    Tcl_SetObjResult(interp, result);
    return TCL_OK;
}

static int FindServerMethod(Tcl_Interp *interp, Allocator *a, int objc, Tcl_Obj *const objv[])
{
    portmgr *pm;
    int rc, port;
    if (objc < 3 || objc > 4) {
        Tcl_WrongNumArgs(interp, 2, objv, "service ?user?");
        return TCL_ERROR;
    }
    if (Connect(interp, a, &pm) != TCL_OK) {
        return TCL_ERROR;
    }
    rc = portmgr_find_server(pm, Tcl_GetString(objv[2]), objc == 4 ? Tcl_GetString(objv[3]) : NULL, &port);
    portmgr_close(pm);
    if (rc == -ENOENT) {
        Tcl_ResetResult(interp);
        return TCL_OK;
    }
    if (rc < 0) {
        return DfPosixError(interp, rc, "cannot find a server");
    }
    Tcl_SetObjResult(interp, Tcl_NewIntObj(port));
    return TCL_OK;
}

/* {{user port} ...} for every allocation of service, whoever runs it. */
static int FindServerAllUsersMethod(Tcl_Interp *interp, Allocator *a, int objc, Tcl_Obj *const objv[])
{
    portmgr_allocation *list = NULL;
    size_t count = 0;
    Tcl_Obj *result;
    const char *service;
    if (objc != 3) {
        Tcl_WrongNumArgs(interp, 2, objv, "service");
        return TCL_ERROR;
    }
    if (ListAllocations(interp, a, &list, &count) != TCL_OK) {
        return TCL_ERROR;
    }
    service = Tcl_GetString(objv[2]);
    result = Tcl_NewListObj(0, NULL);
    for (size_t i = 0; i < count; i++) {
        if (strcmp(list[i].application, service) == 0) {
            Tcl_Obj *pair[2] = {Tcl_NewStringObj(list[i].user, -1), Tcl_NewIntObj(list[i].port)};
            Tcl_ListObjAppendElement(NULL, result, Tcl_NewListObj(2, pair));
        }
    }
    portmgr_list_free(list, count);
    Tcl_SetObjResult(interp, result);
    return TCL_OK;
}

/* The application name allocatePort uses when given none: the tail of the running
 * script's name ([info script], else $argv0, else the executable). Returns a new object
 * with a reference count of 0. */
static Tcl_Obj *DefaultApplication(Tcl_Interp *interp)
{
    Tcl_Obj *saved = Tcl_GetObjResult(interp), *name = NULL, *tail;
    Tcl_IncrRefCount(saved);
    if (Tcl_EvalEx(interp, "::info script", -1, TCL_EVAL_GLOBAL) == TCL_OK) {
        name = Tcl_GetObjResult(interp);
    }
    if (name == NULL || Tcl_GetCharLength(name) == 0) {
        name = Tcl_GetVar2Ex(interp, "argv0", NULL, TCL_GLOBAL_ONLY);
    }
    if (name == NULL || Tcl_GetCharLength(name) == 0) {
        const char *exe = Tcl_GetNameOfExecutable();
        name = Tcl_NewStringObj(exe != NULL && exe[0] != '\0' ? exe : "tclsh", -1);
    }
    Tcl_IncrRefCount(name);
    tail = Tcl_FSSplitPath(name, NULL);
    Tcl_IncrRefCount(tail);
    Tcl_DecrRefCount(name);
    {
        int n = 0;
        Tcl_Obj *last = NULL;
        Tcl_ListObjLength(NULL, tail, &n);
        if (n > 0) {
            Tcl_ListObjIndex(NULL, tail, n - 1, &last);
        }
        name = last != NULL ? Tcl_DuplicateObj(last) : Tcl_NewStringObj("tclsh", -1);
    }
    Tcl_DecrRefCount(tail);
    Tcl_SetObjResult(interp, saved);
    Tcl_DecrRefCount(saved);
    return name;
}

/* A FAIL reply becomes an error whose message is the server's reply line, e.g.
 * `FAIL {no free ports}`, with errorCode {PORTALLOCATOR FAIL <ERRNO-ID> <reason>}. */
static int AllocationError(Tcl_Interp *interp, portmgr *pm, int rc)
{
    const char *reason = NULL;
    Tcl_Obj *line[2];
    if (portmgr_refusal(pm, &reason) != 1) {
        return DfPosixError(interp, rc, "cannot allocate a port");
    }
    line[0] = Tcl_NewStringObj("FAIL", -1);
    line[1] = Tcl_NewStringObj(reason, -1);
    errno = -rc;
    Tcl_SetErrorCode(interp, "PORTALLOCATOR", "FAIL", Tcl_ErrnoId(), Tcl_GetString(line[1]), (char *)NULL);
    Tcl_SetObjResult(interp, Tcl_NewListObj(2, line));
    return TCL_ERROR;
}

static int AllocatePortMethod(Tcl_Interp *interp, Allocator *a, int objc, Tcl_Obj *const objv[])
{
    Tcl_Obj *application;
    int rc, port, result;
    if (objc > 3) {
        Tcl_WrongNumArgs(interp, 2, objv, "?application?");
        return TCL_ERROR;
    }
    /* Looking up the script's name runs scripts (a trace on argv0, a redefined info)
     * that may destroy this object: find it before touching the connection. */
    application = objc == 3 ? objv[2] : DefaultApplication(interp);
    Tcl_IncrRefCount(application);
    if (a->deleted) {
        Tcl_DecrRefCount(application);
        Tcl_SetObjResult(interp, Tcl_ObjPrintf("portAllocator \"%s\" was destroyed while allocating a port",
                                               Tcl_GetString(objv[0])));
        Tcl_SetErrorCode(interp, "PORTALLOCATOR", "DESTROYED", Tcl_GetString(objv[0]), (char *)NULL);
        return TCL_ERROR;
    }
    if (a->holder == NULL && Connect(interp, a, &a->holder) != TCL_OK) {
        Tcl_DecrRefCount(application);
        return TCL_ERROR;
    }
    rc = portmgr_allocate(a->holder, Tcl_GetString(application), &port);
    if (rc >= 0) {
        Tcl_DecrRefCount(application);
        a->held++;
        Tcl_SetObjResult(interp, Tcl_NewIntObj(port));
        return TCL_OK;
    }
    result = AllocationError(interp, a->holder, rc);
    Tcl_DecrRefCount(application);
    /* A refusal may leave the connection open with its ports, or the server closed it
     * (NSCLDAQ's for a non-local peer, FRIB's portman after every refusal), or a failure
     * shut it down: then its ports went with it; drop it, the next call reconnects. */
    if (portmgr_usable(a->holder) != 1) {
        portmgr_close(a->holder);
        a->holder = NULL;
        a->held = 0;
    }
    return result;
}

/* ---- the object command ----------------------------------------------------------- */

static int ObjectMethod(Allocator *a, Tcl_Interp *interp, int objc, Tcl_Obj *const objv[]);

/* A method may run scripts that delete this command; the struct must outlive the call. */
static int ObjectCmd(void *cd, Tcl_Interp *interp, int objc, Tcl_Obj *const objv[])
{
    Allocator *a = (Allocator *)cd;
    int result;
    Tcl_Preserve(a);
    result = ObjectMethod(a, interp, objc, objv);
    Tcl_Release(a);
    return result;
}

static int ObjectMethod(Allocator *a, Tcl_Interp *interp, int objc, Tcl_Obj *const objv[])
{
    static const char *const methods[] = {"allocatePort", "cget", "configure", "destroy",
                                          "findServer", "findServerAllUsers", "listPorts", NULL};
    enum { M_ALLOCATE, M_CGET, M_CONFIGURE, M_DESTROY, M_FIND, M_FINDALL, M_LIST };
    int method;
    if (objc < 2) {
        Tcl_WrongNumArgs(interp, 1, objv, "method ?arg ...?");
        return TCL_ERROR;
    }
    if (Tcl_GetIndexFromObj(interp, objv[1], methods, "method", 0, &method) != TCL_OK) {
        return TCL_ERROR;
    }
    switch (method) {
    case M_ALLOCATE:
        return AllocatePortMethod(interp, a, objc, objv);
    case M_CGET:
        return CgetMethod(interp, a, objc, objv);
    case M_CONFIGURE:
        return ConfigureMethod(interp, a, objc, objv);
    case M_DESTROY:
        if (objc != 2) {
            Tcl_WrongNumArgs(interp, 2, objv, NULL);
            return TCL_ERROR;
        }
        Tcl_DeleteCommandFromToken(interp, a->token);
        Tcl_ResetResult(interp);
        return TCL_OK;
    case M_FIND:
        return FindServerMethod(interp, a, objc, objv);
    case M_FINDALL:
        return FindServerAllUsersMethod(interp, a, objc, objv);
    default:
        return ListPortsMethod(interp, a, objc, objv);
    }
}

static void FreeAllocator(char *cd)
{
    Allocator *a = (Allocator *)cd;
    ckfree(a->hostname);
    ckfree(a);
}

/* Runs however the command goes: destroy, rename to "", or the interpreter's deletion.
 * A method still running sees `deleted` and the struct until it returns. */
static void ObjectDeleted(void *cd)
{
    Allocator *a = (Allocator *)cd;
    a->deleted = 1;
    ReleaseHolder(a);
    Tcl_EventuallyFree(a, FreeAllocator);
}

/* name with %AUTO% replaced and qualified by the caller's namespace, as snit does. */
static Tcl_Obj *ObjectName(Tcl_Interp *interp, ClassData *cls, const char *name)
{
    Tcl_Obj *full = Tcl_NewObj();
    const char *at;
    if (strncmp(name, "::", 2) != 0) {
        Tcl_Namespace *ns = Tcl_GetCurrentNamespace(interp);
        Tcl_AppendStringsToObj(full, ns->fullName, strcmp(ns->fullName, "::") == 0 ? "" : "::", (char *)NULL);
    }
    while ((at = strstr(name, "%AUTO%")) != NULL) {
        Tcl_AppendToObj(full, name, (int)(at - name));
        Tcl_AppendPrintfToObj(full, "portAllocator%lu", ++cls->autoCount);
        name = at + 6;
    }
    Tcl_AppendToObj(full, name, -1);
    return full;
}

static int Create(Tcl_Interp *interp, ClassData *cls, Tcl_Obj *nameObj, int objc, Tcl_Obj *const objv[])
{
    Tcl_Obj *name = ObjectName(interp, cls, Tcl_GetString(nameObj));
    Allocator *a;
    Tcl_IncrRefCount(name);
    /* An %AUTO% name is ours to choose: take the next number until one is free. */
    while (strstr(Tcl_GetString(nameObj), "%AUTO%") != NULL &&
           Tcl_FindCommand(interp, Tcl_GetString(name), NULL, TCL_GLOBAL_ONLY) != NULL) {
        Tcl_DecrRefCount(name);
        name = ObjectName(interp, cls, Tcl_GetString(nameObj));
        Tcl_IncrRefCount(name);
    }
    if (Tcl_FindCommand(interp, Tcl_GetString(name), NULL, TCL_GLOBAL_ONLY) != NULL) {
        Tcl_SetObjResult(interp, Tcl_ObjPrintf("command \"%s\" already exists", Tcl_GetString(name)));
        Tcl_SetErrorCode(interp, "PORTALLOCATOR", "EXISTS", Tcl_GetString(name), (char *)NULL);
        Tcl_DecrRefCount(name);
        return TCL_ERROR;
    }
    a = (Allocator *)ckalloc(sizeof *a);
    memset(a, 0, sizeof *a);
    SetHostname(a, DEFAULT_HOST);
    if (Configure(interp, a, objc, objv) != TCL_OK) {
        ObjectDeleted(a);
        Tcl_DecrRefCount(name);
        return TCL_ERROR;
    }
    a->token = Tcl_CreateObjCommand(interp, Tcl_GetString(name), ObjectCmd, a, ObjectDeleted);
    Tcl_DecrRefCount(name);
    if (a->token == NULL) {
        ObjectDeleted(a);
        return TCL_ERROR;
    }
    Tcl_SetObjResult(interp, Tcl_NewObj());
    Tcl_GetCommandFullName(interp, a->token, Tcl_GetObjResult(interp));
    return TCL_OK;
}

/* ::portAllocator create name ?-hostname host? ?-port port?, or, as with snit types,
 * ::portAllocator name ?options?. */
static int ClassCmd(void *cd, Tcl_Interp *interp, int objc, Tcl_Obj *const objv[])
{
    ClassData *cls = (ClassData *)cd;
    if (objc >= 3 && strcmp(Tcl_GetString(objv[1]), "create") == 0) {
        return Create(interp, cls, objv[2], objc - 3, objv + 3);
    }
    if (objc < 2 || strcmp(Tcl_GetString(objv[1]), "create") == 0) {
        Tcl_WrongNumArgs(interp, 1, objv, "create name ?-hostname host? ?-port port?");
        return TCL_ERROR;
    }
    return Create(interp, cls, objv[1], objc - 2, objv + 2);
}

static void ClassDeleted(void *cd)
{
    ckfree(cd);
}

/* Called by `load ... Portallocator`: creates ::portAllocator in this interpreter. */
DLLEXPORT int Portallocator_Init(Tcl_Interp *interp)
{
    ClassData *cls;
    if (Tcl_InitStubs(interp, "8.6", 0) == NULL) {
        return TCL_ERROR;
    }
    cls = (ClassData *)ckalloc(sizeof *cls);
    cls->autoCount = 0;
    if (Tcl_CreateObjCommand(interp, "::portAllocator", ClassCmd, cls, ClassDeleted) == NULL) {
        ckfree(cls);
        return TCL_ERROR;
    }
    return Tcl_PkgProvideEx(interp, "portAllocator", PORTALLOCATOR_VERSION, NULL);
}
