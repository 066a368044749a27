// tests/support/layering_bad/upward_detail/channels/bad.cpp
// Rule (a), deliberate: channels includes a sockets-layer detail header. Must be rejected.
#include <conch/core/detail/ok.hpp>
#include <conch/net/detail/reactor.hpp>
