// tests/support/layering_bad/upward/src/bad.cpp
// Rule (a), deliberate: conch::core includes a channels header. check_layering.sh must reject this tree.
#include "conch/chan/chan.hpp"
