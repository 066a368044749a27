// tests/support/layering_bad/good/tests/ok.cpp
// Allowed (must pass): tests include layers' private headers but not src/.
#include "sockets/frame_codec.hpp"
#include <conch/conch.hpp>
