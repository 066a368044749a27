// conch/core.hpp
// The runtime core: task<T>, runtime, run, sleep, status helpers.
#pragma once

#include "conch/core/check.hpp"
#include "conch/core/runtime.hpp"
#include "conch/core/status.hpp"
#include "conch/core/task.hpp"
