// tests/support/layering_bad/good/include/conch/net/detail/ok.hpp
// Allowed (must pass): a public detail header includes lower public detail headers.
#include <conch/chan/detail/core.hpp>
#include "conch/core/detail/task_frame.hpp"
