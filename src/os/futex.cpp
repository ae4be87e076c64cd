// src/os/futex.cpp — see futex.hpp.
#include "os/futex.hpp"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>

namespace numacma::os {

int futex_wait(std::uint32_t* word, std::uint32_t expected, std::int64_t deadline_ns, bool shared) noexcept {
  timespec ts{};
  timespec* tp = nullptr;
  if (deadline_ns >= 0) {
    ts.tv_sec = static_cast<time_t>(deadline_ns / 1000000000);
    ts.tv_nsec = static_cast<long>(deadline_ns % 1000000000);
    tp = &ts;
  }
  // FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC deadline.
  const int op = FUTEX_WAIT_BITSET | (shared ? 0 : FUTEX_PRIVATE_FLAG);
  const long r = ::syscall(SYS_futex, word, op, expected, tp, nullptr, FUTEX_BITSET_MATCH_ANY);
  if (r == 0) return 0;
  if (errno == ETIMEDOUT) return ETIMEDOUT;
  if (errno == EINTR) return EINTR;
  return 0;  // EAGAIN: the word changed; EFAULT/EINVAL: treated as a spurious wake
}

void futex_wake(std::uint32_t* word, int n, bool shared) noexcept {
  const int op = FUTEX_WAKE | (shared ? 0 : FUTEX_PRIVATE_FLAG);
  (void)::syscall(SYS_futex, word, op, n, nullptr, nullptr, 0);
}

}  // namespace numacma::os
