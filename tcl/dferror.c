/* See dferror.h. */
#include <errno.h>
#include <string.h>

#include "daqflow.h"
#include "dferror.h"

static void SetPosixCode(Tcl_Interp *interp, int errnum)
{
    /* Tcl_ErrnoId reads errno; it is thread-local, so setting it here is safe. */
    errno = errnum;
    Tcl_SetErrorCode(interp, "POSIX", Tcl_ErrnoId(), Tcl_ErrnoMsg(errnum), (char *)NULL);
}

int DfPosixError(Tcl_Interp *interp, int rc, const char *what)
{
    int errnum = rc < 0 ? -rc : EIO;
    /* The library's message is per thread and names the object; errno's text is only a
     * fallback for a call that left none. */
    const char *detail = daqflow_last_error();
    if (detail == NULL || detail[0] == '\0') {
        detail = Tcl_ErrnoMsg(errnum);
    }
    Tcl_SetObjResult(interp, what != NULL ? Tcl_ObjPrintf("%s: %s", what, detail) : Tcl_NewStringObj(detail, -1));
    SetPosixCode(interp, errnum);
    return TCL_ERROR;
}

int DfArgError(Tcl_Interp *interp, int errnum, Tcl_Obj *message)
{
    Tcl_SetObjResult(interp, message);
    SetPosixCode(interp, errnum);
    return TCL_ERROR;
}
