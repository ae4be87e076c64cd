// src/config/zones.cpp — see zones.hpp.
#include "config/zones.hpp"

#include <algorithm>

namespace numacma::config {

namespace {

constexpr std::uint64_t kMask32 = 0xffffffffULL;
/** x86-64: MAX_DMA_PFN, the first 16 MiB; zone_dma_limit DMA_BIT_MASK(24). */
constexpr std::uint64_t kX86DmaEnd = 16ULL << 20;

bool has_memory_in(const std::vector<PhysRange>& layout, int node, std::uint64_t from, std::uint64_t end) {
  return std::any_of(layout.begin(), layout.end(), [&](const PhysRange& r) {
    return r.node == node && r.start < end && r.end > from && r.end > r.start;
  });
}
bool has_memory_below(const std::vector<PhysRange>& layout, int node, std::uint64_t end) {
  return has_memory_in(layout, node, 0, end);
}

}  // namespace

const char* zone_name(Zone z) noexcept {
  switch (z) {
    case Zone::dma: return "ZONE_DMA";
    case Zone::dma32: return "ZONE_DMA32";
    case Zone::normal: return "ZONE_NORMAL";
  }
  return "?";
}

Zone Zones::for_mask(std::uint64_t mask) const noexcept {
  if (mask <= zone_dma_limit) return Zone::dma;
  if (mask <= kMask32) return Zone::dma32;
  return Zone::normal;
}

std::optional<Zone> Zones::retry(Zone z, std::uint64_t mask) const noexcept {
  // `phys_limit < DMA_BIT_MASK(64) && !(gfp & (GFP_DMA32 | GFP_DMA))`, then
  // `!(gfp & GFP_DMA)`: both zones are configured in the kernels modelled.
  if (z == Zone::normal && mask < ~std::uint64_t{0}) return Zone::dma32;
  if (z != Zone::dma) return Zone::dma;
  return std::nullopt;
}

std::uint64_t Zones::end(Zone z) const noexcept {
  switch (z) {
    case Zone::dma: return dma_end;
    case Zone::dma32: return dma32_end;
    case Zone::normal: break;
  }
  return ~std::uint64_t{0};
}

std::uint64_t Zones::start(Zone z) const noexcept {
  switch (z) {
    case Zone::dma: return 0;
    case Zone::dma32: return dma_end;
    case Zone::normal: break;
  }
  return dma32_end;
}

Zones zones_of(Arch arch, const std::vector<PhysRange>& layout) {
  Zones z;
  if (arch == Arch::x86_64) {
    z.dma_end = kX86DmaEnd;
    z.dma32_end = kMask32 + 1;
    z.zone_dma_limit = (1ULL << 24) - 1;
    return z;
  }
  // arm64 (zone_sizes_init, max_zone_phys(32), zone_dma_bits 32): ZONE_DMA
  // reaches 4 GiB, or the end of memory below that; all of memory when it
  // starts above 4 GiB. ZONE_DMA32 ends at the same place.
  const std::uint64_t start = layout.empty() ? 0 : layout.front().start;
  const std::uint64_t end = layout.empty() ? 0 : layout.back().end;
  z.dma_end = start > kMask32 ? end : std::min(end, kMask32 + 1);
  z.dma32_end = z.dma_end;
  z.zone_dma_limit = kMask32;
  return z;
}

int zone_node(const Zones& zones, Zone z, int node, const std::vector<PhysRange>& layout,
              const std::vector<int>& by_distance) {
  const std::uint64_t end = zones.end(z);
  if (has_memory_below(layout, node, end)) return node;
  for (int n : by_distance)
    if (has_memory_below(layout, n, end)) return n;
  return -1;
}

std::uint64_t zone_floor(const Zones& zones, Zone z, int node, const std::vector<PhysRange>& layout) {
  for (Zone at = z;;) {
    if (zones.start(at) < zones.end(at) && has_memory_in(layout, node, zones.start(at), zones.end(at)))
      return zones.start(at);
    if (at == Zone::dma) return 0;
    at = at == Zone::normal ? Zone::dma32 : Zone::dma;
  }
}

}  // namespace numacma::config
