// tests/support/layering_bad/src/bad.cpp
// A deliberate layering violation: check_layering.sh must reject this tree.
#include "conch/chan/chan.hpp"
