// conch/conch.hpp
// The whole C++ API of conch: #include <conch/conch.hpp>.
#pragma once

#include "conch/chan.hpp"
#include "conch/core.hpp"
#include "conch/net.hpp"
