// tests/support/layering_bad/good/lua/ok.cpp
// Allowed (must pass): the top layer includes any public header.
#include <conch/net/detail/reactor.hpp>
#include "lua/bridge.hpp"
