// tests/support/layering_bad/good/src/ok.cpp
// Allowed (must pass): src/ includes its own private headers and core's detail headers.
#include "src/loop.hpp"
#include "src/io.hpp"
#include <conch/core/detail/task_frame.hpp>
