// tests/support/layering_bad/good/sockets/ok.cpp
// Allowed (must pass): the door and detail headers of the layers at and below sockets.
#include "src/io.hpp"
#include "sockets/frame_codec.hpp"
#include <conch/core/detail/task_frame.hpp>
#include <conch/chan/detail/core.hpp>
#include <conch/net/detail/reactor.hpp>
