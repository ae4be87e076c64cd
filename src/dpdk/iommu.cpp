// src/dpdk/iommu.cpp — see iommu.hpp.
#include "dpdk/iommu.hpp"

#include <rte_errno.h>
#include <rte_memory.h>
#include <rte_vfio.h>

#include <cerrno>
#include <mutex>
#include <string>

namespace numacma::dpdk::detail {

namespace {

using Ranges = std::vector<std::pair<std::uint64_t, std::uint64_t>>;

int add_list(const struct rte_memseg_list* msl, void* arg) {
  auto* out = static_cast<Ranges*>(arg);
  const auto base = reinterpret_cast<std::uintptr_t>(msl->base_va);
  if (base != 0 && msl->len > 0) out->emplace_back(base, base + msl->len - 1);
  return 0;
}

int add_seg(const struct rte_memseg_list*, const struct rte_memseg* ms, void* arg) {
  auto* out = static_cast<Ranges*>(arg);
  if (ms->iova != RTE_BAD_IOVA && ms->len > 0) out->emplace_back(ms->iova, ms->iova + ms->len - 1);
  return 0;
}

class DpdkIommu final : public ExternalIommu {
 public:
  explicit DpdkIommu(bool vfio) : vfio_(vfio) {}

  Status map(std::uintptr_t va, std::uint64_t iova, std::uint64_t bytes) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (!vfio_) return {};
    if (rte_vfio_container_dma_map(RTE_VFIO_DEFAULT_CONTAINER_FD, va, iova, bytes) == 0) {
      mapped_any_ = true;
      return {};
    }
    if (rte_errno == ENODEV && !mapped_any_) {  // no device in DPDK's container: nothing maps
      vfio_ = false;
      return {};
    }
    return make_error(Errc::io_error, std::string("rte_vfio_container_dma_map: ") + rte_strerror(rte_errno) +
                                          " (DPDK keeps at most 256 such mappings)");
  }

  Status unmap(std::uintptr_t va, std::uint64_t iova, std::uint64_t bytes) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (!vfio_) return {};
    if (rte_vfio_container_dma_unmap(RTE_VFIO_DEFAULT_CONTAINER_FD, va, iova, bytes) == 0) return {};
    return make_error(Errc::io_error, std::string("rte_vfio_container_dma_unmap: ") + rte_strerror(rte_errno));
  }

 private:
  std::mutex mu_;
  bool vfio_;
  bool mapped_any_ = false;
};

}  // namespace

Ranges dpdk_iova_ranges() {
  Ranges r;
  rte_memseg_list_walk(add_list, &r);
  rte_memseg_walk(add_seg, &r);
  r.emplace_back(0xfee00000ULL, 0xfeefffffULL);  // x86's MSI window: never DMA
  return r;
}

std::shared_ptr<ExternalIommu> dpdk_iommu(bool vfio) { return std::make_shared<DpdkIommu>(vfio); }

bool dpdk_uses_vfio_iommu() {
  return rte_vfio_is_enabled("vfio") != 0 && rte_vfio_noiommu_is_enabled() != 1;
}

}  // namespace numacma::dpdk::detail
