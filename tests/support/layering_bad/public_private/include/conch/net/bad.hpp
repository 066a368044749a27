// tests/support/layering_bad/public_private/include/conch/net/bad.hpp
// Rule (c), deliberate: a public header includes a private one. Must be rejected.
#include <conch/chan/chan.hpp>
#include "sockets/reactor.hpp"
