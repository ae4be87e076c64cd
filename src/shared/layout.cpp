// src/shared/layout.cpp — building and validating the state file (layout.hpp).
#include "shared/layout.hpp"

#include <algorithm>
#include <cstring>
#include <type_traits>

namespace numacma::shared {

namespace {

static_assert(std::is_trivially_copyable_v<FileHeader> && std::is_trivially_copyable_v<AreaDesc>);
static_assert(sizeof(AreaState) % 64 == 0 && sizeof(PoolState) % 64 == 0);

std::uint64_t align_up(std::uint64_t v, std::uint64_t a) { return (v + a - 1) / a * a; }

Error corrupt(const std::string& what) {
  return make_error(Errc::corrupt, "state file: " + what);
}

bool put(char* dst, std::size_t n, const std::string& s) {
  if (s.size() >= n) return false;
  std::memset(dst, 0, n);
  std::memcpy(dst, s.data(), s.size());
  return true;
}

bool terminated(const char* f, std::size_t n) { return std::memchr(f, '\0', n) != nullptr; }

}  // namespace

std::string field(const char* f, std::size_t n) {
  const void* end = std::memchr(f, '\0', n);
  return std::string(f, end ? static_cast<const char*>(end) - f : n);
}

Status check_pool_name(std::string_view name) {
  const auto ok_char = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-';
  };
  if (name.empty() || name.size() > 48 || name.front() == '.' ||
      !std::all_of(name.begin(), name.end(), ok_char))
    return make_error(Errc::invalid_argument,
                      "pool name '" + std::string(name) +
                          "': use 1 to 48 of A-Z a-z 0-9 _ . - , not starting with '.'");
  return {};
}

std::uint64_t fixed_checksum(const unsigned char* data, std::size_t fixed_bytes) noexcept {
  constexpr std::size_t kField = offsetof(FileHeader, checksum);
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (std::size_t i = 0; i < fixed_bytes; ++i) {
    const unsigned char c = i >= kField && i < kField + sizeof(std::uint64_t) ? 0 : data[i];
    h = (h ^ c) * 0x100000001b3ULL;
  }
  return h;
}

