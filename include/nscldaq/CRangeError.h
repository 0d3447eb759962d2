// Another name NSCLDAQ code uses for RangeError.h.
#include "RangeError.h"
