// src/shared/state.hpp — a reserved pool's state file, mapped, and the
// updates every attached process makes to it.
//
//   StateFile         the mapped, validated file (layout.hpp)
//   lock_area()       robust lock of one area; a dead owner's half-done
//                     update is completed from the journal, the derived parts
//                     (bitmap, used pages, live count) recomputed from the
//                     records, and the epoch bumped so every mirror rebuilds
//   Mirror            this process's core::Area for the area: kept equal to
//                     the records by replaying the update log (or rebuilt
//                     from the records when it is too far behind); first fit
//                     runs on it, so decisions are core::Area's exactly
//   commit_alloc()    journal -> record -> bitmap, counters, log -> journal clear
//   commit_release()  the same for a release (or a reap)
//   holders           one slot per attached Pool: pid + start time; a slot
//                     whose process is gone is reaped (its records released)
//
// An update is made only under its area's lock; the holder table under the
// pool lock (attach, detach, reap: never on the allocation path).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/area.hpp"
#include "numacma/result.hpp"
#include "numacma/shared.hpp"
#include "shared/layout.hpp"

namespace numacma::shared {

class StateFile {
 public:
  /** Opens, maps and validates. permission / not_found / corrupt. */
  static Result<std::shared_ptr<StateFile>> open(const std::string& path);
  ~StateFile();
  StateFile(const StateFile&) = delete;
  StateFile& operator=(const StateFile&) = delete;

  unsigned char* base() const noexcept { return base_; }
  const FileHeader& hdr() const noexcept { return header(base_); }
  const AreaDesc& desc(std::uint32_t i) const noexcept { return *views_[i].desc; }
  std::uint32_t areas() const noexcept { return static_cast<std::uint32_t>(views_.size()); }
  AreaState& state(std::uint32_t i) const noexcept { return *views_[i].state; }
  /** Records as 8-byte words (rec_of / rec_word), each written with one store. */
  std::uint64_t* recs(std::uint32_t i) const noexcept { return views_[i].recs; }
  std::uint64_t* bitmap(std::uint32_t i) const noexcept { return views_[i].bitmap; }
  PoolState& pool() const noexcept { return *at<PoolState>(base_, hdr().pool_offset); }
  Holder* holders() const noexcept { return at<Holder>(base_, hdr().holders_offset); }
  NodeCtr* nodes() const noexcept { return at<NodeCtr>(base_, hdr().nodes_offset); }
  const std::string& path() const noexcept { return path_; }

 private:
  StateFile() = default;
  /** Where each area's parts are in this mapping (found once, at open). */
  struct View {
    const AreaDesc* desc;
    AreaState* state;
    std::uint64_t* recs;
    std::uint64_t* bitmap;
  };
  std::vector<View> views_;
  std::string path_;
  unsigned char* base_ = nullptr;
  std::size_t size_ = 0;
};

/** Sets up every lock of a freshly written image (reserve). */
Status init_locks(StateFile& f);

/** Holds one area's lock (from construction to destruction, when ok());
 *  repairs on acquisition when the owner died. */
class AreaLock {
 public:
  AreaLock(StateFile& f, std::uint32_t area) noexcept;
  AreaLock(const AreaLock&) = delete;
  AreaLock& operator=(const AreaLock&) = delete;
  ~AreaLock();
  bool ok() const noexcept { return err_ == 0; }
  explicit operator bool() const noexcept { return ok(); }
  /** Why the lock could not be had (REQUIRES: !ok()). */
  Error error() const;
  /** True when this acquisition found the owner dead and repaired. */
  bool repaired() const noexcept { return repaired_; }

 private:
  StateFile& f_;
  std::uint32_t i_;
  int err_ = 0;
  bool repaired_ = false;
};

/** The pool lock (holder table). */
class PoolLock {
 public:
  static Result<PoolLock> acquire(StateFile& f);
  PoolLock(PoolLock&& o) noexcept : f_(o.f_), held_(std::exchange(o.held_, false)) {}
  PoolLock& operator=(PoolLock&&) = delete;
  ~PoolLock();

 private:
  explicit PoolLock(StateFile* f) : f_(f) {}
  StateFile* f_;
  bool held_ = true;
};

/** Repairs an area whose lock owner died (under its lock; idempotent). */
void repair_area(StateFile& f, std::uint32_t area) noexcept;

/** This process's copy of one area's allocations. */
struct Mirror {
  std::uint64_t seq = 0;
  std::uint64_t epoch = ~std::uint64_t{0};  ///< never a real epoch: the first sync rebuilds
};

/** Brings `area` (a core::Area over this area's geometry) up to the records.
 *  REQUIRES: the area lock. corrupt when the records overlap or do not fit. */
Status sync_slow(StateFile& f, std::uint32_t i, Mirror& m, core::Area& area);
/** The same; the common case (no update by anyone else since this
 *  process's last) inline, with no call. */
inline Status sync(StateFile& f, std::uint32_t i, Mirror& m, core::Area& area) {
  const AreaState& st = f.state(i);
  if (m.seq == st.seq && m.epoch == st.epoch) return {};
  return sync_slow(f, i, m, area);
}

/** The mirror's stats with the area's counters of every process (REQUIRES:
 *  the area lock, a synced mirror). */
core::AreaStats shared_stats(StateFile& f, std::uint32_t i, const core::Area& mirror);

/** Records an allocation core::Area made (REQUIRES: lock, synced mirror
 *  that already holds it). holder: slot + 1. */
void commit_alloc(StateFile& f, std::uint32_t i, Mirror& m, std::uint64_t first_page,
                  std::uint64_t pages, std::uint32_t holder) noexcept;
/** Records a release (reaped: counted as given back from a dead holder). */
void commit_release(StateFile& f, std::uint32_t i, Mirror* m, std::uint64_t bit, bool reaped) noexcept;

/** The invariants of an area (REQUIRES: its lock): the bitmap, used pages and
 *  live count are what the records say, no record overlaps another or runs
 *  past the area, every record names an attached holder slot, no update is
 *  pending. corrupt naming the first that fails. */
Status verify_area(StateFile& f, std::uint32_t i);

/** Takes a holder slot for this process (pool lock inside). busy when full. */
Result<std::uint32_t> register_holder(StateFile& f);
/** Releases every record of the slot in every area, then frees the slot. */
Status unregister_holder(StateFile& f, std::uint32_t slot);
/** Finds holders whose process is gone and gives back their buffers. */
Result<ReapReport> reap_dead(StateFile& f);

/** Tests only: called at numbered points inside an update (1: journal
 *  written, 2: record written, 3: counters written), under the area lock. */
void set_update_hook_for_testing(void (*hook)(int point));

/** The state file of the reservation NAME, opened (not_found names the run
 *  directory and says how to reserve). */
Result<std::shared_ptr<StateFile>> open_reservation(std::string_view name);

/** <run dir>/pools/NAME and the state file in it. */
std::string pool_dir(std::string_view name);
std::string state_path(std::string_view name);

}  // namespace numacma::shared