Result<std::vector<unsigned char>> make_image(const PoolSpec& spec) {
  const auto bad = [](const std::string& why) { return make_error(Errc::invalid_argument, why); };
  if (spec.areas.size() > kMaxAreas) return bad("more than " + std::to_string(kMaxAreas) + " areas");
  if (spec.holder_capacity == 0 || spec.holder_capacity > kMaxHolders) return bad("bad holder capacity");
  if (spec.node_slots == 0 || spec.node_slots > kMaxNodeSlots) return bad("bad node count");

  // Offsets: the fixed part first, then the mutable one.
  std::uint64_t off = sizeof(FileHeader);
  const std::uint64_t areas_offset = off;
  off += sizeof(AreaDesc) * spec.areas.size();
  std::vector<std::uint64_t> seg_off, map_off;
  for (const AreaSpec& a : spec.areas) {
    seg_off.push_back(off);
    off += sizeof(Seg) * a.segments.size();
    map_off.push_back(off);
    off = align_up(off + sizeof(std::uint32_t) * a.hpmap.size(), 8);
  }
  const std::uint64_t fixed_bytes = off;
  off = align_up(off, 64);
  const std::uint64_t pool_offset = off;
  off += sizeof(PoolState);
  const std::uint64_t holders_offset = off;
  off += sizeof(Holder) * spec.holder_capacity;
  const std::uint64_t nodes_offset = off;
  off += sizeof(NodeCtr) * spec.node_slots;
  std::vector<std::uint64_t> state_off, rec_off, bm_off, rec_n;
  for (const AreaSpec& a : spec.areas) {
    if (a.pages == 0 || a.pages % (std::uint64_t{1} << spec.order_per_bit) != 0)
      return bad("area " + a.name + ": bad page count");
    if (a.pages > (std::uint64_t{1} << 40)) return bad("area " + a.name + " is too large");
    off = align_up(off, 64);
    state_off.push_back(off);
    off += sizeof(AreaState);
    rec_off.push_back(off);
    rec_n.push_back(a.pages >> spec.order_per_bit);
    off += sizeof(Rec) * rec_n.back();
    bm_off.push_back(off);
    off += sizeof(std::uint64_t) * ((rec_n.back() + 63) / 64);
  }
  const std::uint64_t file_bytes = align_up(off, 4096);

  std::vector<unsigned char> img(file_bytes, 0);
  FileHeader h{};
  std::memcpy(h.magic, kMagic, sizeof kMagic);
  h.version = kVersion;
  h.header_bytes = sizeof(FileHeader);
  h.file_bytes = file_bytes;
  h.fixed_bytes = fixed_bytes;
  h.area_desc_bytes = sizeof(AreaDesc);
  h.area_count = static_cast<std::uint32_t>(spec.areas.size());
  h.areas_offset = areas_offset;
  h.pool_offset = pool_offset;
  h.holders_offset = holders_offset;
  h.holder_capacity = spec.holder_capacity;
  h.node_slots = spec.node_slots;
  h.nodes_offset = nodes_offset;
  h.policy = spec.policy;
  h.arch = spec.arch;
  h.iova_mode = spec.iova_mode ? 1 : 0;
  h.order_per_bit = spec.order_per_bit;
  h.created_ns = spec.created_ns;
  if (!put(h.name, sizeof h.name, spec.name) || !put(h.params, sizeof h.params, spec.params) ||
      !put(h.backing, sizeof h.backing, spec.backing) ||
      !put(h.sysfs_root, sizeof h.sysfs_root, spec.sysfs_root))
    return bad("name, params, backing or sysfs root too long for the state file");

  for (std::size_t i = 0; i < spec.areas.size(); ++i) {
    const AreaSpec& a = spec.areas[i];
    AreaDesc d{};
    if (!put(d.name, sizeof d.name, a.name) || !put(d.kind_name, sizeof d.kind_name, a.kind_name) ||
        !put(d.path, sizeof d.path, a.path))
      return bad("area " + a.name + ": name or path too long for the state file");
    put(d.note, sizeof d.note, a.note.substr(0, sizeof d.note - 1));
    d.node = a.node;
    d.kind = a.kind;
    d.addr_iova = a.iova ? 1 : 0;
    d.order_per_bit = spec.order_per_bit;
    d.page_size = 4096;
    d.pages = a.pages;
    d.mapped_bytes = a.mapped_bytes;
    d.huge_page_bytes = a.huge_page_bytes;
    d.segments_offset = seg_off[i];
    d.segment_count = a.segments.size();
    d.hpmap_offset = map_off[i];
    d.hpmap_count = a.hpmap.size();
    d.state_offset = state_off[i];
    d.recs_offset = rec_off[i];
    d.rec_count = rec_n[i];
    d.bitmap_offset = bm_off[i];
    d.bitmap_words = (rec_n[i] + 63) / 64;
    std::memcpy(img.data() + areas_offset + i * sizeof(AreaDesc), &d, sizeof d);
    for (std::size_t s = 0; s < a.segments.size(); ++s) {
      const Seg sg{a.segments[s].first_page, a.segments[s].pages, a.segments[s].dma_base};
      std::memcpy(img.data() + seg_off[i] + s * sizeof(Seg), &sg, sizeof sg);
    }
    if (!a.hpmap.empty())
      std::memcpy(img.data() + map_off[i], a.hpmap.data(), a.hpmap.size() * sizeof(std::uint32_t));
  }
  std::memcpy(img.data(), &h, sizeof h);
  const std::uint64_t sum = fixed_checksum(img.data(), fixed_bytes);
  std::memcpy(img.data() + offsetof(FileHeader, checksum), &sum, sizeof sum);
  if (Status v = validate(img.data(), img.size()); !v) return bad("internal: " + v.error().message);
  return img;
}

