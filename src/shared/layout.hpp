// src/shared/layout.hpp — the two memory files of a reserved pool (pure
// logic: no OS). Both are memfds that the pool's keeper holds and hands to
// every process it admits (src/shared/keeper.hpp).
//
//   layout (sealed: nobody can write, shrink or grow it; each process copies
//   it, checks the seals and validates the copy before using it)
//   | LayoutHeader | AreaDesc[n] | segments | hugepage maps |
//
//   state (sealed against shrinking and growing only: every admitted process
//   writes it, so every byte of it is hostile input)
//   | PoolState | Holder[capacity] | NodeCtr[kCounterStripes][node_slots] |
//   | per area: AreaState | Rec[rec_count] | bitmap (core::Area::storage_words) |
//
// Every offset into the state file is in the layout, never in the state
// file itself: what another process can write holds data only (records,
// bitmap words, counters, a lock word), no offset, size, path or name that
// could steer a process outside the pool. Code that reads the state checks
// every value it uses as an index (a record's page count and holder, the
// journal's bit) against the layout.
//
// Records: one 8-byte word per bitmap bit (2^order_per_bit pages): holder 0
// means no buffer starts at that bit, else a buffer of `pages` pages held by
// holder slot holder - 1. Records are the truth; the bitmap, used pages and
// live count are derived from them (repair rebuilds them).
//
// Every struct here lives in one of the two files, which processes of
// different builds may map: each is pinned below to its size, alignment and
// every field's offset, and checked trivially copyable and standard layout, so
// a change to the format fails the build instead of another process.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "core/area.hpp"
#include "core/limits.hpp"
#include "core/records.hpp"
#include "config/params.hpp"
#include "numacma/numacma.hpp"
#include "numacma/result.hpp"

