// bench/sock_loadgen.c
// Echo load generator: N connections, S-byte messages, D in flight each; msgs/s, MB/s, latency, server CPU.
//
//   sock_loadgen <tcp:HOST:PORT|unix:PATH> <conns> <size> <depth> <seconds> [server-pid]
//
// Single thread, epoll, non-blocking sockets. Each connection keeps `depth`
// messages in flight: it sends a message, and one message is complete when
// `size` more bytes have come back (echo servers return the bytes in order,
// whatever chunks they use). Every byte that comes back is compared with the
// one sent: message k of connection c is the pattern (byte i = i mod 251)
// starting at offset (7k + 3c) mod 251, so a lost, repeated, reordered or
// altered chunk shows. A mismatch or more bytes than were sent ends the run
// with exit status 1 and a line on stderr; no message echoed in the
// measurement window (a server too slow or stuck, or a machine too loaded:
// nothing wrong was seen) with exit status 3; a connection that cannot be made (after 2 s of refusals)
// with exit status 2 and a line on stderr. Latency is send-to-last-byte per message. After
// a warm-up of a quarter of the run (at least 0.3 s) the measurement window
// starts; if a server pid is given, the server's CPU time (the sum of
// /proc/<pid>/task/*/schedstat, in ns, all its threads and io_uring workers)
// is read at both ends of the window. Prints one machine-readable line:
//   bench=sock_echo conns=.. size=.. depth=.. msgs_per_s=.. MB_per_s=..
//   p50_us=.. p99_us=.. server_cpu_ns_per_msg=..
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <stddef.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>

typedef struct {
  int fd;
  unsigned id;         // connection number, part of the pattern offset
  uint64_t out_seq;    // messages fully written
  uint64_t in_seq;     // messages fully echoed
  uint64_t* sent_at;   // ring of send times, one per message in flight
  unsigned head, count;
  size_t out_off;      // bytes of the current outgoing message already written
  int want_send;       // messages still to start writing
  size_t in_bytes;     // bytes received towards the oldest message in flight
  int writable_armed;
} conn;

static size_t g_size;
static unsigned g_depth;
static unsigned char* g_pat;  // g_size + 251 bytes: byte i is i mod 251
static uint64_t g_checked;     // bytes compared
static int g_ep;
static int g_measuring;
static uint64_t g_done;
static uint64_t* g_lat;
static size_t g_nlat, g_caplat;

// Where message `seq` of connection `c` starts in g_pat.
static const unsigned char* msg_of(const conn* c, uint64_t seq) {
  return g_pat + (seq * 7 + c->id * 3) % 251;
}

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t server_cpu_ns(int pid) {
  if (pid <= 0) return 0;
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/task", pid);
  DIR* d = opendir(path);
  if (!d) return 0;
  uint64_t sum = 0;
  struct dirent* e;
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.') continue;
    char p2[512];
    snprintf(p2, sizeof p2, "/proc/%d/task/%s/schedstat", pid, e->d_name);
    FILE* f = fopen(p2, "r");
    if (!f) continue;
    unsigned long long run = 0;
    if (fscanf(f, "%llu", &run) == 1) sum += run;
    fclose(f);
  }
  closedir(d);
  return sum;
}

static int close_keeping_errno(int fd) {
  int e = errno;
  close(fd);
  errno = e;
  return -1;
}

static int dial(const char* target) {
  int fd;
  if (strncmp(target, "unix:", 5) == 0) {
    struct sockaddr_un a = {0};
    a.sun_family = AF_UNIX;
    socklen_t len;
    if (target[5] == '@') {  // abstract
      strncpy(a.sun_path + 1, target + 6, sizeof a.sun_path - 2);
      len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + strlen(target + 6));
    } else {
      strncpy(a.sun_path, target + 5, sizeof a.sun_path - 1);
      len = sizeof a;
    }
    fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (connect(fd, (struct sockaddr*)&a, len) != 0) return close_keeping_errno(fd);
  } else {
    char host[64];
    const char* hp = strncmp(target, "tcp:", 4) == 0 ? target + 4 : target;
    const char* colon = strrchr(hp, ':');
    if (!colon) return -1;
    snprintf(host, sizeof host, "%.*s", (int)(colon - hp), hp);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)atoi(colon + 1));
    inet_pton(AF_INET, host, &a.sin_addr);
    fd = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(fd, (struct sockaddr*)&a, sizeof a) != 0) return close_keeping_errno(fd);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  fcntl(fd, F_SETFL, O_NONBLOCK);
  return fd;
}

