// src/shared/layout.hpp — the state file of a reserved pool (pure logic: no OS).
//
//   offset 0                                              fixed_bytes           file_bytes
//   | FileHeader | AreaDesc[n] | segments | hugepage maps | PoolState | Holder[] | NodeCtr[] |
//   |<------------- immutable, checksummed --------------->|<----------- mutable ---------->
//                                                           | per area: AreaState | Rec[bits] | bitmap |
//
// Everything is an offset from the start of the file, never a pointer: each
// process maps the file where it likes. The fixed part is written once by
// `reserve` and never changes; its checksum (FNV-1a 64, the checksum field
// read as zero) catches a damaged or foreign file. validate() checks a whole
// image before anything is read from it: magic, version, sizes, every offset
// and length within the file and aligned, the areas' shapes, the segments and
// hugepage maps, the checksum. Mutable parts (records) are checked when an
// area is rebuilt from them (core::Area::restore refuses overlaps).
//
// Records: one Rec per bitmap bit of an area (bit = 2^order_per_bit pages);
// rec[b].holder != 0 iff a live buffer starts at bit b, of rec[b].pages pages,
// held by holder slot rec[b].holder - 1. Writing a Rec is one 8-byte store, so
// a process killed at any instruction leaves each Rec whole.
//
// Locks are 64 opaque bytes here (a process-shared robust mutex, set up and
// used by src/os/shared.hpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/area.hpp"
#include "numacma/result.hpp"

