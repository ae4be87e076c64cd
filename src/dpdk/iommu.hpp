// src/dpdk/iommu.hpp — DPDK's IOMMU as numacma's ExternalIommu, and the IOVA
// space numacma may use beside DPDK's own.
//
//   DPDK in IOVA-as-VA mode maps its memory at IOVA = VA: every memseg list's
//   virtual range (reserved up front, filled as DPDK grows) is DPDK's IOVA
//   space, and every memseg's IOVA too (external memory). numacma takes its
//   IOVAs from what is left below 2^39 (the narrowest VT-d address width),
//   lowest first, and maps them in DPDK's default VFIO container with
//   rte_vfio_container_dma_map, so that DPDK's devices reach them.
#pragma once

#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "numacma/numacma.hpp"

namespace numacma::dpdk::detail {

/** The IOVA ranges DPDK uses itself, and x86's MSI window (inclusive). */
std::vector<std::pair<std::uint64_t, std::uint64_t>> dpdk_iova_ranges();

/** Maps through DPDK's default VFIO container when DPDK has one with an
 *  IOMMU (vfio); otherwise (vdevs only, no VFIO) there is nothing to map. */
std::shared_ptr<ExternalIommu> dpdk_iommu(bool vfio);

/** True when DPDK drives devices through VFIO with an IOMMU. */
bool dpdk_uses_vfio_iommu();

}  // namespace numacma::dpdk::detail
