// src/os/futex.hpp — the kernel's wait queue on a 32-bit word (futex(2)),
// for locks that live in memory several processes map (sync/word_lock.hpp).
#pragma once

#include <cstdint>

namespace numacma::os {

/** Sleeps while *word == expected, until a wake or the CLOCK_MONOTONIC
 *  deadline in ns (< 0: none). shared: the word may be in memory other
 *  processes map (no FUTEX_PRIVATE_FLAG). Returns 0 (woken, or the word had
 *  changed), ETIMEDOUT, or EINTR. Never fails otherwise: a word the kernel
 *  cannot use (EFAULT, EINVAL) reads as a spurious wake. */
int futex_wait(std::uint32_t* word, std::uint32_t expected, std::int64_t deadline_ns, bool shared) noexcept;
/** Wakes up to n waiters on the word. */
void futex_wake(std::uint32_t* word, int n, bool shared) noexcept;

}  // namespace numacma::os
