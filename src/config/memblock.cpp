// src/config/memblock.cpp — see memblock.hpp.
#include "config/memblock.hpp"

#include <algorithm>
#include <cinttypes>
#include <cstdio>

namespace numacma::config {

namespace {

constexpr std::uint64_t kGiB = 1ULL << 30;

std::string hex(std::uint64_t v) {
  char b[24];
  std::snprintf(b, sizeof b, "0x%" PRIx64, v);
  return b;
}

std::string mib(std::uint64_t b) {
  char buf[32];
  if (b % (1ULL << 20) == 0)
    std::snprintf(buf, sizeof buf, "%" PRIu64 " MiB", b >> 20);
  else
    std::snprintf(buf, sizeof buf, "%" PRIu64 " KiB", b >> 10);
  return buf;
}

std::uint64_t align_down(std::uint64_t v, std::uint64_t a) { return v & ~(a - 1); }

}  // namespace

Arch host_arch() noexcept {
#if defined(__aarch64__)
  return Arch::arm64;
#else
  return Arch::x86_64;
#endif
}

const char* arch_name(Arch a) noexcept { return a == Arch::arm64 ? "arm64" : "x86_64"; }

Result<Arch> parse_arch(std::string_view t) {
  if (t == "x86_64" || t == "x86-64" || t == "amd64") return Arch::x86_64;
  if (t == "arm64" || t == "aarch64") return Arch::arm64;
  return make_error(Errc::invalid_argument,
                    "unknown architecture '" + std::string(t) + "' (x86_64 or arm64)");
}

std::vector<PhysRange> physical_layout(const topo::Topology& t) {
  std::vector<PhysRange> out;
  const bool blocks = std::any_of(t.nodes().begin(), t.nodes().end(),
                                  [](const topo::NodeInfo& n) { return !n.ranges.empty(); });
  if (blocks) {
    for (const topo::NodeInfo& n : t.nodes())
      for (const topo::MemRange& r : n.ranges) out.push_back({r.start, r.end, n.id});
  } else {
    // No memory blocks: a window per node, in id order, each at a 1 GiB boundary.
    std::uint64_t base = 0;
    for (const topo::NodeInfo& n : t.nodes()) {
      const std::uint64_t bytes = n.has_memory ? align_down(n.mem.total_bytes, core::kPageBytes) : 0;
      if (bytes != 0) out.push_back({base, base + bytes, n.id});
      base = (base + bytes + kGiB - 1) / kGiB * kGiB + (bytes == 0 ? kGiB : 0);
    }
  }
  std::sort(out.begin(), out.end(), [](const PhysRange& a, const PhysRange& b) { return a.start < b.start; });
  return out;
}

std::uint64_t default_area_limit(Arch arch, const std::vector<PhysRange>& layout) {
  const std::uint64_t end = layout.empty() ? 0 : layout.back().end;
  if (arch == Arch::arm64 && !layout.empty() && layout.front().start < k4G) return std::min(end, k4G);
  return end;
}

Memblock::Memblock(const std::vector<PhysRange>& memory, std::uint64_t reserved_low) {
  for (const PhysRange& r : memory) {
    if (r.end <= r.start) continue;
    PhysRange x = r;
    if (x.start < reserved_low) x.start = std::min(reserved_low, x.end);
    if (x.end > x.start) free_.push_back(x);
    end_ = std::max(end_, r.end);
  }
  std::sort(free_.begin(), free_.end(), [](const PhysRange& a, const PhysRange& b) { return a.start < b.start; });
}

void Memblock::carve(std::size_t i, std::uint64_t start, std::uint64_t size) {
  const PhysRange r = free_[i];
  std::vector<PhysRange> parts;
  if (start > r.start) parts.push_back({r.start, start, r.node});
  if (start + size < r.end) parts.push_back({start + size, r.end, r.node});
  free_.erase(free_.begin() + static_cast<long>(i));
  free_.insert(free_.begin() + static_cast<long>(i), parts.begin(), parts.end());
}

Result<std::uint64_t> Memblock::alloc_top_down(std::uint64_t size, std::uint64_t align,
                                               std::uint64_t lo, std::uint64_t hi, int nid) {
  for (std::size_t k = free_.size(); k-- > 0;) {
    const PhysRange& r = free_[k];
    if (nid >= 0 && r.node != nid) continue;
    const std::uint64_t top = std::min(r.end, hi), bottom = std::max(r.start, lo);
    if (top < bottom || top - bottom < size) continue;
    const std::uint64_t start = align_down(top - size, align);
    if (start < bottom) continue;
    carve(k, start, size);
    return start;
  }
  return make_error(Errc::no_memory, "no free " + mib(size) + " below " + hex(hi) +
                                         (nid >= 0 ? " on node " + std::to_string(nid) : std::string()));
}

Result<std::uint64_t> Memblock::alloc_bottom_up(std::uint64_t size, std::uint64_t align,
                                                std::uint64_t lo, std::uint64_t hi, int nid) {
  for (std::size_t k = 0; k < free_.size(); ++k) {
    const PhysRange& r = free_[k];
    if (nid >= 0 && r.node != nid) continue;
    const std::uint64_t top = std::min(r.end, hi), bottom = std::max(r.start, lo);
    const std::uint64_t start = (bottom + align - 1) & ~(align - 1);
    if (start < bottom || start > top || top - start < size) continue;
    carve(k, start, size);
    return start;
  }
  return make_error(Errc::no_memory, "no free " + mib(size) + " between " + hex(lo) + " and " + hex(hi) +
                                         (nid >= 0 ? " on node " + std::to_string(nid) : std::string()));
}

Result<std::uint64_t> Memblock::cma_reserve(std::uint64_t size, std::uint64_t limit, int nid) {
  if (size == 0 || size % kCmaMinAlignment != 0)
    return make_error(Errc::invalid_argument, "CMA area of " + std::to_string(size) +
                                                  " bytes: not a whole number of 2 MiB pageblocks");
  limit = align_down(limit, kCmaMinAlignment);
  if (limit == 0 || limit > end_) limit = end_;
  if (size > limit)
    return make_error(Errc::no_memory, "the area (" + mib(size) + ") exceeds the limit " + hex(limit) +
                                           " (the end of memory or the architecture's limit)");
  // Bottom-up from 4 GiB first, clear of the DMA/DMA32 zones, when memory reaches that far.
  if (end_ >= k4G + size) {
    if (Result<std::uint64_t> a = alloc_bottom_up(size, kCmaMinAlignment, k4G, limit, nid)) return a;
  }
  Result<std::uint64_t> a = alloc_top_down(size, kCmaMinAlignment, 0, limit, nid);
  if (a) return a;
  return make_error(Errc::no_memory,
                    "no free 2 MiB-aligned " + mib(size) + " range " +
                        (nid >= 0 ? "on node " + std::to_string(nid) + " (" + mib(free_bytes(nid)) + " left there)"
                                  : "on any node below " + hex(limit)) +
                        ": the kernel warns and reserves nothing (R4)");
}

Status Memblock::take(std::uint64_t start, std::uint64_t size, int nid) {
  for (std::size_t k = 0; k < free_.size(); ++k) {
    const PhysRange& r = free_[k];
    if (r.start <= start && start + size <= r.end && start + size >= start && (nid < 0 || r.node == nid)) {
      carve(k, start, size);
      return {};
    }
  }
  return make_error(Errc::no_memory, "the range " + hex(start) + " + " + mib(size) + " is not free" +
                                         (nid >= 0 ? " on node " + std::to_string(nid) : std::string()));
}

void Memblock::give_back(std::uint64_t start, std::uint64_t size, int nid) {
  PhysRange n{start, start + size, nid};
  auto it = std::lower_bound(free_.begin(), free_.end(), n,
                             [](const PhysRange& a, const PhysRange& b) { return a.start < b.start; });
  it = free_.insert(it, n);
  // Merge with the neighbours of the same node.
  if (it + 1 != free_.end() && (it + 1)->node == nid && (it + 1)->start == it->end) {
    it->end = (it + 1)->end;
    free_.erase(it + 1);
  }
  if (it != free_.begin() && (it - 1)->node == nid && (it - 1)->end == it->start) {
    (it - 1)->end = it->end;
    free_.erase(it);
  }
}

std::uint64_t Memblock::free_bytes(int nid) const noexcept {
  std::uint64_t b = 0;
  for (const PhysRange& r : free_)
    if (nid < 0 || r.node == nid) b += r.end - r.start;
  return b;
}

}  // namespace numacma::config
