// tests/support/layering_bad/src_private_ring/sockets/bad.cpp
// Rule (b), deliberate: a ring layer includes a src/ header other than src/io.hpp. Must be rejected.
#include "src/io.hpp"
#include "src/loop.hpp"
