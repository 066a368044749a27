// tests/support/layering_bad/io_door/lua/bad.cpp
// Rule (b), deliberate: src/io.hpp from a layer that does not drive the ring. Must be rejected.
#include "conch/net/socket.hpp"
#include "src/io.hpp"
