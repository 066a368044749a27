// conch/chan/ops.hpp
// The core.async combinators, one include: transforms (map, filter, take...), pipe/merge/split,
// collections (onto_chan, to_chan, reduce, into), pipelines, and mult, pub, mix.
//
//   conch::chan<int> nums = conch::to_chan(std::vector{1, 2, 3, 4});
//   conch::chan<int> odd = conch::filter([](int x) { return x % 2 == 1; }, nums);
//   conch::chan<int> sq(8);
//   conch::pipeline(4, sq, [](int x) { return x * x; }, odd);   // 4 workers, order kept
//   int sum = co_await conch::reduce(std::plus<>(), 0, sq);      // 1 + 9 = 10
//
// Design note
// -----------
// Every combinator is a go block (conch::go) looping over ordinary channel
// operations: recv, send, select. There is no second synchronization
// mechanism; mult, pub and mix keep their configuration (taps, topics,
// inputs) under a mutex and nudge their go block through a channel when it
// changes. Runtime-sized selects (mult offering a value to every waiting tap
// at once, mix reading its live inputs) use detail::dynamic_select, a thin
// driver over the same select engine as conch::select.
//
// Rules shared by all combinators (core.async's, made explicit):
//  - Functions that start go blocks must be called on a runtime thread, like
//    go(). The go blocks run on the runtime's loop threads. The channels they
//    return are ordinary channels: usable from any thread, and a coroutine
//    parked on one resumes on the loop thread it parked on.
//  - When a source closes, the output closes (for pipe/pipeline/mult/pub
//    taps: if the `close` flag, true by default, says so). Values in flight
//    are delivered first.
//  - When an output is closed by its consumer, the combinator stops reading
//    its source (split: once both outputs are closed; mult/pub: that tap is
//    removed instead). The source is not closed.
//  - Output channels are unbuffered unless a `buffer` argument says otherwise.
//  - An exception thrown by a user function (map's f, filter's pred, a
//    pipeline transform, a topic function) goes to the runtime's error handler,
//    as for a go block, and that value produces no output; the combinator
//    goes on. reduce and into instead rethrow it to whoever awaits them.
//  - Values are moved through, never copied, except where fan-out needs
//    copies (mult, pub, unique's memory of the last value).
//
// Where conch deliberately differs from core.async's code (not its docs):
//  - untap/unsub/unmix take effect at once, even for a value the mult is
//    still offering (core.async keeps waiting on the untapped channel).
//  - take, merge, map, filter stop reading once their output is closed
//    (core.async's go loops keep taking and dropping). split drops values
//    for a closed output and stops when both are closed (core.async stops at
//    the first refused value and leaves the other output open forever).
//  - tap/sub after the source has closed closes the channel at once (if its
//    close flag says so) instead of leaving it open forever. A channel
//    subscribed to several topics of a pub is closed once all of them have
//    delivered their last value, not by whichever topic finishes first.
//  - mix: a soloed input is read even if paused, as core.async's docstring
//    says (its code honours pause in solo_mode mute); admix of an input
//    already in the mix keeps its flags (core.async resets them).
//  - A throwing user function skips one value instead of killing the go
//    block (core.async's pipeline ex-handler default, applied everywhere).
//  - Transducers are C++ callables: a pipeline transform returns a U, an
//    optional (filter), a range (mapcat) or a task (asynchronous work).
//
// Where each family lives:
//   conch/chan/transform.hpp    map, filter, remove, mapcat, take, partition, partition_by, unique
//   conch/chan/pipe.hpp         pipe, merge, split
//   conch/chan/collections.hpp  onto_chan, to_chan, reduce, into
//   conch/chan/pipeline.hpp     pipeline, pipeline_blocking, pipeline_async
//   conch/chan/mult.hpp, pub.hpp, mix.hpp
#pragma once

#include "conch/chan/collections.hpp"
#include "conch/chan/mix.hpp"
#include "conch/chan/mult.hpp"
#include "conch/chan/pipe.hpp"
#include "conch/chan/pipeline.hpp"
#include "conch/chan/pub.hpp"
#include "conch/chan/transform.hpp"
