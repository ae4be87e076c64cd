// src/sync/word_lock.hpp — a lock in one 32-bit word of any memory: the heap
// (a private pool's area) or a mapping that other processes write too (a
// shared pool's area, sync across processes through futex(2)).
//
//   word == 0                  free
//   word == id [| kWaiters]    held by `id` (1 .. kOwnerMask), kWaiters when
//                              someone may sleep on it
//
// Unlike a pthread mutex it keeps no state but the word, so a word that a
// hostile process scribbles on can make a lock attempt wait until its
// deadline, never crash it or make it wait for ever; and the owner is an id
// the pool chooses (a holder slot), not a thread id, so owners in other PID
// namespaces never collide. A dead owner is not detected here: the pool's
// keeper, which sees the owner's process go, takes the lock over
// (take_over) and repairs what it guards.
#pragma once

#include <atomic>
#include <cstdint>

namespace numacma::sync {

// The word may be mapped by several processes (a shared pool's AreaState::lock):
// it is 4 bytes aligned to 4, as futex(2) needs, and updated through
// std::atomic_ref, which must be lock-free on it so that every process, of
// whatever build, agrees on the word alone.
static_assert(sizeof(std::uint32_t) == 4 && alignof(std::uint32_t) == 4);
static_assert(std::atomic_ref<std::uint32_t>::is_always_lock_free);
static_assert(std::atomic_ref<std::uint32_t>::required_alignment == alignof(std::uint32_t));

inline constexpr std::uint32_t kWaiters = 1u << 31;
inline constexpr std::uint32_t kOwnerMask = kWaiters - 1;

/** CLOCK_MONOTONIC now + ms in ns; -1 (no deadline) for ms < 0. */
std::int64_t deadline_after_ms(std::int64_t ms) noexcept;

/** Takes the lock for `id` (1 .. kOwnerMask): spins a little, then sleeps
 *  for at most timeout_ms counted from the end of the spin (< 0: no limit);
 *  false when that time passed first. The clock is read only after the spin,
 *  so an uncontended lock costs one CAS and no clock reading. shared: the
 *  word is in memory other processes map. */
bool lock(std::uint32_t* word, std::uint32_t id, std::int64_t timeout_ms, bool shared) noexcept;
/** Only the first try: true when it was free and is now `id`'s. */
bool try_lock(std::uint32_t* word, std::uint32_t id) noexcept;
/** Releases it (whoever holds it: REQUIRES that the caller does). */
void unlock(std::uint32_t* word, bool shared) noexcept;
/** Who holds it now (0: nobody). */
std::uint32_t owner(const std::uint32_t* word) noexcept;
/** Makes `id` the owner if `from` owns it now (the keeper, after `from`'s
 *  process died); true when it did. */
bool take_over(std::uint32_t* word, std::uint32_t from, std::uint32_t id) noexcept;

}  // namespace numacma::sync