Status validate(const unsigned char* data, std::size_t size) {
  if (size < sizeof(FileHeader))
    return corrupt("truncated: " + std::to_string(size) + " bytes, less than its " +
                   std::to_string(sizeof(FileHeader)) + "-byte header");
  FileHeader h;
  std::memcpy(&h, data, sizeof h);
  if (std::memcmp(h.magic, kMagic, sizeof kMagic) != 0) return corrupt("bad magic: not a numacma state file");
  if (h.version != kVersion)
    return corrupt("version " + std::to_string(h.version) + ", this numacma reads version " +
                   std::to_string(kVersion));
  if (h.header_bytes != sizeof(FileHeader) || h.area_desc_bytes != sizeof(AreaDesc))
    return corrupt("header or area record size differs from this numacma's (another build?)");
  if (h.file_bytes != size)
    return corrupt("truncated or extended: " + std::to_string(size) + " bytes, the header says " +
                   std::to_string(h.file_bytes));
  // Every range [off, off + len) inside the file, and aligned.
  const auto in_file = [&](std::uint64_t off, std::uint64_t count, std::uint64_t elem,
                           std::uint64_t align) {
    if (off % align != 0 || off > size) return false;
    if (elem != 0 && count > (size - off) / elem) return false;
    return true;
  };
  const auto range_err = [&](const std::string& what, std::uint64_t off, std::uint64_t len) {
    return corrupt(what + " at offset " + std::to_string(off) + " (+" + std::to_string(len) +
                   ") lies outside the file (" + std::to_string(size) + " bytes) or is misaligned");
  };
  if (h.fixed_bytes < sizeof(FileHeader) || h.fixed_bytes > size)
    return range_err("the fixed part", 0, h.fixed_bytes);
  if (h.area_count > kMaxAreas) return corrupt("area count " + std::to_string(h.area_count) + " is too large");
  if (h.holder_capacity == 0 || h.holder_capacity > kMaxHolders)
    return corrupt("holder capacity " + std::to_string(h.holder_capacity) + " out of range");
  if (h.node_slots == 0 || h.node_slots > kMaxNodeSlots)
    return corrupt("node count " + std::to_string(h.node_slots) + " out of range");
  if (!in_file(h.areas_offset, h.area_count, sizeof(AreaDesc), 8) ||
      h.areas_offset + h.area_count * sizeof(AreaDesc) > h.fixed_bytes)
    return range_err("the area table", h.areas_offset, h.area_count * sizeof(AreaDesc));
  if (!in_file(h.pool_offset, 1, sizeof(PoolState), 64) || h.pool_offset < h.fixed_bytes)
    return range_err("the pool state", h.pool_offset, sizeof(PoolState));
  if (!in_file(h.holders_offset, h.holder_capacity, sizeof(Holder), 8) || h.holders_offset < h.fixed_bytes)
    return range_err("the holder table", h.holders_offset, h.holder_capacity * sizeof(Holder));
  if (!in_file(h.nodes_offset, h.node_slots, sizeof(NodeCtr), 8) || h.nodes_offset < h.fixed_bytes)
    return range_err("the node counters", h.nodes_offset, h.node_slots * sizeof(NodeCtr));
  if (h.policy > 1 || h.arch > 2 || h.iova_mode > 1 || h.order_per_bit > 9)
    return corrupt("policy, arch, mode or order_per_bit out of range");
  if (!terminated(h.name, sizeof h.name) || !terminated(h.params, sizeof h.params) ||
      !terminated(h.backing, sizeof h.backing) || !terminated(h.sysfs_root, sizeof h.sysfs_root))
    return corrupt("an unterminated string in the header");

  for (std::uint32_t i = 0; i < h.area_count; ++i) {
    AreaDesc d;
    std::memcpy(&d, data + h.areas_offset + i * sizeof(AreaDesc), sizeof d);
    const std::string an = "area " + std::to_string(i);
    if (!terminated(d.name, sizeof d.name) || !terminated(d.kind_name, sizeof d.kind_name) ||
        !terminated(d.path, sizeof d.path) || !terminated(d.note, sizeof d.note))
      return corrupt(an + ": an unterminated string");
    if (d.page_size != 4096) return corrupt(an + ": page size " + std::to_string(d.page_size) + ", not 4096");
    if (d.order_per_bit != h.order_per_bit) return corrupt(an + ": order_per_bit differs from the pool's");
    if (d.pages == 0 || d.pages > (std::uint64_t{1} << 40) ||
        d.pages % (std::uint64_t{1} << d.order_per_bit) != 0)
      return corrupt(an + ": page count " + std::to_string(d.pages) + " out of range");
    if (d.rec_count != d.pages >> d.order_per_bit || d.bitmap_words != (d.rec_count + 63) / 64)
      return corrupt(an + ": record or bitmap size does not match its page count");
    if (d.kind > 3 || d.addr_iova > 1) return corrupt(an + ": kind out of range");
    if (d.mapped_bytes < d.pages * 4096 || d.mapped_bytes % 4096 != 0)
      return corrupt(an + ": mapped size " + std::to_string(d.mapped_bytes) + " smaller than the area");
    if (!in_file(d.segments_offset, d.segment_count, sizeof(Seg), 8) ||
        d.segments_offset + d.segment_count * sizeof(Seg) > h.fixed_bytes)
      return range_err(an + "'s segments", d.segments_offset, d.segment_count * sizeof(Seg));
    if (!in_file(d.hpmap_offset, d.hpmap_count, sizeof(std::uint32_t), 4) ||
        d.hpmap_offset + d.hpmap_count * sizeof(std::uint32_t) > h.fixed_bytes)
      return range_err(an + "'s hugepage map", d.hpmap_offset, d.hpmap_count * 4);
    if (!in_file(d.state_offset, 1, sizeof(AreaState), 64) || d.state_offset < h.fixed_bytes)
      return range_err(an + "'s state", d.state_offset, sizeof(AreaState));
    if (!in_file(d.recs_offset, d.rec_count, sizeof(Rec), 8) || d.recs_offset < h.fixed_bytes)
      return range_err(an + "'s records", d.recs_offset, d.rec_count * sizeof(Rec));
    if (!in_file(d.bitmap_offset, d.bitmap_words, sizeof(std::uint64_t), 8) || d.bitmap_offset < h.fixed_bytes)
      return range_err(an + "'s bitmap", d.bitmap_offset, d.bitmap_words * 8);
    // Segments partition [0, pages) in order, whole bits each.
    if (d.segment_count == 0 || d.segment_count > d.pages) return corrupt(an + ": bad segment count");
    std::uint64_t next = 0;
    for (std::uint64_t s = 0; s < d.segment_count; ++s) {
      Seg sg;
      std::memcpy(&sg, data + d.segments_offset + s * sizeof(Seg), sizeof sg);
      if (sg.first_page != next || sg.pages == 0 || sg.pages > d.pages - next ||
          sg.pages % (std::uint64_t{1} << d.order_per_bit) != 0 || sg.dma_base % 4096 != 0 ||
          sg.dma_base + (sg.pages * 4096 - 1) < sg.dma_base)
        return corrupt(an + ": segment " + std::to_string(s) + " does not fit the area");
      next += sg.pages;
    }
    if (next != d.pages) return corrupt(an + ": segments do not cover the area");
    // Hugetlb: a map of every file hugepage, a permutation.
    if (d.huge_page_bytes != 0) {
      if ((d.huge_page_bytes != (2ULL << 20) && d.huge_page_bytes != (1ULL << 30)) ||
          d.mapped_bytes % d.huge_page_bytes != 0 || d.hpmap_count != d.mapped_bytes / d.huge_page_bytes)
        return corrupt(an + ": hugepage size or map does not match its size");
      std::vector<bool> seen(d.hpmap_count, false);
      for (std::uint64_t k = 0; k < d.hpmap_count; ++k) {
        std::uint32_t idx;
        std::memcpy(&idx, data + d.hpmap_offset + k * 4, 4);
        if (idx >= d.hpmap_count || seen[idx])
          return corrupt(an + ": the hugepage map is not a permutation (slot " + std::to_string(k) + ")");
        seen[idx] = true;
      }
    } else if (d.hpmap_count != 0) {
      return corrupt(an + ": a hugepage map without hugepages");
    }
  }
  std::uint64_t want;
  std::memcpy(&want, data + offsetof(FileHeader, checksum), sizeof want);
  if (fixed_checksum(data, h.fixed_bytes) != want)
    return corrupt("checksum of the fixed part does not match (damaged file)");
  return {};
}

