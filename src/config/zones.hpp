// src/config/zones.hpp — the kernel's memory zones, as dma-direct picks them
// for page buffers (pure logic: no system calls).
//
//   x86-64 (ZONE_DMA and ZONE_DMA32 on, as in Debian's kernel and tests/kernel):
//     0 ------ 16 MiB ------------------ 4 GiB ------------------------->
//     |  DMA   |          DMA32           |          NORMAL
//   arm64 (Debian's 6.1 kernel, ZONE_DMA and ZONE_DMA32 on: zone_dma_bits is
//   32 where firmware sets no lower DMA limit, and both zones end at
//   max_zone_phys(32), so ZONE_DMA32 is empty):
//     start of memory ---------------- 4 GiB (capped at the end of memory) -->
//     |               DMA               |             NORMAL
//     (memory that starts above 4 GiB is all ZONE_DMA)
//
// dma-direct (kernel/dma/direct.c, __dma_direct_alloc_pages) asks the page
// allocator for the zone the device's coherent mask falls into
// (dma_direct_optimal_gfp_mask): GFP_DMA at or below zone_dma_limit, GFP_DMA32
// at or below 32 bits, else no zone flag. When the pages it gets lie above the
// mask it frees them and tries again lower: GFP_DMA32 (from no flag, for a
// mask below 64 bits), then GFP_DMA. A request "in zone Z" may take memory of
// Z or of any zone below it, on the asked node when it has such memory, else
// on the nearest node that has (the zonelist: populated zones only).
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "config/memblock.hpp"

namespace numacma::config {

enum class Zone { dma, dma32, normal };
const char* zone_name(Zone z) noexcept;  // "ZONE_DMA", "ZONE_DMA32", "ZONE_NORMAL"

struct Zones {
  std::uint64_t dma_end = 0;        ///< first address above ZONE_DMA
  std::uint64_t dma32_end = 0;      ///< first address above ZONE_DMA32 (>= dma_end)
  std::uint64_t zone_dma_limit = 0; ///< a mask at or below it asks for GFP_DMA

  /** dma_direct_optimal_gfp_mask: the zone a request of this coherent mask asks for first. */
  Zone for_mask(std::uint64_t mask) const noexcept;
  /** Where __dma_direct_alloc_pages tries next after pages of zone `z` were
   *  above `mask`: ZONE_DMA32 from ZONE_NORMAL (a mask below 64 bits), then
   *  ZONE_DMA; nullopt after ZONE_DMA. */
  std::optional<Zone> retry(Zone z, std::uint64_t mask) const noexcept;
  /** Memory of zone `z` and of the zones below it lies under this address. */
  std::uint64_t end(Zone z) const noexcept;
  /** Where zone `z` itself starts (the end of the zone below it). */
  std::uint64_t start(Zone z) const noexcept;
};

/** The zones of `arch` over this memory layout (physical_layout()). */
Zones zones_of(Arch arch, const std::vector<PhysRange>& layout);

/** The node whose memory a page request for `node` in zone `z` (or below)
 *  comes from: `node` itself when it has memory below `zones.end(z)`, else the
 *  first node of `by_distance` (the other nodes, nearest first) that has; -1
 *  when none has. */
int zone_node(const Zones& zones, Zone z, int node, const std::vector<PhysRange>& layout,
              const std::vector<int>& by_distance);

/** Where the pages a request for `node` in zone `z` gets first begin: the
 *  start of the highest zone at or below `z` in which `node` has memory (the
 *  zonelist tries a node's zones from the highest down, each with its own
 *  free lists: a ZONE_DMA page serves a ZONE_DMA32 request only when
 *  ZONE_DMA32 cannot). 0 when the node has no memory below end(z). */
std::uint64_t zone_floor(const Zones& zones, Zone z, int node, const std::vector<PhysRange>& layout);

}  // namespace numacma::config
