// bench/sock_listen.h
// The listening socket of the plain-C reference servers: "tcp:PORT" (loopback) or "unix:PATH" / "unix:@NAME".
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

// A blocking listening socket (backlog 1024) for `spec`, or -1 with errno
// set. A Unix path is unlinked first; "unix:@NAME" is an abstract name.
static inline int bench_listen(const char* spec) {
  int fd;
  if (strncmp(spec, "unix:", 5) == 0) {
    struct sockaddr_un a = {0};
    a.sun_family = AF_UNIX;
    socklen_t len = sizeof a;
    if (spec[5] == '@') {
      strncpy(a.sun_path + 1, spec + 6, sizeof a.sun_path - 2);
      len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + strlen(spec + 6));
    } else {
      strncpy(a.sun_path, spec + 5, sizeof a.sun_path - 1);
      unlink(a.sun_path);
    }
    fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0 || bind(fd, (struct sockaddr*)&a, len) != 0) return -1;
  } else {
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons((uint16_t)atoi(spec + 4));
    fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    if (fd < 0) return -1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr*)&a, sizeof a) != 0) return -1;
  }
  if (listen(fd, 1024) != 0) return -1;
  return fd;
}
