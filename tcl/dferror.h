/*
 * Turning libdaqflow failures into Tcl errors with an errorCode, shared by the `ring`
 * and `portAllocator` packages.
 */
#ifndef DAQFLOW_TCL_DFERROR_H
#define DAQFLOW_TCL_DFERROR_H

#include <tcl.h>

/*
 * Sets the result to "<what>: <daqflow_last_error()>" (what NULL: the library's message
 * alone, when it already says what failed) and the errorCode to
 * {POSIX <ERRNO-ID> <errno message>}, the form Tcl's own file and socket commands use,
 * so scripts can `try ... trap {POSIX ENOENT}`. rc is the negated errno a daqflow call
 * returned. Returns TCL_ERROR.
 */
int DfPosixError(Tcl_Interp *interp, int rc, const char *what);

/* As DfPosixError for a failure detected here (a bad argument value): message as given. */
int DfArgError(Tcl_Interp *interp, int errnum, Tcl_Obj *message);

#endif
