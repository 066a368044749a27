// conch/net/tls.hpp
// tls_options: TLS (OpenSSL) for stream sockets, set as options::tls for listen() and connect().
//
//   conch::net::options o{.frame = conch::net::framing::lines()};
//   o.tls = conch::net::tls_options{.cert_file = "server.pem", .key_file = "server.key"};
//   auto srv = conch::net::listen("127.0.0.1:8443", o);        // every accepted socket speaks TLS
//
//   conch::net::options c;
//   c.tls = conch::net::tls_options{.ca_file = "ca.pem", .server_name = "example.test"};
//   auto s = co_await conch::net::connect("127.0.0.1:8443", c); // returns once the handshake is done
//
// With TLS a socket's `in` and `out` carry plaintext and framing applies to
// the plaintext; the ciphertext travels over the same io_uring socket (OpenSSL
// runs on memory BIOs on the socket's loop thread: nothing blocks).
// connect() returns only after the handshake: a failed handshake (an
// untrusted or wrong certificate, a peer that speaks no TLS) is its error
// status, kUnavailable, naming the peer and OpenSSL's reason. An accepted
// socket is handed out at once and handshakes as it is read: a failed
// handshake ends it (`in` closes) with that status(). Closing `out` sends
// what is queued, then TLS close_notify, then half-closes the socket.
//
// STARTTLS (a protocol that begins in plain text, as NATS does): connect or
// accept a plain raw-framed socket, speak the plain part, then
// `co_await conch::net::start_tls(plain, o)` (socket.hpp; tls_role::server
// for the accepting side) returns the TLS socket once the handshake is done.
#pragma once

#include <memory>
#include <string>

namespace conch::net {

namespace detail {
class tls_context;
}  // namespace detail

/// TLS settings of one side. Files are PEM; they are read by listen() and
/// connect() (a file that cannot be read, or a key that does not match its
/// certificate, is their error, kInvalidArgument naming the file).
struct tls_options {
  /// The certificate (chain) presented to the peer: required to listen; for
  /// a client, an optional client certificate.
  std::string cert_file;
  /// The private key of cert_file (required with it).
  std::string key_file;
  /// CA certificates that verify the peer. Client: empty means the system's
  /// default CAs. Server: when set (and verify is true), every client must
  /// present a certificate signed by one of them.
  std::string ca_file;
  /// Client: verify the server's certificate chain and its name (default).
  /// false accepts any certificate (testing only). Server: see ca_file.
  bool verify = true;
  /// Client: the name sent as SNI and checked against the certificate. Empty:
  /// the host of the address passed to connect() (an IP address is checked
  /// against the certificate's IP entries and sends no SNI; a Unix address
  /// checks the chain only).
  std::string server_name;

  /// Internal: the OpenSSL context listen()/connect() load from the fields
  /// above (shared by a server's connections). Leave it empty.
  std::shared_ptr<const detail::tls_context> context;
};

}  // namespace conch::net
