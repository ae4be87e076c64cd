// src/sync/word_lock.cpp — see word_lock.hpp. The classic futex lock with a
// waiters bit: an uncontended lock and unlock are one CAS and one exchange;
// a contended one spins briefly (an area's critical section is a few hundred
// nanoseconds, shorter than a sleep and a wake) before it sleeps.
#include "sync/word_lock.hpp"

#include <atomic>
#include <cerrno>

#include "os/futex.hpp"
#include "os/shared.hpp"

namespace numacma::sync {

namespace {

constexpr int kSpins = 200;

std::atomic_ref<std::uint32_t> at(std::uint32_t* w) noexcept { return std::atomic_ref<std::uint32_t>(*w); }

inline void relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

}  // namespace

std::int64_t deadline_after_ms(std::int64_t ms) noexcept {
  if (ms < 0) return -1;
  return static_cast<std::int64_t>(os::monotonic_ns()) + ms * 1000000;
}

bool try_lock(std::uint32_t* w, std::uint32_t id) noexcept {
  std::uint32_t expect = 0;
  return at(w).compare_exchange_strong(expect, id, std::memory_order_acquire, std::memory_order_relaxed);
}

bool lock(std::uint32_t* w, std::uint32_t id, std::int64_t timeout_ms, bool shared) noexcept {
  id &= kOwnerMask;
  if (try_lock(w, id)) return true;
  for (int i = 0; i < kSpins; ++i) {
    relax();
    if (at(w).load(std::memory_order_relaxed) == 0 && try_lock(w, id)) return true;
  }
  const std::int64_t deadline_ns = deadline_after_ms(timeout_ms);
  for (;;) {
    std::uint32_t v = at(w).load(std::memory_order_relaxed);
    if (v == 0) {
      // Taken with the waiters bit: others may be asleep, the unlock wakes one.
      if (at(w).compare_exchange_strong(v, id | kWaiters, std::memory_order_acquire, std::memory_order_relaxed))
        return true;
      continue;
    }
    if ((v & kWaiters) == 0 &&
        !at(w).compare_exchange_strong(v, v | kWaiters, std::memory_order_relaxed, std::memory_order_relaxed))
      continue;
    if (deadline_ns >= 0 && static_cast<std::int64_t>(os::monotonic_ns()) >= deadline_ns) return false;
    if (os::futex_wait(w, v | kWaiters, deadline_ns, shared) == ETIMEDOUT) {
      // One last look: it may have come free just as the wait ran out.
      std::uint32_t z = 0;
      return at(w).compare_exchange_strong(z, id | kWaiters, std::memory_order_acquire, std::memory_order_relaxed);
    }
  }
}

void unlock(std::uint32_t* w, bool shared) noexcept {
  if ((at(w).exchange(0, std::memory_order_release) & kWaiters) != 0) os::futex_wake(w, 1, shared);
}

std::uint32_t owner(const std::uint32_t* w) noexcept {
  return at(const_cast<std::uint32_t*>(w)).load(std::memory_order_relaxed) & kOwnerMask;
}

bool take_over(std::uint32_t* w, std::uint32_t from, std::uint32_t id) noexcept {
  std::uint32_t v = at(w).load(std::memory_order_relaxed);
  while ((v & kOwnerMask) == from && from != 0) {
    if (at(w).compare_exchange_weak(v, (id & kOwnerMask) | (v & kWaiters), std::memory_order_acquire,
                                    std::memory_order_relaxed))
      return true;
  }
  return false;
}

}  // namespace numacma::sync
