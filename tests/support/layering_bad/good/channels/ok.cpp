// tests/support/layering_bad/good/channels/ok.cpp
// Allowed (must pass): core detail headers from channels.
#include <conch/core/detail/task_frame.hpp>
#include <conch/chan/detail/core.hpp>
