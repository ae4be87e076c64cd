// src/core/records.hpp — an area whose allocations are also recorded, one
// 8-byte word per bitmap bit, with a journal: the form an area takes when
// several processes allocate from it (a shared pool), so that who holds each
// buffer is known and a process killed in the middle of an update leaves a
// state that can be completed. No OS; the caller holds the area's lock.
//
//   record b:   0, or (pages | holder << 32): a buffer of `pages` pages held
//               by `holder` (an id > 0) starts at bit b
//   an allocation:  Area::find -> journal (bit, record, counters after),
//                   pending = 1 -> the record (one 8-byte store) ->
//                   Area::commit (bitmap, marks, summary, counters) ->
//                   pending = 0
//   a release:      the same with the record cleared and Area::release
//   repair:         a pending update is completed from the journal, then
//                   the derived state (the Area) is rebuilt from the records
//
// Records are the truth; the Area's bitmap and used/live counts are derived
// from them. In a shared pool every word here may have been written by a
// hostile process: every record is checked before use (bit inside the area,
// page count fitting it, holder inside the table), and a record that does
// not fit is dropped by a rebuild, never followed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "core/area.hpp"
#include "numacma/result.hpp"

namespace numacma::core {

/** The update in flight (each value is the one AFTER it). */
struct Journal {
  std::uint32_t pending;
  std::uint32_t op;               ///< 1 alloc, 2 release, 3 taken and released (counters only)
  std::uint64_t bit;
  std::uint64_t rec;              ///< the record after (0 for a release)
  std::uint64_t alloc_pages_success, release_pages_success, reaped_pages;
};
static_assert(sizeof(Journal) == 48 && alignof(Journal) == 8);
static_assert(std::is_trivially_copyable_v<Journal> && std::is_standard_layout_v<Journal>);
static_assert(offsetof(Journal, pending) == 0 && offsetof(Journal, op) == 4 &&
              offsetof(Journal, bit) == 8 && offsetof(Journal, rec) == 16 &&
              offsetof(Journal, alloc_pages_success) == 24 &&
              offsetof(Journal, release_pages_success) == 32 && offsetof(Journal, reaped_pages) == 40);

/** Beside the Area's counters: what recovery did (may live in shared memory). */
struct RecordState {
  std::uint64_t recoveries;       ///< updates completed for an owner that died
  std::uint64_t reaped_pages;     ///< pages given back from dead holders
  std::uint64_t dropped_records;  ///< records a rebuild found not to fit, dropped
  std::uint64_t pad;
  Journal journal;
};
static_assert(sizeof(RecordState) == 80 && alignof(RecordState) == 8);
static_assert(std::is_trivially_copyable_v<RecordState> && std::is_standard_layout_v<RecordState>);
static_assert(offsetof(RecordState, recoveries) == 0 && offsetof(RecordState, reaped_pages) == 8 &&
              offsetof(RecordState, dropped_records) == 16 && offsetof(RecordState, pad) == 24 &&
              offsetof(RecordState, journal) == 32);

struct Rec {
  std::uint32_t pages;
  std::uint32_t holder;           ///< 0: no buffer starts here
};
static_assert(sizeof(Rec) == 8 && alignof(Rec) == 4);
static_assert(std::is_trivially_copyable_v<Rec> && std::is_standard_layout_v<Rec>);
static_assert(offsetof(Rec, pages) == 0 && offsetof(Rec, holder) == 4);

inline std::uint64_t rec_word(Rec r) noexcept {
  return static_cast<std::uint64_t>(r.pages) | static_cast<std::uint64_t>(r.holder) << 32;
}
inline Rec rec_of(std::uint64_t w) noexcept {
  return Rec{static_cast<std::uint32_t>(w), static_cast<std::uint32_t>(w >> 32)};
}

/** Where an area's records are. */
struct Records {
  std::uint64_t* words = nullptr;  ///< count words
  std::uint64_t count = 0;         ///< the area's pages >> order_per_bit
  unsigned opb = 0;
  std::uint32_t holders = 0;       ///< valid holder ids: 1 .. holders
  RecordState* st = nullptr;
};

/** Records a block that `area.find` just returned, for `holder`. REQUIRES:
 *  b.pages < 2^32. */
void record_alloc(const Records& r, Area& area, const Block& b, std::uint32_t holder) noexcept;

/** Counts `pages` allocated and released at once (Area::count_taken_and_released:
 *  a first fit above the device's mask that dma-direct takes and gives back),
 *  journaled like an update so that the counters stay balanced whenever the
 *  process is killed. */
void record_taken_and_released(const Records& r, Area& area, std::uint64_t pages) noexcept;

/** Why a release by `holder` of (first_page, count) is refused: ok, or
 *  bad_free naming the page; *owner is set to the record's holder when the
 *  buffer is someone else's. */
Status check_release(const Records& r, std::uint64_t first_page, std::uint64_t count, std::uint32_t holder,
                     std::uint32_t* owner) noexcept;

/** Records a release check_release allowed (reaped: given back from a dead
 *  holder). An Area that disagrees with the records is rebuilt from them. */
void record_release(const Records& r, Area& area, std::uint64_t first_page, std::uint64_t count,
                    bool reaped) noexcept;

/** How many buffers the records say `holder` holds (records of other
 *  holders, and garbage, are not counted). */
std::uint64_t records_of(const Records& r, std::uint32_t holder) noexcept;
/** Completes a pending update from the journal, then rebuild(). */
void repair(const Records& r, Area& area) noexcept;

/** The Area (bitmap, used, live) from the records; a record that does not
 *  fit (no pages, no such holder, past the area, across a segment, over
 *  another) is cleared and counted in dropped_records. */
void rebuild(const Records& r, Area& area) noexcept;

struct Released {
  std::uint64_t buffers = 0, pages = 0;
};
/** Gives back every buffer of `holder` (> 0). */
Released release_holder(const Records& r, Area& area, std::uint32_t holder) noexcept;

/** The invariants: no update pending; the Area's bitmap, used pages and live
 *  count exactly what the records say; no record past the area or over
 *  another; every record's holder attached (attached[holder - 1]); the
 *  counters balanced. corrupt naming the first that fails. */
Status verify(const Records& r, const Area& area, const std::vector<bool>& attached);

/** Tests only: called at numbered points inside an update (1: journal
 *  written, 2: record written, 3: the Area and counters written). */
void set_update_hook_for_testing(void (*hook)(int point));

}  // namespace numacma::core
