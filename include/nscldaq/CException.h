// Another name NSCLDAQ code uses for Exception.h.
#include "Exception.h"
