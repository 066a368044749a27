// tests/support/layering_bad/src_private/channels/bad.cpp
// Rule (b), deliberate: a folder outside src/ includes a private src/ header. Must be rejected.
#include "conch/chan/detail/chan_core.hpp"
#include "src/loop.hpp"
