// bench/sock_epoll_server.c
// Reference echo server: one thread, classic level-triggered epoll, non-blocking sockets.
//
//   sock_epoll_server <tcp:PORT|unix:PATH>      prints "ready" once listening
//
// Reads up to 64 KiB into one shared buffer and writes it straight back. A
// short write parks the rest in the connection's own buffer, switches the
// connection to EPOLLOUT and stops reading it until flushed (backpressure).
#define _GNU_SOURCE
#include <errno.h>
#include <stddef.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "sock_listen.h"

typedef struct {
  int fd;
  char* pend;  // unsent bytes (only after a short write)
  size_t plen, poff, pcap;
} conn;

static int g_ep;
static char g_buf[1 << 16];

static int listen_on(const char* spec) {
  int fd = bench_listen(spec);
  if (fd >= 0) fcntl(fd, F_SETFL, O_NONBLOCK);
  return fd;
}

static void drop(conn* c) {
  close(c->fd);
  free(c->pend);
  free(c);
}

// Writes p[0..n) to c, stashing what the socket does not take. 0 = all sent.
static int write_or_stash(conn* c, const char* p, size_t n) {
  while (n > 0) {
    ssize_t k = send(c->fd, p, n, MSG_NOSIGNAL);
    if (k < 0) {
      if (errno != EAGAIN) return -1;
      if (c->pcap < n) {
        c->pend = realloc(c->pend, n);
        c->pcap = n;
      }
      memcpy(c->pend, p, n);
      c->plen = n;
      c->poff = 0;
      struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};
      epoll_ctl(g_ep, EPOLL_CTL_MOD, c->fd, &ev);
      return 1;
    }
    p += k;
    n -= (size_t)k;
  }
  return 0;
}

static void on_event(conn* c, unsigned events) {
  if (c->plen > 0) {  // flushing a stash
    if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return;
    ssize_t k = send(c->fd, c->pend + c->poff, c->plen - c->poff, MSG_NOSIGNAL);
    if (k < 0 && errno != EAGAIN) {
      drop(c);
      return;
    }
    if (k > 0) c->poff += (size_t)k;
    if (c->poff < c->plen) return;
    c->plen = 0;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    epoll_ctl(g_ep, EPOLL_CTL_MOD, c->fd, &ev);
  }
  for (;;) {
    ssize_t n = recv(c->fd, g_buf, sizeof g_buf, 0);
    if (n < 0 && errno == EAGAIN) return;
    if (n <= 0) {
      drop(c);
      return;
    }
    int r = write_or_stash(c, g_buf, (size_t)n);
    if (r < 0) {
      drop(c);
      return;
    }
    if (r > 0) return;  // stashed: wait for EPOLLOUT
    if ((size_t)n < sizeof g_buf) return;  // drained (level-triggered: more wakes us)
  }
}

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s <tcp:PORT|unix:PATH>\n", argv[0]);
    return 64;
  }
  int lfd = listen_on(argv[1]);
  if (lfd < 0) {
    perror("listen");
    return 1;
  }
  g_ep = epoll_create1(0);
  struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
  epoll_ctl(g_ep, EPOLL_CTL_ADD, lfd, &lev);
  printf("ready\n");
  fflush(stdout);
  struct epoll_event evs[512];
  for (;;) {
    int n = epoll_wait(g_ep, evs, 512, -1);
    for (int i = 0; i < n; ++i) {
      if (evs[i].data.ptr == NULL) {
        int fd;
        while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
          int one = 1;
          setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          conn* c = calloc(1, sizeof *c);
          c->fd = fd;
          struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
          epoll_ctl(g_ep, EPOLL_CTL_ADD, fd, &ev);
        }
        continue;
      }
      on_event(evs[i].data.ptr, evs[i].events);
    }
  }
}
