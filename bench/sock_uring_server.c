// bench/sock_uring_server.c
// Reference echo server: one thread on liburing with multishot accept, multishot recv, provided buffers.
//
//   sock_uring_server <tcp:PORT|unix:PATH>      prints "ready" once listening
//
// A strong plain-C baseline: SINGLE_ISSUER|DEFER_TASKRUN ring, a 256 x 16 KiB
// provided-buffer ring (set up by hand: liburing 2.3 lacks
// io_uring_setup_buf_ring; 4096 buffers were slower: the buffers fell out of
// cache), receives armed as bundles capped at 64 KiB a round (Linux 6.16;
// stepping down to plain bundles, then single buffers, on -EINVAL), zero-copy
// echo (a received buffer is sent back from where the kernel put it and
// recycled when the send completes), one send in flight per connection
// coalescing every queued buffer into one sendmsg. A connection that gets
// -ENOBUFS waits for buffers to come back.
#define _GNU_SOURCE
#include <errno.h>
#include <stddef.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "sock_listen.h"

enum { NBUF = 256, BUFSZ = 16384, BGID = 1, MAXFD = 65536, QCAP = 1024, BATCH = 64 };
enum { OP_ACCEPT = 1, OP_RECV = 2, OP_SEND = 3 };

typedef struct {
  int open, closing, sending, recv_armed, starved;
  unsigned short qbid[QCAP];
  unsigned qlen_bytes[QCAP];
  unsigned qhead, qcount;  // buffers received, not yet sent
  unsigned inflight;       // buffers in the send in flight
  struct iovec iov[BATCH];
  struct msghdr msg;
} conn;

static struct io_uring ring;
static struct io_uring_buf_ring* br;
static char* bufs;
static conn* conns;
static int lfd;
static int starved[MAXFD], nstarved;

static struct io_uring_sqe* sqe(void) {
  struct io_uring_sqe* s = io_uring_get_sqe(&ring);
  while (!s) {
    io_uring_submit(&ring);
    s = io_uring_get_sqe(&ring);
  }
  return s;
}

#ifndef IORING_RECVSEND_BUNDLE  // liburing 2.3's headers predate it (Linux 6.10)
#define IORING_RECVSEND_BUNDLE (1U << 4)
#endif
enum { RECV_CAP = 65536 };
static int recv_mode = 2;  // 2: capped bundles, 1: bundles, 0: one buffer per completion
// The kernel takes ring entries in order: where each buffer was put, and
// which buffer is at each position, map a bundle's first id to the rest.
static unsigned ring_tail;
static unsigned short at_pos[NBUF];
static unsigned pos_of[NBUF];

static void recycle(unsigned short bid) {
  at_pos[ring_tail & (NBUF - 1)] = bid;
  pos_of[bid] = ring_tail++;
  io_uring_buf_ring_add(br, bufs + (size_t)bid * BUFSZ, BUFSZ, bid, io_uring_buf_ring_mask(NBUF), 0);
  io_uring_buf_ring_advance(br, 1);
}

static void arm_recv(int fd) {
  struct io_uring_sqe* s = sqe();
  io_uring_prep_recv_multishot(s, fd, NULL, recv_mode == 2 ? RECV_CAP : 0, 0);
  if (recv_mode > 0) s->ioprio |= IORING_RECVSEND_BUNDLE;
  s->flags |= IOSQE_BUFFER_SELECT;
  s->buf_group = BGID;
  io_uring_sqe_set_data64(s, ((unsigned long long)OP_RECV << 32) | (unsigned)fd);
  conns[fd].recv_armed = 1;
}

static void arm_accept(void) {
  struct io_uring_sqe* s = sqe();
  io_uring_prep_multishot_accept(s, lfd, NULL, NULL, 0);
  io_uring_sqe_set_data64(s, (unsigned long long)OP_ACCEPT << 32);
}

static void maybe_close(int fd) {
  conn* c = &conns[fd];
  if (!c->closing || c->sending || c->recv_armed) return;
  while (c->qcount > 0) {
    recycle(c->qbid[c->qhead]);
    c->qhead = (c->qhead + 1) % QCAP;
    c->qcount--;
  }
  close(fd);
  memset(c, 0, sizeof *c);
}

static void send_batch(int fd) {
  conn* c = &conns[fd];
  unsigned k = 0;
  while (k < BATCH && k < c->qcount) {
    unsigned i = (c->qhead + k) % QCAP;
    c->iov[k].iov_base = bufs + (size_t)c->qbid[i] * BUFSZ;
    c->iov[k].iov_len = c->qlen_bytes[i];
    ++k;
  }
  if (k == 0) return;
  memset(&c->msg, 0, sizeof c->msg);
  c->msg.msg_iov = c->iov;
  c->msg.msg_iovlen = k;
  struct io_uring_sqe* s = sqe();
  io_uring_prep_sendmsg(s, fd, &c->msg, MSG_NOSIGNAL | MSG_WAITALL);
  io_uring_sqe_set_data64(s, ((unsigned long long)OP_SEND << 32) | (unsigned)fd);
  c->sending = 1;
  c->inflight = k;
}