namespace numacma::shared {

inline constexpr char kMagic[8] = {'N', 'C', 'M', 'A', 'P', 'O', 'O', 'L'};
inline constexpr std::uint32_t kVersion = 1;
inline constexpr std::uint32_t kMaxAreas = 256;
inline constexpr std::uint32_t kMaxHolders = 4096;
inline constexpr std::uint32_t kMaxNodeSlots = 1025;  // MAX_NUMNODES 1024 + the no-node slot
inline constexpr std::uint32_t kLogEntries = 4096;
inline constexpr std::size_t kLockBytes = 64;

struct alignas(8) FileHeader {
  char magic[8];
  std::uint32_t version;
  std::uint32_t header_bytes;     ///< sizeof(FileHeader)
  std::uint64_t file_bytes;       ///< the whole file
  std::uint64_t fixed_bytes;      ///< [0, fixed_bytes) immutable and checksummed
  std::uint32_t area_desc_bytes;  ///< sizeof(AreaDesc)
  std::uint32_t area_count;
  std::uint64_t areas_offset;     ///< AreaDesc[area_count]
  std::uint64_t pool_offset;      ///< PoolState
  std::uint64_t holders_offset;   ///< Holder[holder_capacity]
  std::uint32_t holder_capacity;
  std::uint32_t node_slots;       ///< NodeCtr per node id + 1 (slot 0: no node)
  std::uint64_t nodes_offset;     ///< NodeCtr[node_slots]
  std::uint32_t policy;           ///< 0 kernel, 1 nearest
  std::uint32_t arch;             ///< numacma::Arch
  std::uint32_t iova_mode;        ///< 1: the pool hands out IOVAs (anon areas)
  std::uint32_t order_per_bit;
  std::uint64_t created_ns;       ///< CLOCK_REALTIME at reserve
  char name[64];
  char params[256];
  char backing[32];
  char sysfs_root[256];
  std::uint64_t checksum;         ///< FNV-1a 64 of [0, fixed_bytes), this field as 0
};

struct Seg {
  std::uint64_t first_page, pages, dma_base;
};

struct alignas(8) AreaDesc {
  char name[48];
  char kind_name[32];             ///< the reservation's kind: "hugetlb-2M", "anon", "sim"
  char path[256];                 ///< the file holding the area's memory
  char note[256];
  std::int32_t node;
  std::uint32_t kind;             ///< config::AreaKind
  std::uint32_t addr_iova;        ///< backing::AddrKind::iova
  std::uint32_t order_per_bit;
  std::uint64_t page_size;        ///< 4096
  std::uint64_t pages;            ///< area pages (bytes / page_size)
  std::uint64_t mapped_bytes;     ///< the file's size (a multiple of huge_page_bytes)
  std::uint64_t huge_page_bytes;  ///< 0: not hugetlb
  std::uint64_t segments_offset;  ///< Seg[segment_count]
  std::uint64_t segment_count;
  std::uint64_t hpmap_offset;     ///< uint32 file hugepage index per slot (hugetlb)
  std::uint64_t hpmap_count;      ///< mapped_bytes / huge_page_bytes, 0 when not hugetlb
  std::uint64_t state_offset;     ///< AreaState
  std::uint64_t recs_offset;      ///< Rec[rec_count]
  std::uint64_t rec_count;        ///< pages >> order_per_bit
  std::uint64_t bitmap_offset;    ///< uint64 words: bit b set iff bit b is allocated
  std::uint64_t bitmap_words;     ///< ceil(rec_count / 64)
};

/** An allocation record (see the file comment). */
struct Rec {
  std::uint32_t pages;
  std::uint32_t holder;           ///< holder slot + 1; 0 = no buffer starts here
};
static_assert(sizeof(Rec) == 8);

inline std::uint64_t rec_word(Rec r) noexcept {
  return static_cast<std::uint64_t>(r.pages) | static_cast<std::uint64_t>(r.holder) << 32;
}
inline Rec rec_of(std::uint64_t w) noexcept {
  return Rec{static_cast<std::uint32_t>(w), static_cast<std::uint32_t>(w >> 32)};
}

enum class Op : std::uint32_t { none = 0, alloc = 1, release = 2 };

struct LogEntry {
  std::uint64_t seq;
  std::uint64_t bit;
  std::uint32_t pages;
  std::uint32_t op;               ///< Op
};

/** The update in flight: written before an update starts, cleared when it
 *  is whole. A lock whose owner died with `pending` set is repaired by
 *  completing the update from here (each field is the value AFTER it). */
struct Journal {
  std::uint32_t pending;
  std::uint32_t op;               ///< Op
  std::uint64_t bit;
  std::uint64_t rec;              ///< rec_word after (0 for a release)
  std::uint64_t alloc_pages_success, release_pages_success, live_buffers, reaped_pages;
};

struct alignas(64) AreaState {
  unsigned char lock[kLockBytes];  ///< robust, process-shared mutex
  std::uint64_t seq;               ///< updates made (log sequence)
  std::uint64_t epoch;             ///< bumped by each repair: mirrors rebuild
  std::uint64_t used_pages;        ///< derived from the records (repair recomputes)
  std::uint64_t live_buffers;
  std::uint64_t alloc_pages_success, alloc_pages_fail, release_pages_success;
  std::uint64_t recoveries;        ///< locks found with a dead owner
  std::uint64_t reaped_pages;      ///< pages given back from dead holders
  Journal journal;
  LogEntry log[kLogEntries];       ///< the last updates, for mirrors a few behind
};

struct alignas(64) PoolState {
  unsigned char lock[kLockBytes];  ///< the holders' table (attach, detach, reap)
  std::uint64_t attaches;
  std::uint64_t recoveries;
};

enum class HolderState : std::uint32_t { free = 0, attached = 1 };

struct Holder {
  std::uint32_t state;             ///< HolderState
  std::int32_t pid;
  std::uint64_t start_time;        ///< /proc/PID/stat starttime
  char comm[16];
  std::uint64_t attached_ns;
};

struct NodeCtr {
  std::uint64_t local, other_node, default_area, pages, failed;
};

// ---- building an image ---------------------------------------------------------

struct AreaSpec {
  std::string name;
  std::string kind_name;
  std::string path;
  std::string note;
  int node = -1;
  std::uint32_t kind = 0;
  bool iova = false;
  std::uint64_t pages = 0;
  std::uint64_t mapped_bytes = 0;
  std::uint64_t huge_page_bytes = 0;
  std::vector<core::Segment> segments;
  std::vector<std::uint32_t> hpmap;   ///< hugetlb: the file's hugepage index per slot
};

struct PoolSpec {
  std::string name, params, backing, sysfs_root;
  std::uint32_t policy = 0, arch = 0, order_per_bit = 0;
  bool iova_mode = false;
  std::uint64_t created_ns = 0;
  std::uint32_t holder_capacity = 1024;
  std::uint32_t node_slots = 2;
  std::vector<AreaSpec> areas;
};

/** The initial state file: fixed part filled and checksummed, mutable part
 *  zero (locks are set up after mapping). invalid_argument for a spec that
 *  does not fit the format (a name too long, too many areas...). */
Result<std::vector<unsigned char>> make_image(const PoolSpec& spec);

/** FNV-1a 64 of the fixed part with the checksum field as zero. REQUIRES: a
 *  size of at least sizeof(FileHeader) and fixed_bytes <= size. */
std::uint64_t fixed_checksum(const unsigned char* data, std::size_t fixed_bytes) noexcept;

/** Checks a whole image (see the file comment); Errc::corrupt naming the
 *  first thing wrong. Never reads outside [data, data + size). */
Status validate(const unsigned char* data, std::size_t size);

// Accessors. REQUIRES: a validated image.
inline const FileHeader& header(const unsigned char* base) {
  return *reinterpret_cast<const FileHeader*>(base);
}
inline const AreaDesc& area_desc(const unsigned char* base, std::uint32_t i) {
  return reinterpret_cast<const AreaDesc*>(base + header(base).areas_offset)[i];
}
template <typename T>
T* at(unsigned char* base, std::uint64_t offset) {
  return reinterpret_cast<T*>(base + offset);
}
template <typename T>
const T* at(const unsigned char* base, std::uint64_t offset) {
  return reinterpret_cast<const T*>(base + offset);
}
/** The NUL-terminated string of a fixed field. */
std::string field(const char* f, std::size_t n);

/** The area's geometry as a core::AreaConfig (cpu_base left 0). */
core::AreaConfig area_config(const unsigned char* base, std::uint32_t i);

/** Makes `area` (over area i's geometry) hold exactly the allocations its
 *  records list. corrupt naming the record when one names no holder slot of
 *  the file, has no pages, runs past the area or overlaps another. */
Status restore_records(const unsigned char* base, std::uint32_t i, core::Area& area);

/** A pool NAME: [A-Za-z0-9_.-], 1 to 48 characters, not starting with '.'. */
Status check_pool_name(std::string_view name);

}  // namespace numacma::shared
