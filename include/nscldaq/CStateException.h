// Another name NSCLDAQ code uses for StateException.h.
#include "StateException.h"
