// CHECK for the NSCLDAQ compatibility test programs: a false condition is reported with
// its place and counted in `failures` (the program's exit status), and the program goes
// on, so one run shows every failure. Included once by each program's main unit.
#ifndef DAQFLOW_C_TESTS_NSCLDAQ_CHECK_H
#define DAQFLOW_C_TESTS_NSCLDAQ_CHECK_H

#include <stdio.h>

namespace {

int failures = 0;

#define CHECK(cond)                                                                      \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond);     \
            failures++;                                                                  \
        }                                                                                \
    } while (0)

}  // namespace

#endif