static void arm(conn* c, int writable) {
  if (c->writable_armed == writable) return;
  struct epoll_event ev = {.events = EPOLLIN | (writable ? EPOLLOUT : 0), .data.ptr = c};
  epoll_ctl(g_ep, EPOLL_CTL_MOD, c->fd, &ev);
  c->writable_armed = writable;
}

// Writes as much of the queued messages as the socket takes.
static void pump_out(conn* c) {
  while (c->want_send > 0) {
    if (c->out_off == 0) {  // a new message starts: stamp it
      c->sent_at[(c->head + c->count) % g_depth] = now_ns();
      c->count++;
    }
    ssize_t n = send(c->fd, msg_of(c, c->out_seq) + c->out_off, g_size - c->out_off, MSG_NOSIGNAL);
    if (n < 0) {
      if (c->out_off == 0) c->count--;  // not started after all
      if (errno == EAGAIN) break;
      perror("send");
      exit(1);
    }
    c->out_off += (size_t)n;
    if (c->out_off < g_size) break;
    c->out_off = 0;
    c->out_seq++;
    c->want_send--;
  }
  arm(c, c->want_send > 0);
}

// Compares `n` echoed bytes with what was sent, from the oldest message in
// flight on; exits 1 on the first difference.
static void check_echo(const conn* c, const unsigned char* p, size_t n) {
  uint64_t seq = c->in_seq;
  size_t off = c->in_bytes;
  uint64_t sent_bytes = c->out_seq * g_size + c->out_off;
  if (seq * g_size + off + n > sent_bytes) {
    fprintf(stderr, "sock_loadgen: connection %u got %llu bytes back, more than the %llu sent\n",
            c->id, (unsigned long long)(seq * g_size + off + n), (unsigned long long)sent_bytes);
    exit(1);
  }
  while (n > 0) {
    size_t k = g_size - off < n ? g_size - off : n;
    const unsigned char* want = msg_of(c, seq) + off;
    if (memcmp(p, want, k) != 0) {
      size_t i = 0;
      while (p[i] == want[i]) ++i;
      fprintf(stderr, "sock_loadgen: connection %u, message %llu, byte %zu: got 0x%02x, sent 0x%02x\n",
              c->id, (unsigned long long)seq, off + i, p[i], want[i]);
      exit(1);
    }
    g_checked += k;
    p += k;
    n -= k;
    off = 0;
    ++seq;
  }
}

static void on_readable(conn* c) {
  static unsigned char buf[1 << 16];
  for (;;) {
    ssize_t n = recv(c->fd, buf, sizeof buf, 0);
    if (n < 0) {
      if (errno == EAGAIN) break;
      perror("recv");
      exit(1);
    }
    if (n == 0) {
      fprintf(stderr, "sock_loadgen: server closed a connection\n");
      exit(1);
    }
    check_echo(c, buf, (size_t)n);
    c->in_bytes += (size_t)n;
    while (c->in_bytes >= g_size && c->count > 0) {
      c->in_bytes -= g_size;
      c->in_seq++;
      uint64_t t0 = c->sent_at[c->head];
      c->head = (c->head + 1) % g_depth;
      c->count--;
      if (g_measuring) {
        g_done++;
        if (g_nlat == g_caplat) {
          g_caplat = g_caplat ? g_caplat * 2 : 1 << 16;
          g_lat = realloc(g_lat, g_caplat * sizeof *g_lat);
        }
        g_lat[g_nlat++] = now_ns() - t0;
      }
      c->want_send++;
    }
  }
  pump_out(c);
}