namespace numacma::shared {

inline constexpr char kMagic[8] = {'N', 'C', 'M', 'A', 'P', 'O', 'O', 'L'};
inline constexpr std::uint32_t kVersion = 3;  // 3: A9's counters striped
inline constexpr std::uint32_t kMaxAreas = 256;
inline constexpr std::uint32_t kMaxHolders = 4096;
inline constexpr std::uint32_t kDefaultHolders = 1024;
inline constexpr std::uint32_t kMaxNodeSlots = 1025;  // MAX_NUMNODES 1024 + the no-node slot
using core::kPageBytes;  // core/limits.hpp

struct alignas(8) LayoutHeader {
  char magic[8];
  std::uint32_t version;
  std::uint32_t header_bytes;     ///< sizeof(LayoutHeader)
  std::uint64_t layout_bytes;     ///< this file
  std::uint64_t state_bytes;      ///< the state file
  std::uint32_t area_desc_bytes;  ///< sizeof(AreaDesc)
  std::uint32_t area_count;
  std::uint64_t areas_offset;     ///< AreaDesc[area_count], in this file
  std::uint64_t pool_offset;      ///< PoolState, in the state file
  std::uint64_t holders_offset;   ///< Holder[holder_capacity], in the state file
  std::uint32_t holder_capacity;
  std::uint32_t node_slots;       ///< NodeCtr per node id + 1 (slot 0: no node)
  std::uint64_t nodes_offset;     ///< kCounterStripes stripes of NodeCtr[node_slots], in the state file
  std::uint32_t policy;           ///< encode_policy: 0 kernel, 1 nearest
  std::uint32_t arch;             ///< encode_arch: 0 host, 1 x86_64, 2 arm64
  std::uint32_t iova_mode;        ///< encode_flag: 1, the pool hands out IOVAs (anon areas)
  std::uint32_t order_per_bit;
  std::uint64_t created_ns;       ///< CLOCK_REALTIME at reserve
  std::uint32_t owner_uid;        ///< who reserved it
  std::int32_t group_gid;         ///< whose members may attach (-1: none)
  char name[64];
  char params[256];
  char backing[32];
  char sysfs_root[256];
  std::uint64_t checksum;         ///< FNV-1a 64 of the whole file, this field as 0
};
static_assert(sizeof(LayoutHeader) == 728 && alignof(LayoutHeader) == 8);
static_assert(std::is_trivially_copyable_v<LayoutHeader> && std::is_standard_layout_v<LayoutHeader>);
static_assert(offsetof(LayoutHeader, magic) == 0 && offsetof(LayoutHeader, version) == 8 &&
              offsetof(LayoutHeader, header_bytes) == 12 && offsetof(LayoutHeader, layout_bytes) == 16 &&
              offsetof(LayoutHeader, state_bytes) == 24 && offsetof(LayoutHeader, area_desc_bytes) == 32 &&
              offsetof(LayoutHeader, area_count) == 36 && offsetof(LayoutHeader, areas_offset) == 40 &&
              offsetof(LayoutHeader, pool_offset) == 48 && offsetof(LayoutHeader, holders_offset) == 56 &&
              offsetof(LayoutHeader, holder_capacity) == 64 && offsetof(LayoutHeader, node_slots) == 68 &&
              offsetof(LayoutHeader, nodes_offset) == 72 && offsetof(LayoutHeader, policy) == 80 &&
              offsetof(LayoutHeader, arch) == 84 && offsetof(LayoutHeader, iova_mode) == 88 &&
              offsetof(LayoutHeader, order_per_bit) == 92 && offsetof(LayoutHeader, created_ns) == 96 &&
              offsetof(LayoutHeader, owner_uid) == 104 && offsetof(LayoutHeader, group_gid) == 108 &&
              offsetof(LayoutHeader, name) == 112 && offsetof(LayoutHeader, params) == 176 &&
              offsetof(LayoutHeader, backing) == 432 && offsetof(LayoutHeader, sysfs_root) == 464 &&
              offsetof(LayoutHeader, checksum) == 720);

struct Seg {
  std::uint64_t first_page, pages, dma_base;
};
static_assert(sizeof(Seg) == 24 && alignof(Seg) == 8);
static_assert(std::is_trivially_copyable_v<Seg> && std::is_standard_layout_v<Seg>);
static_assert(offsetof(Seg, first_page) == 0 && offsetof(Seg, pages) == 8 &&
              offsetof(Seg, dma_base) == 16);

struct alignas(8) AreaDesc {
  char name[48];
  char kind_name[32];             ///< the reservation's kind: "hugetlb-2M", "anon", "sim"
  char note[256];
  std::int32_t node;
  std::uint32_t kind;             ///< encode_area_kind(config::AreaKind)
  std::uint32_t addr_iova;        ///< encode_flag(backing::AddrKind::iova)
  std::uint32_t order_per_bit;
  std::uint64_t page_size;        ///< kPageBytes
  std::uint64_t pages;            ///< area pages (bytes / page_size)
  std::uint64_t mapped_bytes;     ///< the memory file's size (a multiple of huge_page_bytes)
  std::uint64_t huge_page_bytes;  ///< 0: not hugetlb
  std::uint64_t segments_offset;  ///< Seg[segment_count], in the layout
  std::uint64_t segment_count;
  std::uint64_t hpmap_offset;     ///< uint32 file hugepage index per slot (hugetlb), in the layout
  std::uint64_t hpmap_count;      ///< mapped_bytes / huge_page_bytes, 0 when not hugetlb
  std::uint64_t state_offset;     ///< AreaState, in the state file
  std::uint64_t recs_offset;      ///< Rec[rec_count], in the state file
  std::uint64_t rec_count;        ///< pages >> order_per_bit
  std::uint64_t bitmap_offset;    ///< core::Area storage, in the state file
  std::uint64_t bitmap_words;     ///< core::Area::storage_words
};
static_assert(sizeof(AreaDesc) == 456 && alignof(AreaDesc) == 8);
static_assert(std::is_trivially_copyable_v<AreaDesc> && std::is_standard_layout_v<AreaDesc>);
static_assert(offsetof(AreaDesc, name) == 0 && offsetof(AreaDesc, kind_name) == 48 &&
              offsetof(AreaDesc, note) == 80 && offsetof(AreaDesc, node) == 336 &&
              offsetof(AreaDesc, kind) == 340 && offsetof(AreaDesc, addr_iova) == 344 &&
              offsetof(AreaDesc, order_per_bit) == 348 && offsetof(AreaDesc, page_size) == 352 &&
              offsetof(AreaDesc, pages) == 360 && offsetof(AreaDesc, mapped_bytes) == 368 &&
              offsetof(AreaDesc, huge_page_bytes) == 376 && offsetof(AreaDesc, segments_offset) == 384 &&
              offsetof(AreaDesc, segment_count) == 392 && offsetof(AreaDesc, hpmap_offset) == 400 &&
              offsetof(AreaDesc, hpmap_count) == 408 && offsetof(AreaDesc, state_offset) == 416 &&
              offsetof(AreaDesc, recs_offset) == 424 && offsetof(AreaDesc, rec_count) == 432 &&
              offsetof(AreaDesc, bitmap_offset) == 440 && offsetof(AreaDesc, bitmap_words) == 448);

using core::Rec;
using core::rec_of;
using core::rec_word;

/** The lock word's owner id for the keeper (holders are slot + 1). */
inline constexpr std::uint32_t kKeeperOwner = 0x7ffffffe;

struct alignas(64) AreaState {
  std::uint32_t lock;              ///< sync/word_lock.hpp: 0, holder slot + 1, or kKeeperOwner
  std::uint32_t pad0;
  std::uint64_t pad1[7];           ///< the lock alone on its cache line
  core::AreaCounters ctr;          ///< core::Area's counters, in place
  core::RecordState rs;            ///< journal and recovery counts (core/records.hpp)
};
static_assert(sizeof(AreaState) == 192 && alignof(AreaState) == 64);
static_assert(std::is_trivially_copyable_v<AreaState> && std::is_standard_layout_v<AreaState>);
static_assert(offsetof(AreaState, lock) == 0 && offsetof(AreaState, pad0) == 4 &&
              offsetof(AreaState, pad1) == 8 && offsetof(AreaState, ctr) == 64 &&
              offsetof(AreaState, rs) == 104);

struct alignas(64) PoolState {
  std::uint64_t attaches;          ///< attachments the keeper admitted
  std::uint64_t reaped_holders;    ///< holders whose process died, given back
  std::uint64_t keeper_pid;        ///< as the keeper sees itself
  std::uint64_t keeper_started_ns;
  std::uint64_t last_reap_ns;      ///< how long the last give-back of a gone holder took
};
static_assert(sizeof(PoolState) == 64 && alignof(PoolState) == 64);
static_assert(std::is_trivially_copyable_v<PoolState> && std::is_standard_layout_v<PoolState>);
static_assert(offsetof(PoolState, attaches) == 0 && offsetof(PoolState, reaped_holders) == 8 &&
              offsetof(PoolState, keeper_pid) == 16 && offsetof(PoolState, keeper_started_ns) == 24 &&
              offsetof(PoolState, last_reap_ns) == 32);

/** Written by the keeper only (holders read it to name one another). */
enum class HolderState : std::uint32_t { free = 0, attached = 1, dead = 2 /* gone, reap pending */ };

// ---- the enums stored in the files ----------------------------------------------
//
// Each enum a file holds has one encode/decode pair: the numbers are the file
// format (written out here, never a static_cast of the enum, so reordering an
// enum cannot change the format), and decode returns nullopt for a number it
// does not know, which the reader reports as a corrupt file.

constexpr std::uint32_t encode_policy(Policy p) noexcept { return p == Policy::nearest ? 1 : 0; }
constexpr std::optional<Policy> decode_policy(std::uint32_t v) noexcept {
  switch (v) {
    case 0: return Policy::kernel;
    case 1: return Policy::nearest;
    default: return std::nullopt;
  }
}

constexpr std::uint32_t encode_arch(Arch a) noexcept {
  switch (a) {
    case Arch::host: return 0;
    case Arch::x86_64: return 1;
    case Arch::arm64: return 2;
  }
  return 0;
}
constexpr std::optional<Arch> decode_arch(std::uint32_t v) noexcept {
  switch (v) {
    case 0: return Arch::host;
    case 1: return Arch::x86_64;
    case 2: return Arch::arm64;
    default: return std::nullopt;
  }
}

constexpr std::uint32_t encode_area_kind(config::AreaKind k) noexcept {
  switch (k) {
    case config::AreaKind::default_area: return 0;
    case config::AreaKind::pernuma: return 1;
    case config::AreaKind::numa: return 2;
    case config::AreaKind::device: return 3;
  }
  return 0;
}
constexpr std::optional<config::AreaKind> decode_area_kind(std::uint32_t v) noexcept {
  switch (v) {
    case 0: return config::AreaKind::default_area;
    case 1: return config::AreaKind::pernuma;
    case 2: return config::AreaKind::numa;
    case 3: return config::AreaKind::device;
    default: return std::nullopt;
  }
}

constexpr std::uint32_t encode_holder_state(HolderState s) noexcept { return static_cast<std::uint32_t>(s); }
constexpr std::optional<HolderState> decode_holder_state(std::uint32_t v) noexcept {
  switch (v) {
    case 0: return HolderState::free;
    case 1: return HolderState::attached;
    case 2: return HolderState::dead;
    default: return std::nullopt;
  }
}

/** The yes/no fields (iova_mode, addr_iova): 1 or 0, nothing else. */
constexpr std::uint32_t encode_flag(bool b) noexcept { return b ? 1 : 0; }
constexpr std::optional<bool> decode_flag(std::uint32_t v) noexcept {
  if (v > 1) return std::nullopt;
  return v == 1;
}

struct Holder {
  std::uint32_t state;             ///< encode_holder_state (hostile: decode, unknown = not attached)
  std::int32_t pid;                ///< as the keeper's PID namespace sees it (0: not visible)
  std::uint32_t uid;
  std::uint32_t pad;
  char comm[16];
  std::uint64_t attached_ns;
};
static_assert(sizeof(Holder) == 40 && alignof(Holder) == 8);
static_assert(std::is_trivially_copyable_v<Holder> && std::is_standard_layout_v<Holder>);
static_assert(offsetof(Holder, state) == 0 && offsetof(Holder, pid) == 4 && offsetof(Holder, uid) == 8 &&
              offsetof(Holder, pad) == 12 && offsetof(Holder, comm) == 16 &&
              offsetof(Holder, attached_ns) == 32);

struct NodeCtr {
  std::uint64_t local, other_node, default_area, pages, failed;
};
static_assert(sizeof(NodeCtr) == 40 && alignof(NodeCtr) == 8);
static_assert(std::is_trivially_copyable_v<NodeCtr> && std::is_standard_layout_v<NodeCtr>);
static_assert(offsetof(NodeCtr, local) == 0 && offsetof(NodeCtr, other_node) == 8 &&
              offsetof(NodeCtr, default_area) == 16 && offsetof(NodeCtr, pages) == 24 &&
              offsetof(NodeCtr, failed) == 32);

/** A9's counters are striped: a holder counts into stripe holder % kCounterStripes, each stripe
 *  on cache lines of its own, so that processes allocating at the same time do not pass one
 *  line back and forth on every allocation; a reader sums the stripes (node_counters). */
inline constexpr std::uint32_t kCounterStripes = 8;
/** One stripe: NodeCtr[node_slots], rounded up to whole 64-byte lines. */
constexpr std::uint64_t counter_stripe_bytes(std::uint32_t node_slots) noexcept {
  return (sizeof(NodeCtr) * std::uint64_t{node_slots} + 63) / 64 * 64;
}
/** The counters of node slot `slot` (< h.node_slots), summed over the stripes of a state file
 *  that a validated layout h describes. */
NodeCtr node_counters(const unsigned char* state, const LayoutHeader& h, std::uint32_t slot) noexcept;

// ---- building a layout -----------------------------------------------------------

struct AreaSpec {
  std::string name;
  std::string kind_name;
  std::string note;
  int node = -1;
  std::uint32_t kind = 0;           ///< encode_area_kind
  bool iova = false;
  std::uint64_t pages = 0;
  std::uint64_t mapped_bytes = 0;
  std::uint64_t huge_page_bytes = 0;
  std::vector<core::Segment> segments;
  std::vector<std::uint32_t> hpmap;   ///< hugetlb: the file's hugepage index per slot
};

struct PoolSpec {
  std::string name, params, backing, sysfs_root;
  std::uint32_t policy = 0, arch = 0;  ///< encode_policy, encode_arch
  std::uint32_t order_per_bit = 0;
  bool iova_mode = false;
  std::uint64_t created_ns = 0;
  std::uint32_t owner_uid = 0;
  std::int32_t group_gid = -1;
  std::uint32_t holder_capacity = kDefaultHolders;
  std::uint32_t node_slots = 2;
  std::vector<AreaSpec> areas;
};

/** The layout file of `spec` (validated), the state file's size in it.
 *  invalid_argument for a spec that does not fit the format. */
Result<std::vector<unsigned char>> make_layout(const PoolSpec& spec);

/** FNV-1a 64 of the image with its checksum field as zero. REQUIRES: at
 *  least a LayoutHeader. */
std::uint64_t layout_checksum(const unsigned char* data, std::size_t size) noexcept;

/** Checks a whole layout image: magic, version, sizes, every offset and
 *  length within its file and aligned (state offsets within state_bytes),
 *  the areas' shapes, segments, hugepage maps, the checksum. Errc::corrupt
 *  naming the first thing wrong. Never reads outside [data, data + size). */
Status validate_layout(const unsigned char* data, std::size_t size);

/** A validated layout, in this process's own memory. */
class Layout {
 public:
  /** Copies and validates. */
  static Result<Layout> from(const unsigned char* data, std::size_t size);
  const LayoutHeader& hdr() const noexcept { return *reinterpret_cast<const LayoutHeader*>(bytes_.data()); }
  std::uint32_t areas() const noexcept { return hdr().area_count; }
  const AreaDesc& desc(std::uint32_t i) const noexcept {
    return reinterpret_cast<const AreaDesc*>(bytes_.data() + hdr().areas_offset)[i];
  }
  /** Area i's geometry (cpu_base 0, core::kCmaAlignmentOrder). */
  core::AreaConfig area_config(std::uint32_t i) const;
  std::vector<std::uint32_t> hpmap(std::uint32_t i) const;
  const std::vector<unsigned char>& bytes() const noexcept { return bytes_; }

 private:
  std::vector<unsigned char> bytes_;
};

/** Where area i's parts are in a mapping of the state file (from the layout). */
struct AreaParts {
  AreaState* st = nullptr;
  core::Records rec;                ///< the records, with st->rs
  std::uint64_t* bitmap = nullptr;  ///< core::Area::storage_words words
};
AreaParts area_parts(const Layout& l, unsigned char* state, std::uint32_t i) noexcept;

/** The core::Area of area i over its state (cpu_base as given). init: a
 *  fresh area (reserve) rather than the live state other processes left. */
Result<core::Area> area_over(const Layout& l, const AreaParts& p, std::uint32_t i, std::uintptr_t cpu_base,
                             bool init);

/** The NUL-terminated string of a fixed field. */
std::string field(const char* f, std::size_t n);

/** A pool NAME: [A-Za-z0-9_.-], 1 to 48 characters, not starting with '.'. */
Status check_pool_name(std::string_view name);

}  // namespace numacma::shared
