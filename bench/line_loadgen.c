// bench/line_loadgen.c
// Line request/reply load generator for server mode: N clients, R requests each, every reply checked.
//
//   line_loadgen <tcp:HOST:PORT|unix:PATH> <clients> <requests-per-client> [timeout-s]
//
// Single thread, epoll, non-blocking sockets. Each client sends one line,
// waits for its reply, then sends the next (one request in flight per
// client: a line echo handler's request/reply shape). Request k of client c
// is "c<c> r<k> " padded with letters to 32 bytes plus '\n'; the reply must
// be exactly that line. A wrong reply, an early EOF or nothing finished
// within the timeout (default 120 s) ends the run with exit status 1 and a
// line on stderr; a client that cannot connect (after 2 s of refusals) with
// exit status 2. The time runs from the first connect to the last reply.
// Prints one machine-readable line:
//   bench=line_echo clients=.. requests=.. seconds=.. requests_per_s=..
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>

enum { kLine = 33 };  // 32 bytes and '\n'

typedef struct {
  int fd;
  unsigned id;
  unsigned long sent;  // requests started
  unsigned long done;  // replies checked
  char req[kLine];     // the request in flight
  size_t out_off;      // bytes of req written
  char in[kLine];      // reply bytes so far
  size_t in_len;
} client;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(int status, const char* what, unsigned id) {
  fprintf(stderr, "line_loadgen: client %u: %s\n", id, what);
  exit(status);
}

// Connects to the target, retrying refusals for 2 s (the server may still be starting).
static int connect_to(const char* target, unsigned id) {
  struct sockaddr_storage ss;
  socklen_t len;
  memset(&ss, 0, sizeof ss);
  if (strncmp(target, "unix:", 5) == 0) {
    struct sockaddr_un* un = (struct sockaddr_un*)&ss;
    un->sun_family = AF_UNIX;
    if (strlen(target + 5) >= sizeof un->sun_path) die(2, "unix path too long", id);
    strcpy(un->sun_path, target + 5);
    len = sizeof *un;
  } else if (strncmp(target, "tcp:", 4) == 0) {
    char host[256];
    const char* colon = strrchr(target + 4, ':');
    if (colon == NULL || (size_t)(colon - (target + 4)) >= sizeof host) die(2, "want tcp:HOST:PORT", id);
    memcpy(host, target + 4, (size_t)(colon - (target + 4)));
    host[colon - (target + 4)] = '\0';
    struct sockaddr_in* in = (struct sockaddr_in*)&ss;
    in->sin_family = AF_INET;
    in->sin_port = htons((unsigned short)atoi(colon + 1));
    if (inet_pton(AF_INET, host, &in->sin_addr) != 1) die(2, "want an IPv4 address", id);
    len = sizeof *in;
  } else {
    die(2, "target must be tcp:HOST:PORT or unix:PATH", id);
    return -1;
  }
  double give_up = now_s() + 2.0;
  for (;;) {
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) die(2, strerror(errno), id);
    if (connect(fd, (struct sockaddr*)&ss, len) == 0) {
      if (ss.ss_family == AF_INET) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      }
      fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
      return fd;
    }
    int e = errno;
    close(fd);
    // Refused (or a full Unix backlog): the server is not there yet, try again.
    if ((e != ECONNREFUSED && e != EAGAIN && e != ENOENT) || now_s() > give_up) die(2, strerror(e), id);
    usleep(10000);
  }
}

// Writes what is left of the request in flight; 0 when it is all out.
static int flush_request(client* c) {
  while (c->out_off < kLine) {
    ssize_t n = write(c->fd, c->req + c->out_off, kLine - c->out_off);
    if (n < 0) {
      if (errno == EAGAIN) return 1;  // EPOLLOUT finishes it
      die(1, strerror(errno), c->id);
    }
    c->out_off += (size_t)n;
  }
  return 0;
}

static void start_request(client* c) {
  int n = snprintf(c->req, sizeof c->req, "c%u r%lu ", c->id, c->sent);
  for (int i = n; i < kLine - 1; ++i) c->req[i] = (char)('a' + (i + (int)c->sent) % 26);
  c->req[kLine - 1] = '\n';
  c->out_off = 0;
  c->in_len = 0;
  ++c->sent;
}

int main(int argc, char** argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: line_loadgen <tcp:HOST:PORT|unix:PATH> <clients> <requests-per-client> [timeout-s]\n");
    return 2;
  }
  const char* target = argv[1];
  unsigned nclients = (unsigned)strtoul(argv[2], NULL, 10);
  unsigned long per = strtoul(argv[3], NULL, 10);
  double timeout = argc > 4 ? atof(argv[4]) : 120.0;
  if (nclients == 0 || per == 0) die(2, "clients and requests must be > 0", 0);
  client* cs = calloc(nclients, sizeof *cs);
  if (cs == NULL) die(2, "out of memory", 0);
  int ep = epoll_create1(EPOLL_CLOEXEC);
  double t0 = now_s();
  for (unsigned i = 0; i < nclients; ++i) {
    client* c = &cs[i];
    c->id = i;
    c->fd = connect_to(target, i);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLET, .data.ptr = c};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) != 0) die(2, strerror(errno), i);
    start_request(c);
    flush_request(c);
  }
  unsigned finished = 0;
  struct epoll_event evs[256];
  while (finished < nclients) {
    if (now_s() - t0 > timeout) die(1, "timed out: replies stopped coming", finished);
    int n = epoll_wait(ep, evs, 256, 1000);
    for (int k = 0; k < n; ++k) {
      client* c = evs[k].data.ptr;
      if (c->done == per) continue;
      if (evs[k].events & EPOLLOUT) flush_request(c);
      for (;;) {
        ssize_t got = read(c->fd, c->in + c->in_len, kLine - c->in_len);
        if (got < 0) {
          if (errno == EAGAIN) break;
          die(1, strerror(errno), c->id);
        }
        if (got == 0) die(1, "the server closed the connection before the last reply", c->id);
        c->in_len += (size_t)got;
        if (c->in_len < kLine) continue;
        // A whole reply: it must be the request, byte for byte.
        if (memcmp(c->in, c->req, kLine) != 0) die(1, "wrong reply", c->id);
        if (++c->done == per) {
          close(c->fd);  // ends this client's handler
          ++finished;
          break;
        }
        start_request(c);
        flush_request(c);
      }
    }
  }
  double secs = now_s() - t0;
  unsigned long total = (unsigned long)nclients * per;
  printf("bench=line_echo clients=%u requests=%lu seconds=%.3f requests_per_s=%.0f\n", nclients, total, secs,
         (double)total / secs);
  free(cs);
  return 0;
}
