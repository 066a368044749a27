// bench/sock_asio_server.cpp
// Socket echo peer for bench/run_sockets.sh: Boost.Asio with C++20 coroutines, one coroutine per connection.
//
//   conch_bench_sock_asio_epoll <tcp:PORT|unix:PATH>    Asio's default Linux reactor (epoll)
//   conch_bench_sock_asio_uring <tcp:PORT|unix:PATH>    built with BOOST_ASIO_HAS_IO_URING and
//                                                       BOOST_ASIO_DISABLE_EPOLL: io_uring for all I/O
//
// Prints "ready" once listening. What an Asio user writes: one io_context on
// one thread (concurrency hint 1), an accept loop, and per connection a
// coroutine that reads up to 64 KiB into its own buffer and async_writes it
// back (the write completing is the backpressure). It checks nothing: the
// load generator compares every echoed byte. Errors (EOF included) end the
// connection. Same source for both backends (bench/sockets.cmake).
#include <boost/asio.hpp>

#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <type_traits>
#include <unistd.h>

namespace asio = boost::asio;
namespace {

constexpr auto kToken = asio::as_tuple(asio::use_awaitable);

template <class Socket>
asio::awaitable<void> echo(Socket s) {
  // On the heap, not in the coroutine frame: the frame stays small and the
  // buffer is allocated once per connection, as the C servers' per-connection state is.
  auto buf = std::make_unique<char[]>(64 << 10);
  for (;;) {
    auto [rec, n] = co_await s.async_read_some(asio::buffer(buf.get(), 64 << 10), kToken);
    if (rec) co_return;
    auto [wec, written] = co_await asio::async_write(s, asio::buffer(buf.get(), n), kToken);
    if (wec) co_return;
  }
}

template <class Acceptor>
asio::awaitable<void> accept_loop(Acceptor acceptor) {
  for (;;) {
    auto [ec, s] = co_await acceptor.async_accept(kToken);
    if (ec) {
      // EMFILE and the like: say so and keep accepting (the generator's
      // connect then times out and fails the cell visibly).
      std::fprintf(stderr, "conch_bench_sock_asio: accept: %s\n", ec.message().c_str());
      continue;
    }
    if constexpr (std::is_same_v<typename Acceptor::protocol_type, asio::ip::tcp>) {
      s.set_option(asio::ip::tcp::no_delay(true));  // as the C servers set it
    }
    asio::co_spawn(acceptor.get_executor(), echo(std::move(s)), asio::detached);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <tcp:PORT|unix:PATH>\n", argv[0]);
    return 2;
  }
  const std::string spec = argv[1];
  try {
    asio::io_context ctx(1);
    if (spec.rfind("tcp:", 0) == 0) {
      const auto port = static_cast<unsigned short>(std::stoi(spec.substr(4)));
      asio::ip::tcp::acceptor acceptor(ctx, {asio::ip::make_address("127.0.0.1"), port});
      asio::co_spawn(ctx, accept_loop(std::move(acceptor)), asio::detached);
    } else if (spec.rfind("unix:", 0) == 0) {
      const std::string path = spec.substr(5);
      ::unlink(path.c_str());  // a stale socket file from an earlier run
      asio::local::stream_protocol::acceptor acceptor(ctx, asio::local::stream_protocol::endpoint(path));
      asio::co_spawn(ctx, accept_loop(std::move(acceptor)), asio::detached);
    } else {
      std::fprintf(stderr, "%s: bad address '%s': want tcp:PORT or unix:PATH\n", argv[0], spec.c_str());
      return 2;
    }
    std::printf("ready\n");
    std::fflush(stdout);
    ctx.run();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", argv[0], e.what());
    return 1;
  }
  return 0;
}
