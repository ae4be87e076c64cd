// src/shared/keeper_core.hpp — what a pool's keeper decides, apart from how it
// hears it (the socket loop is keeper.cpp): who holds a slot, whose buffers
// go back when a process is gone, whether the pool may be released. Pure
// logic over the state mapping (no OS beyond the area locks' futex), so the
// fuzz target runs it in-process on state files it damaged.
//
//   slots_[s]   the keeper's own view of holder slot s: free, attached (its
//               connection is open) or gone (closed; buffers still to give
//               back because an area's lock could not be had in time)
//   the state's holder table is written from it, for status to show; it is
//   never read back (another process may have written anything there)
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/area.hpp"
#include "numacma/result.hpp"
#include "shared/layout.hpp"
#include "shared/protocol.hpp"
#include "core/records.hpp"

namespace numacma::shared {

class KeeperCore {
 public:
  /** Over a validated layout and a mapping of its state (state_bytes long). */
  static Result<KeeperCore> create(const Layout& layout, unsigned char* state);

  /** A slot for a new holder; busy when every slot is held. pid as the
   *  keeper sees it (0: not visible), comm as the client says (display only). */
  Result<std::uint32_t> admit(int pid, std::uint32_t uid, const std::string& comm, std::uint64_t now_ns);

  /** The slot's process is gone (or detached): its buffers go back now, or
   *  at a later reap when an area's lock is held by someone else. */
  ReapCounts gone(std::uint32_t slot, bool died, std::int64_t lock_wait_ms);

  /** Gives back what earlier gone() calls could not, repairs any area whose
   *  lock names a holder that is not attached (a dead or a forged owner) or
   *  whose update is pending. */
  ReapCounts reap(std::int64_t lock_wait_ms);

  /** Some slot still waits for its buffers to go back. */
  bool pending() const noexcept;

  struct Holding {
    std::uint32_t slot;
    int pid;
    std::string comm;
    std::uint64_t pages;
  };
  /** Attached holders with buffers (from the records, read without locks). */
  std::vector<Holding> holders_with_buffers() const;

  /** Every area's invariants (core::verify), each under its lock. */
  Status verify(std::int64_t lock_wait_ms);

  std::uint32_t capacity() const noexcept { return static_cast<std::uint32_t>(slots_.size()); }

 private:
  enum class Slot : std::uint8_t { free, attached, gone };
  KeeperCore(const Layout& l, unsigned char* state) : layout_(&l), state_(state) {}
  /** Locks area a as the keeper: repairs when the owner is a holder that is
   *  not attached (dead or forged) or an update is pending. false: not in time. */
  bool lock_area(std::uint32_t a, std::int64_t lock_wait_ms, ReapCounts& rep) noexcept;
  void unlock_area(std::uint32_t a) noexcept;
  /** Gives back slot s's buffers in every area it can lock; when all are
   *  back the slot is free (a death counted in rep.dead_holders). */
  void give_back(std::uint32_t s, std::int64_t lock_wait_ms, ReapCounts& rep);
  void write_holder(std::uint32_t s) noexcept;

  const Layout* layout_;
  unsigned char* state_;
  std::vector<AreaParts> parts_;
  std::vector<core::Area> areas_;
  std::vector<Slot> slots_;
  std::vector<int> pids_;
  std::vector<std::string> comms_;
  std::vector<std::uint32_t> uids_;
  std::vector<std::uint64_t> since_;
  std::vector<bool> died_;
  /** gone slots: which areas are still to do */
  std::vector<std::vector<bool>> todo_;
};

}  // namespace numacma::shared