core::AreaConfig area_config(const unsigned char* base, std::uint32_t i) {
  const AreaDesc& d = area_desc(base, i);
  core::AreaConfig c;
  c.name = field(d.name, sizeof d.name);
  c.node = d.node;
  c.page_size = d.page_size;
  c.pages = d.pages;
  c.order_per_bit = d.order_per_bit;
  c.max_align_order = 8;
  const Seg* segs = at<Seg>(base, d.segments_offset);
  for (std::uint64_t s = 0; s < d.segment_count; ++s)
    c.segments.push_back({segs[s].first_page, segs[s].pages, segs[s].dma_base});
  return c;
}

Status restore_records(const unsigned char* base, std::uint32_t i, core::Area& area) {
  const AreaDesc& d = area_desc(base, i);
  const std::uint32_t holders = header(base).holder_capacity;
  area.clear_allocations();
  const std::uint64_t* recs = at<std::uint64_t>(base, d.recs_offset);
  for (std::uint64_t b = 0; b < d.rec_count; ++b) {
    const Rec r = rec_of(recs[b]);
    if (r.holder == 0) continue;
    if (r.holder > holders || r.pages == 0)
      return corrupt("area " + area.name() + ": record " + std::to_string(b) + " names holder " +
                     std::to_string(r.holder) + " of " + std::to_string(r.pages) + " pages");
    if (Status s = area.restore(b << d.order_per_bit, r.pages); !s) return corrupt(s.error().message);
  }
  return {};
}

}  // namespace numacma::shared
