/* CHECK for the C test programs: a false condition is reported with its place and the
 * library's last error, and counted in `failures` (the program's exit status); the
 * program goes on, so one run shows every failure. Included once by each program. */
#ifndef DAQFLOW_C_TESTS_CHECK_H
#define DAQFLOW_C_TESTS_CHECK_H

#include <daqflow.h>
#include <stdio.h>

static int failures;

#define CHECK(cond)                                                                          \
    do {                                                                                     \
        if (!(cond)) {                                                                       \
            fprintf(stderr, "%s:%d: CHECK(%s) failed; last error: %s\n", __FILE__, __LINE__, \
                    #cond, daqflow_last_error());                                            \
            failures++;                                                                      \
        }                                                                                    \
    } while (0)

#endif