static void on_cqe(struct io_uring_cqe* cqe) {
  unsigned op = (unsigned)(cqe->user_data >> 32);
  int fd = (int)(cqe->user_data & 0xffffffffu);
  int res = cqe->res;
  int more = (cqe->flags & IORING_CQE_F_MORE) != 0;
  if (op == OP_ACCEPT) {
    if (res >= 0 && res < MAXFD) {
      int one = 1;
      setsockopt(res, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      conns[res].open = 1;
      arm_recv(res);
    } else if (res >= 0) {
      close(res);
    }
    if (!more) arm_accept();
    return;
  }
  conn* c = &conns[fd];
  if (op == OP_RECV) {
    if (!more) c->recv_armed = 0;
    if (res > 0) {
      unsigned short first = (unsigned short)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
      unsigned pos = pos_of[first];
      for (int left = res; left > 0; left -= BUFSZ) {  // a bundle: full buffers, then the rest
        unsigned short bid = at_pos[pos++ & (NBUF - 1)];
        if (c->closing || c->qcount == QCAP) {
          recycle(bid);
        } else {
          unsigned i = (c->qhead + c->qcount) % QCAP;
          c->qbid[i] = bid;
          c->qlen_bytes[i] = (unsigned)(left < BUFSZ ? left : BUFSZ);
          c->qcount++;
        }
      }
      if (!c->sending) send_batch(fd);
      if (!more && !c->closing) arm_recv(fd);
    } else if (res == -EINVAL && recv_mode > 0) {  // an older kernel: step down, re-arm
      recv_mode--;
      if (!more && !c->closing) arm_recv(fd);
    } else if (res == -ENOBUFS) {
      if (!c->starved) {  // re-armed once buffers come back
        c->starved = 1;
        starved[nstarved++] = fd;
      }
    } else {
      c->closing = 1;  // EOF or error
    }
    maybe_close(fd);
    return;
  }
  // OP_SEND
  c->sending = 0;
  for (unsigned k = 0; k < c->inflight; ++k) {
    recycle(c->qbid[c->qhead]);
    c->qhead = (c->qhead + 1) % QCAP;
    c->qcount--;
  }
  c->inflight = 0;
  if (res < 0) c->closing = 1;
  if (!c->closing) send_batch(fd);
  maybe_close(fd);
  while (nstarved > 0) {  // buffers are back: resume starved receivers
    int s = starved[--nstarved];
    conns[s].starved = 0;
    if (conns[s].open && !conns[s].closing && !conns[s].recv_armed) arm_recv(s);
  }
}

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s <tcp:PORT|unix:PATH>\n", argv[0]);
    return 64;
  }
  const char* spec = argv[1];
  lfd = bench_listen(spec);
  if (lfd < 0) return perror("listen"), 1;

  struct io_uring_params p;
  memset(&p, 0, sizeof p);
  p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_CQSIZE;
  p.cq_entries = 16384;
  int rc = io_uring_queue_init_params(512, &ring, &p);
  if (rc < 0) {
    fprintf(stderr, "io_uring_queue_init: %s\n", strerror(-rc));
    return 1;
  }
  size_t rbytes = NBUF * sizeof(struct io_uring_buf);
  br = mmap(NULL, rbytes, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
  bufs = mmap(NULL, (size_t)NBUF * BUFSZ, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
  struct io_uring_buf_reg reg = {.ring_addr = (unsigned long)br, .ring_entries = NBUF, .bgid = BGID};
  if ((rc = io_uring_register_buf_ring(&ring, &reg, 0)) < 0) {
    fprintf(stderr, "register_buf_ring: %s\n", strerror(-rc));
    return 1;
  }
  io_uring_buf_ring_init(br);
  for (int i = 0; i < NBUF; ++i) recycle((unsigned short)i);
  conns = calloc(MAXFD, sizeof *conns);
  arm_accept();
  printf("ready\n");
  fflush(stdout);
  for (;;) {
    io_uring_submit_and_wait(&ring, 1);
    unsigned head, n = 0;
    struct io_uring_cqe* cqe;
    io_uring_for_each_cqe(&ring, head, cqe) {
      on_cqe(cqe);
      ++n;
    }
    io_uring_cq_advance(&ring, n);
  }
}
