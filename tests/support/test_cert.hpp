// tests/support/test_cert.hpp
// Throwaway TLS certificates for tests, made at test time by Debian's `openssl` command.
//
//   conch::test::test_cert c = conch::test::make_test_cert("server");  // skips (77) without openssl
//   o.tls = conch::net::tls_options{.cert_file = c.crt, .key_file = c.key};
//
// Each certificate is self-signed (its own CA: trust it with ca_file = crt),
// EC P-256, valid two days, for the names localhost and 127.0.0.1. Files go
// to /tmp/conch-tls-<pid>/, emptied when the first certificate is made.
#pragma once

#include <unistd.h>

#include <cstdlib>
#include <stdexcept>
#include <string>

#include "tests/support/test_support.hpp"

namespace conch::test {

/// A certificate file and its key file (PEM).
struct test_cert {
  std::string crt, key;
};

/// The directory of this process's throwaway certificates (made once).
inline std::string test_cert_dir() {
  static const std::string dir = [] {
    std::string d = "/tmp/conch-tls-" + std::to_string(::getpid());
    if (std::system(("rm -rf " + d + " && mkdir -p " + d).c_str()) != 0) throw std::runtime_error("cannot make " + d);
    return d;
  }();
  return dir;
}

/// Makes certificate `name` (see above). Skips the test (exit 77) when the
/// openssl command is missing; throws when it fails.
inline test_cert make_test_cert(const std::string& name) {
  if (std::system("command -v openssl >/dev/null 2>&1") != 0)
    skip("the openssl command is not installed (apt-get install openssl)");
  test_cert c{test_cert_dir() + "/" + name + ".crt", test_cert_dir() + "/" + name + ".key"};
  const std::string cmd = "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2"
                          " -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1"
                          " -keyout " + c.key + " -out " + c.crt + " >/dev/null 2>&1";
  if (std::system(cmd.c_str()) != 0) throw std::runtime_error("openssl could not make certificate " + name);
  return c;
}

}  // namespace conch::test
