// sockets/tls.hpp
// TLS sessions over stream connections: OpenSSL on memory BIOs, driven by two coroutines per socket.
//
// A TLS socket is a *session* (tls_conn) over a plain *transport* socket
// (stream_conn with raw framing): the transport's `in` brings ciphertext
// chunks, its `out` takes ciphertext; the session's own `in`/`out` carry the
// user's plaintext frames. See tls.cpp for the invariants.
#pragma once

#include <memory>
#include <string_view>

#include "absl/status/status.h"
#include "conch/chan/chan.hpp"
#include "conch/net/framing.hpp"
#include "conch/net/socket.hpp"

namespace conch::net::detail {

class stream_conn;
class tls_conn;

/// Loads the OpenSSL context of `o.tls` into `o.tls->context` (server: for
/// listen; client: for connect). `what` starts the error message
/// ("listen on 127.0.0.1:0"). No-op without o.tls or with a context already.
absl::Status load_tls(options& o, bool server, std::string_view what);

/// The options of the transport under a TLS socket: raw chunks, small
/// channels (backpressure is the session's), no TLS. `o` itself without o.tls.
options transport_options(const options& o);

/// Starts a TLS session over the started connection `c`, on the calling loop
/// (c's home). `host`: connect()'s address text (client name checks, SNI).
std::shared_ptr<tls_conn> start_tls(std::shared_ptr<stream_conn> c, const options& o, bool server,
                                    std::string_view host);
/// The socket handed to the user for connection `c`: c itself, or with
/// o.tls a server-side TLS session over it. On c's home loop.
socket accepted_socket(std::shared_ptr<stream_conn> c, const options& o);

/// Closed once the handshake has succeeded or failed.
chan<unit> tls_handshaken(const tls_conn& t);
/// After tls_handshaken closed: OK, or why the handshake failed.
absl::Status tls_handshake_status(const tls_conn& t);

// socket's methods for a TLS socket (any thread).
address tls_local(const tls_conn& t);
address tls_peer(const tls_conn& t);
absl::Status tls_status(const tls_conn& t);
chan<unit> tls_done(const tls_conn& t);
void tls_close(tls_conn& t);

}  // namespace conch::net::detail