static int cmp_u64(const void* a, const void* b) {
  uint64_t x = *(const uint64_t*)a, y = *(const uint64_t*)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char** argv) {
  if (argc < 6) {
    fprintf(stderr, "usage: %s <tcp:HOST:PORT|unix:PATH> conns size depth seconds [server-pid]\n",
            argv[0]);
    return 64;
  }
  const char* target = argv[1];
  int nconn = atoi(argv[2]);
  g_size = (size_t)atol(argv[3]);
  g_depth = (unsigned)atoi(argv[4]);
  double seconds = atof(argv[5]);
  int pid = argc > 6 ? atoi(argv[6]) : 0;
  g_pat = malloc(g_size + 251);
  for (size_t i = 0; i < g_size + 251; ++i) g_pat[i] = (unsigned char)(i % 251);
  g_ep = epoll_create1(0);
  conn* conns = calloc((size_t)nconn, sizeof *conns);
  for (int i = 0; i < nconn; ++i) {
    conn* c = &conns[i];
    c->id = (unsigned)i;
    // A refused connect is retried for up to 2 s: a server that has just
    // said "ready" may still be finishing its start-up under a loaded CI.
    for (int tries = 0; (c->fd = dial(target)) < 0 && errno == ECONNREFUSED && tries < 200; ++tries)
      usleep(10000);
    if (c->fd < 0) {
      fprintf(stderr, "sock_loadgen: connect to %s: %s\n", target, strerror(errno));
      return 2;  // no server there: the caller may start it again (run_sockets.sh)
    }
    c->sent_at = calloc(g_depth, sizeof(uint64_t));
    c->want_send = (int)g_depth;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    epoll_ctl(g_ep, EPOLL_CTL_ADD, c->fd, &ev);
  }
  for (int i = 0; i < nconn; ++i) pump_out(&conns[i]);

  double warm = seconds / 4 < 0.3 ? 0.3 : seconds / 4;
  uint64_t start = now_ns(), t_measure = start + (uint64_t)(warm * 1e9);
  uint64_t t_end = UINT64_MAX;
  uint64_t cpu0 = 0, t0 = 0;
  struct epoll_event evs[512];
  for (;;) {
    uint64_t t = now_ns();
    if (!g_measuring && t >= t_measure) {
      g_measuring = 1;
      cpu0 = server_cpu_ns(pid);
      t0 = t;
      // The window counts from when measuring began: on a loaded machine this
      // process may wake past a precomputed end and measure nothing at all.
      t_end = t0 + (uint64_t)(seconds * 1e9);
    }
    if (t >= t_end) break;
    int n = epoll_wait(g_ep, evs, 512, 100);
    for (int i = 0; i < n; ++i) {
      conn* c = evs[i].data.ptr;
      if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) on_readable(c);
      else if (evs[i].events & EPOLLOUT) pump_out(c);
    }
  }
  uint64_t t1 = now_ns();
  uint64_t cpu1 = server_cpu_ns(pid);
  double secs = (double)(t1 - t0) / 1e9;
  qsort(g_lat, g_nlat, sizeof *g_lat, cmp_u64);
  double p50 = g_nlat ? (double)g_lat[g_nlat / 2] / 1e3 : 0;
  double p99 = g_nlat ? (double)g_lat[(size_t)((double)g_nlat * 0.99)] / 1e3 : 0;
  double msgs = (double)g_done / secs;
  printf("bench=sock_echo target=%s conns=%d size=%zu depth=%u msgs_per_s=%.0f MB_per_s=%.1f "
         "p50_us=%.1f p99_us=%.1f server_cpu_ns_per_msg=%.0f\n",
         target, nconn, g_size, g_depth, msgs, msgs * (double)g_size / 1e6, p50, p99,
         g_done && pid > 0 ? (double)(cpu1 - cpu0) / (double)g_done : 0.0);
  if (g_done == 0) {
    fprintf(stderr, "sock_loadgen: no message came back in %.2f s\n", secs);
    return 3;
  }
  fprintf(stderr, "sock_loadgen: %llu bytes echoed, all as sent\n", (unsigned long long)g_checked);
  return 0;
}
