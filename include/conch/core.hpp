// conch/core.hpp
// The runtime core: task<T>, runtime, run, sleep, placement, status helpers.
#pragma once

#include "conch/core/check.hpp"
#include "conch/core/placement.hpp"
#include "conch/core/runtime.hpp"
#include "conch/core/status.hpp"
#include "conch/core/task.hpp"
