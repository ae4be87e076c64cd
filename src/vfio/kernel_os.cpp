// src/vfio/kernel_os.cpp — the real Kernel: every call forwards to src/os/vfio.hpp.
#include "os/os.hpp"
#include "os/shared.hpp"
#include "vfio/kernel.hpp"

namespace numacma::vfio {

namespace {

namespace ov = numacma::os::vfio;
namespace oi = numacma::os::iommufd;

class OsKernel final : public Kernel {
 public:
  Result<int> open(const std::string& path) override {
    Result<os::Fd> f = os::open_rw(path);
    if (!f) return std::move(f).error();
    return f->release();
  }
  void close(int fd) noexcept override { ov::Fd closing(fd); }
  Result<int> api_version(int c) override { return ov::api_version(c); }
  Result<bool> has_type1v2(int c) override { return ov::has_type1v2(c); }
  Result<bool> group_viable(int g) override { return ov::group_viable(g); }
  Status group_set_container(int g, int c) override { return ov::group_set_container(g, c); }
  Status group_unset_container(int g) override { return ov::group_unset_container(g); }
  Status set_iommu_type1v2(int c) override { return ov::set_iommu_type1v2(c); }
  Result<bool> has_noiommu(int c) override { return ov::has_noiommu(c); }
  Status set_iommu_noiommu(int c) override { return ov::set_iommu_noiommu(c); }
  Result<IommuInfo> iommu_info(int c) override { return ov::iommu_info(c); }
  Status map_dma(int c, std::uintptr_t vaddr, std::uint64_t iova, std::uint64_t bytes) override {
    return ov::map_dma(c, reinterpret_cast<const void*>(vaddr), iova, bytes);
  }
  Result<std::uint64_t> unmap_dma(int c, std::uint64_t iova, std::uint64_t bytes) override {
    return ov::unmap_dma(c, iova, bytes);
  }
  Result<int> device_fd(int g, const std::string& bdf) override {
    Result<ov::Fd> f = ov::device_fd(g, bdf);
    if (!f) return std::move(f).error();
    return f->release();
  }
  Result<RegionInfo> region_info(int d, std::uint32_t index) override { return ov::region_info(d, index); }
  std::uint32_t config_region_index() const noexcept override { return ov::config_region_index(); }
  Status read_at(int fd, std::uint64_t off, void* out, std::size_t len) override {
    return ov::read_at(fd, off, out, len);
  }
  Status write_at(int fd, std::uint64_t off, const void* in, std::size_t len) override {
    return ov::write_at(fd, off, in, len);
  }
  Result<void*> map_region(int d, const RegionInfo& r) override { return ov::map_region(d, r); }
  void unmap_region(void* addr, std::uint64_t bytes) noexcept override { (void)os::unmap(addr, bytes); }
  Result<std::uint32_t> ioas_alloc(int fd) override { return oi::ioas_alloc(fd); }
  Result<IoasRanges> ioas_iova_ranges(int fd, std::uint32_t ioas) override { return oi::ioas_iova_ranges(fd, ioas); }
  Status ioas_map(int fd, std::uint32_t ioas, std::uintptr_t vaddr, std::uint64_t iova, std::uint64_t bytes) override {
    return oi::ioas_map_fixed(fd, ioas, reinterpret_cast<const void*>(vaddr), iova, bytes);
  }
  Result<std::uint64_t> ioas_unmap(int fd, std::uint32_t ioas, std::uint64_t iova, std::uint64_t bytes) override {
    return oi::ioas_unmap(fd, ioas, iova, bytes);
  }
  Result<std::uint32_t> device_bind_iommufd(int d, int fd) override { return oi::device_bind(d, fd); }
  Status device_attach_ioas(int d, std::uint32_t ioas) override { return oi::device_attach(d, ioas); }
  std::uint64_t memlock_limit() noexcept override { return ov::memlock_limit(); }
  bool can_lock_unlimited() noexcept override { return ov::can_lock_unlimited(); }
};

}  // namespace

std::shared_ptr<Kernel> os_kernel() {
  static const std::shared_ptr<Kernel> k = std::make_shared<OsKernel>();
  return k;
}

}  // namespace numacma::vfio
