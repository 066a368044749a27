// conch/chan.hpp
// The channels layer: chan<T>, buffers, select, go/thread/timeout, and the
// core.async combinators (pipe, map, merge, mult, pub, mix, pipeline, ...).
#pragma once

#include "conch/chan/buffer.hpp"
#include "conch/chan/chan.hpp"
#include "conch/chan/go.hpp"
#include "conch/chan/ops.hpp"
#include "conch/chan/select.hpp"
