/*
 * Force-included before the Tcl stubs' sources in the fuzz build: ckalloc and friends
 * become malloc calls, so AddressSanitizer sees each block the stubs allocate (Tcl's
 * threaded allocator carves them out of larger pools, where an overflow goes unseen).
 * The size keeps the unsigned int of Tcl 8.6's Tcl_Alloc: a size that wraps there wraps
 * here too. Like Tcl_Alloc, ckalloc never returns NULL (the harness aborts instead).
 */
#ifndef DAQFLOW_FUZZ_ALLOC_H
#define DAQFLOW_FUZZ_ALLOC_H

#include <tcl.h>

char *DfFuzzAlloc(unsigned int size, int attempt);
char *DfFuzzRealloc(char *block, unsigned int size, int attempt);
void DfFuzzFree(char *block);

#undef ckalloc
#undef ckfree
#undef ckrealloc
#undef attemptckalloc
#undef attemptckrealloc
#define ckalloc(x) DfFuzzAlloc((unsigned int)(x), 0)
#define attemptckalloc(x) DfFuzzAlloc((unsigned int)(x), 1)
#define ckrealloc(x, y) DfFuzzRealloc((char *)(x), (unsigned int)(y), 0)
#define attemptckrealloc(x, y) DfFuzzRealloc((char *)(x), (unsigned int)(y), 1)
#define ckfree(x) DfFuzzFree((char *)(x))

#endif
