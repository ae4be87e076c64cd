// src/shared/layout.cpp — building and validating a pool's layout file (layout.hpp).
#include "shared/layout.hpp"

#include <algorithm>
#include <cstring>
#include <type_traits>

#include "core/limits.hpp"

namespace numacma::shared {

namespace {

static_assert(std::is_trivially_copyable_v<LayoutHeader> && std::is_trivially_copyable_v<AreaDesc>);
static_assert(std::is_trivially_copyable_v<AreaState> && std::is_standard_layout_v<AreaState>);

std::uint64_t align_up(std::uint64_t v, std::uint64_t a) { return (v + a - 1) / a * a; }

Error corrupt(const std::string& what) { return make_error(Errc::corrupt, "pool layout: " + what); }

bool put(char* dst, std::size_t n, const std::string& s) {
  if (s.size() >= n) return false;
  std::memset(dst, 0, n);
  std::memcpy(dst, s.data(), s.size());
  return true;
}

bool terminated(const char* f, std::size_t n) { return std::memchr(f, '\0', n) != nullptr; }

/** [off, off + count * elem) inside [0, size) and off aligned; no overflow. */
bool fits(std::uint64_t off, std::uint64_t count, std::uint64_t elem, std::uint64_t align, std::uint64_t size) {
  if (off % align != 0 || off > size) return false;
  return elem == 0 || count <= (size - off) / elem;
}

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

std::uint64_t layout_checksum(const unsigned char* data, std::size_t size) noexcept {
  constexpr std::size_t kField = offsetof(LayoutHeader, checksum);
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (std::size_t i = 0; i < size; ++i) {
    const unsigned char c = i >= kField && i < kField + sizeof(std::uint64_t) ? 0 : data[i];
    h = (h ^ c) * 0x100000001b3ULL;
  }
  return h;
}

NodeCtr node_counters(const unsigned char* state, const LayoutHeader& h, std::uint32_t slot) noexcept {
  NodeCtr sum{};
  for (std::uint32_t s = 0; s < kCounterStripes; ++s) {
    NodeCtr c;
    std::memcpy(&c, state + h.nodes_offset + s * counter_stripe_bytes(h.node_slots) + slot * sizeof(NodeCtr),
                sizeof c);
    sum.local += c.local;
    sum.other_node += c.other_node;
    sum.default_area += c.default_area;
    sum.pages += c.pages;
    sum.failed += c.failed;
  }
  return sum;
}

Result<std::vector<unsigned char>> make_layout(const PoolSpec& spec) {
  const auto bad = [](const std::string& why) { return make_error(Errc::invalid_argument, why); };
  if (spec.areas.size() > kMaxAreas) return bad("more than " + std::to_string(kMaxAreas) + " areas");
  if (spec.holder_capacity == 0 || spec.holder_capacity > kMaxHolders) return bad("bad holder capacity");
  if (spec.node_slots == 0 || spec.node_slots > kMaxNodeSlots) return bad("bad node count");

  // The layout file: header, descriptors, segments, hugepage maps.
  std::uint64_t off = sizeof(LayoutHeader);
  const std::uint64_t areas_offset = off;
  off += sizeof(AreaDesc) * spec.areas.size();
  std::vector<std::uint64_t> seg_off, map_off;
  for (const AreaSpec& a : spec.areas) {
    seg_off.push_back(off);
    off += sizeof(Seg) * a.segments.size();
    map_off.push_back(off);
    off = align_up(off + sizeof(std::uint32_t) * a.hpmap.size(), 8);
  }
  const std::uint64_t layout_bytes = off;

  // The state file: the pool's part, then each area's.
  std::uint64_t st = 0;
  const std::uint64_t pool_offset = st;
  st += sizeof(PoolState);
  const std::uint64_t holders_offset = st;
  st += sizeof(Holder) * spec.holder_capacity;
  st = align_up(st, 64);  // each counter stripe on lines of its own
  const std::uint64_t nodes_offset = st;
  st += kCounterStripes * counter_stripe_bytes(spec.node_slots);
  std::vector<std::uint64_t> state_off, rec_off, bm_off, rec_n, bm_words;
  for (const AreaSpec& a : spec.areas) {
    if (a.pages == 0 || a.pages % (std::uint64_t{1} << spec.order_per_bit) != 0)
      return bad("area " + a.name + ": bad page count");
    if (a.pages > core::kMaxAreaPages) return bad("area " + a.name + " is too large");
    core::AreaConfig c;
    c.pages = a.pages;
    c.order_per_bit = spec.order_per_bit;
    st = align_up(st, 64);
    state_off.push_back(st);
    st += sizeof(AreaState);
    rec_off.push_back(st);
    rec_n.push_back(a.pages >> spec.order_per_bit);
    st += sizeof(Rec) * rec_n.back();
    bm_off.push_back(st);
    bm_words.push_back(core::Area::storage_words(c));
    st += sizeof(std::uint64_t) * bm_words.back();
  }
  const std::uint64_t state_bytes = align_up(st, kPageBytes);

  std::vector<unsigned char> img(layout_bytes, 0);
  LayoutHeader h{};
  std::memcpy(h.magic, kMagic, sizeof kMagic);
  h.version = kVersion;
  h.header_bytes = sizeof(LayoutHeader);
  h.layout_bytes = layout_bytes;
  h.state_bytes = state_bytes;
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
  h.iova_mode = encode_flag(spec.iova_mode);
  h.order_per_bit = spec.order_per_bit;
  h.created_ns = spec.created_ns;
  h.owner_uid = spec.owner_uid;
  h.group_gid = spec.group_gid;
  if (!put(h.name, sizeof h.name, spec.name) || !put(h.params, sizeof h.params, spec.params) ||
      !put(h.backing, sizeof h.backing, spec.backing) ||
      !put(h.sysfs_root, sizeof h.sysfs_root, spec.sysfs_root))
    return bad("name, params, backing or sysfs root too long for the pool's layout");

  for (std::size_t i = 0; i < spec.areas.size(); ++i) {
    const AreaSpec& a = spec.areas[i];
    AreaDesc d{};
    if (!put(d.name, sizeof d.name, a.name) || !put(d.kind_name, sizeof d.kind_name, a.kind_name))
      return bad("area " + a.name + ": name or kind too long for the pool's layout");
    put(d.note, sizeof d.note, a.note.substr(0, sizeof d.note - 1));
    d.node = a.node;
    d.kind = a.kind;
    d.addr_iova = encode_flag(a.iova);
    d.order_per_bit = spec.order_per_bit;
    d.page_size = kPageBytes;
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
    d.bitmap_words = bm_words[i];
    std::memcpy(img.data() + areas_offset + i * sizeof(AreaDesc), &d, sizeof d);
    for (std::size_t s = 0; s < a.segments.size(); ++s) {
      const Seg sg{a.segments[s].first_page, a.segments[s].pages, a.segments[s].dma_base};
      std::memcpy(img.data() + seg_off[i] + s * sizeof(Seg), &sg, sizeof sg);
    }
    if (!a.hpmap.empty())
      std::memcpy(img.data() + map_off[i], a.hpmap.data(), a.hpmap.size() * sizeof(std::uint32_t));
  }
  std::memcpy(img.data(), &h, sizeof h);
  const std::uint64_t sum = layout_checksum(img.data(), img.size());
  std::memcpy(img.data() + offsetof(LayoutHeader, checksum), &sum, sizeof sum);
  if (Status v = validate_layout(img.data(), img.size()); !v) return bad("internal: " + v.error().message);
  return img;
}

namespace {

Status validate_area(const unsigned char* data, const LayoutHeader& h, std::uint32_t i) {
  AreaDesc d;
  std::memcpy(&d, data + h.areas_offset + i * sizeof(AreaDesc), sizeof d);
  const std::string an = "area " + std::to_string(i);
  const auto range_err = [&](const std::string& what) {
    return corrupt(an + "'s " + what + " lies outside its file or is misaligned");
  };
  if (!terminated(d.name, sizeof d.name) || !terminated(d.kind_name, sizeof d.kind_name) ||
      !terminated(d.note, sizeof d.note))
    return corrupt(an + ": an unterminated string");
  if (d.page_size != kPageBytes)
    return corrupt(an + ": page size " + std::to_string(d.page_size) + ", not " + std::to_string(kPageBytes));
  if (d.order_per_bit != h.order_per_bit) return corrupt(an + ": order_per_bit differs from the pool's");
  if (d.pages == 0 || d.pages > core::kMaxAreaPages || d.pages % (std::uint64_t{1} << d.order_per_bit) != 0)
    return corrupt(an + ": page count " + std::to_string(d.pages) + " out of range");
  core::AreaConfig c;
  c.pages = d.pages;
  c.order_per_bit = d.order_per_bit;
  if (d.rec_count != d.pages >> d.order_per_bit || d.bitmap_words != core::Area::storage_words(c))
    return corrupt(an + ": record or bitmap size does not match its page count");
  if (!decode_area_kind(d.kind) || !decode_flag(d.addr_iova)) return corrupt(an + ": kind out of range");
  if (d.node < 0 || d.node >= static_cast<std::int32_t>(kMaxNodeSlots)) return corrupt(an + ": node out of range");
  if (d.mapped_bytes < d.pages * kPageBytes || d.mapped_bytes % kPageBytes != 0)
    return corrupt(an + ": mapped size " + std::to_string(d.mapped_bytes) + " smaller than the area");
  if (!fits(d.segments_offset, d.segment_count, sizeof(Seg), 8, h.layout_bytes)) return range_err("segments");
  if (!fits(d.hpmap_offset, d.hpmap_count, sizeof(std::uint32_t), 4, h.layout_bytes))
    return range_err("hugepage map");
  if (!fits(d.state_offset, 1, sizeof(AreaState), 64, h.state_bytes)) return range_err("state");
  if (!fits(d.recs_offset, d.rec_count, sizeof(Rec), 8, h.state_bytes)) return range_err("records");
  if (!fits(d.bitmap_offset, d.bitmap_words, sizeof(std::uint64_t), 8, h.state_bytes)) return range_err("bitmap");
  // Segments partition [0, pages) in order, whole bits each.
  if (d.segment_count == 0 || d.segment_count > d.pages) return corrupt(an + ": bad segment count");
  std::uint64_t next = 0;
  for (std::uint64_t s = 0; s < d.segment_count; ++s) {
    Seg sg;
    std::memcpy(&sg, data + d.segments_offset + s * sizeof(Seg), sizeof sg);
    if (sg.first_page != next || sg.pages == 0 || sg.pages > d.pages - next ||
        sg.pages % (std::uint64_t{1} << d.order_per_bit) != 0 || sg.dma_base % kPageBytes != 0 ||
        sg.dma_base + (sg.pages * kPageBytes - 1) < sg.dma_base)
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
  return {};
}

}  // namespace

Status validate_layout(const unsigned char* data, std::size_t size) {
  if (size < sizeof(LayoutHeader))
    return corrupt("truncated: " + std::to_string(size) + " bytes, less than its " +
                   std::to_string(sizeof(LayoutHeader)) + "-byte header");
  LayoutHeader h;
  std::memcpy(&h, data, sizeof h);
  if (std::memcmp(h.magic, kMagic, sizeof kMagic) != 0) return corrupt("bad magic: not a numacma pool layout");
  if (h.version != kVersion)
    return corrupt("version " + std::to_string(h.version) + ", this numacma reads version " +
                   std::to_string(kVersion));
  if (h.header_bytes != sizeof(LayoutHeader) || h.area_desc_bytes != sizeof(AreaDesc))
    return corrupt("header or area record size differs from this numacma's (another build?)");
  if (h.layout_bytes != size)
    return corrupt("truncated or extended: " + std::to_string(size) + " bytes, the header says " +
                   std::to_string(h.layout_bytes));
  if (h.state_bytes == 0 || h.state_bytes % kPageBytes != 0 || h.state_bytes > core::kMaxRequestBytes)
    return corrupt("state size " + std::to_string(h.state_bytes) + " out of range");
  if (h.area_count > kMaxAreas) return corrupt("area count " + std::to_string(h.area_count) + " is too large");
  if (h.holder_capacity == 0 || h.holder_capacity > kMaxHolders)
    return corrupt("holder capacity " + std::to_string(h.holder_capacity) + " out of range");
  if (h.node_slots == 0 || h.node_slots > kMaxNodeSlots)
    return corrupt("node count " + std::to_string(h.node_slots) + " out of range");
  if (!fits(h.areas_offset, h.area_count, sizeof(AreaDesc), 8, size)) return corrupt("the area table lies outside the file");
  if (!fits(h.pool_offset, 1, sizeof(PoolState), 64, h.state_bytes) ||
      !fits(h.holders_offset, h.holder_capacity, sizeof(Holder), 8, h.state_bytes) ||
      !fits(h.nodes_offset, kCounterStripes, counter_stripe_bytes(h.node_slots), 8, h.state_bytes))
    return corrupt("the pool state, holder table or node counters lie outside the state file");
  if (!decode_policy(h.policy) || !decode_arch(h.arch) || !decode_flag(h.iova_mode) ||
      h.order_per_bit > core::kMaxOrderPerBit)
    return corrupt("policy, arch, mode or order_per_bit out of range");
  if (!terminated(h.name, sizeof h.name) || !terminated(h.params, sizeof h.params) ||
      !terminated(h.backing, sizeof h.backing) || !terminated(h.sysfs_root, sizeof h.sysfs_root))
    return corrupt("an unterminated string in the header");
  for (std::uint32_t i = 0; i < h.area_count; ++i)
    if (Status s = validate_area(data, h, i); !s) return s;
  std::uint64_t want;
  std::memcpy(&want, data + offsetof(LayoutHeader, checksum), sizeof want);
  if (layout_checksum(data, size) != want) return corrupt("checksum does not match (damaged file)");
  return {};
}

Result<Layout> Layout::from(const unsigned char* data, std::size_t size) {
  if (Status v = validate_layout(data, size); !v) return std::move(v).error();
  Layout l;
  l.bytes_.assign(data, data + size);
  return l;
}

core::AreaConfig Layout::area_config(std::uint32_t i) const {
  const AreaDesc& d = desc(i);
  core::AreaConfig c;
  c.name = field(d.name, sizeof d.name);
  c.node = d.node;
  c.page_size = d.page_size;
  c.pages = d.pages;
  c.order_per_bit = d.order_per_bit;
  c.max_align_order = core::kCmaAlignmentOrder;
  const auto* segs = reinterpret_cast<const Seg*>(bytes_.data() + d.segments_offset);
  for (std::uint64_t s = 0; s < d.segment_count; ++s)
    c.segments.push_back({segs[s].first_page, segs[s].pages, segs[s].dma_base});
  return c;
}

std::vector<std::uint32_t> Layout::hpmap(std::uint32_t i) const {
  const AreaDesc& d = desc(i);
  const auto* m = reinterpret_cast<const std::uint32_t*>(bytes_.data() + d.hpmap_offset);
  return std::vector<std::uint32_t>(m, m + d.hpmap_count);
}

AreaParts area_parts(const Layout& l, unsigned char* state, std::uint32_t i) noexcept {
  const AreaDesc& d = l.desc(i);
  AreaParts p;
  p.st = reinterpret_cast<AreaState*>(state + d.state_offset);
  p.rec.words = reinterpret_cast<std::uint64_t*>(state + d.recs_offset);
  p.rec.count = d.rec_count;
  p.rec.opb = d.order_per_bit;
  p.rec.holders = l.hdr().holder_capacity;
  p.rec.st = &p.st->rs;
  p.bitmap = reinterpret_cast<std::uint64_t*>(state + d.bitmap_offset);
  return p;
}

Result<core::Area> area_over(const Layout& l, const AreaParts& p, std::uint32_t i, std::uintptr_t cpu_base,
                             bool init) {
  core::AreaConfig cfg = l.area_config(i);
  cfg.cpu_base = cpu_base;
  return core::Area::create_over(std::move(cfg), core::AreaStorage{p.bitmap, &p.st->ctr}, init);
}

}  // namespace numacma::shared
