// Another name NSCLDAQ code uses for ErrnoException.h.
#include "ErrnoException.h"
