// tests/support/without_io_uring.c
// Runs a program on a host without io_uring: a seccomp filter makes io_uring_setup fail.
//
//   without_io_uring ENOSYS|EPERM <program> [args...]
//
// ENOSYS is a kernel built without io_uring (or a sandbox that hides it),
// EPERM is sysctl kernel.io_uring_disabled=2 or a container's seccomp
// profile. The filter is inherited across fork and exec, so a whole ctest
// run can go under it (tests/support/check_skip.cmake does). Every other
// system call is allowed. Numbers are per ABI, so a call from a foreign one
// (i386 on x86-64) is refused with the same errno rather than misread; the
// x32 io_uring_setup is refused too. Exits 2 on a usage error, 3 if the
// filter cannot be installed or does not bite.
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__x86_64__)
#define NATIVE_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define NATIVE_AUDIT_ARCH AUDIT_ARCH_AARCH64
#elif defined(__riscv) && __riscv_xlen == 64
#define NATIVE_AUDIT_ARCH AUDIT_ARCH_RISCV64
#else
#error "without_io_uring: add this architecture's AUDIT_ARCH_* value"
#endif

#ifndef __NR_io_uring_setup
#error "without_io_uring: the system headers do not know io_uring_setup"
#endif

// x86-64 numbers x32 system calls with this bit set, under the same arch.
#ifndef __X32_SYSCALL_BIT
#define __X32_SYSCALL_BIT 0x40000000
#endif

static int install_filter(int err) {
  const unsigned int refuse = SECCOMP_RET_ERRNO | ((unsigned int)err & SECCOMP_RET_DATA);
  struct sock_filter code[] = {
      // A foreign ABI: refuse everything (its numbers mean other calls).
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, NATIVE_AUDIT_ARCH, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, refuse),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
#if defined(__x86_64__)
      // x32 calls carry the x32 bit and the native arch: drop the bit, so
      // the x32 io_uring_setup is refused too.
      BPF_STMT(BPF_ALU | BPF_AND | BPF_K, ~(unsigned int)__X32_SYSCALL_BIT),
#endif
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, refuse),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  struct sock_fprog prog = {.len = (unsigned short)(sizeof code / sizeof code[0]), .filter = code};
  // Without no_new_privs an unprivileged process may not install a filter.
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return -1;
  return (int)syscall(__NR_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog);
}

int main(int argc, char** argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s ENOSYS|EPERM <program> [args...]\n", argv[0]);
    return 2;
  }
  int err;
  if (strcmp(argv[1], "ENOSYS") == 0)
    err = ENOSYS;
  else if (strcmp(argv[1], "EPERM") == 0)
    err = EPERM;
  else {
    fprintf(stderr, "%s: the errno must be ENOSYS or EPERM, not %s\n", argv[0], argv[1]);
    return 2;
  }
  if (install_filter(err) != 0) {
    fprintf(stderr, "%s: cannot install the seccomp filter: %s\n", argv[0], strerror(errno));
    return 3;
  }
  // Proves the filter bites before handing over: io_uring_setup(1, NULL)
  // would fail with EFAULT if it reached the kernel.
  errno = 0;
  if (syscall(__NR_io_uring_setup, 1, NULL) != -1 || errno != err) {
    fprintf(stderr, "%s: io_uring_setup was not refused with %s (errno %d)\n", argv[0], argv[1], errno);
    return 3;
  }
  execvp(argv[2], argv + 2);
  fprintf(stderr, "%s: cannot run %s: %s\n", argv[0], argv[2], strerror(errno));
  return 127;
}
