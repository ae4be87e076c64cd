// src/os/vfio.cpp — see vfio.hpp.
#include "os/vfio.hpp"

#include <fcntl.h>
#include <linux/vfio.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>

#include "os/errno_error.hpp"

namespace numacma::os::vfio {

namespace {

std::string hex(std::uint64_t v) {
  char b[24];
  std::snprintf(b, sizeof b, "0x%" PRIx64, v);
  return b;
}

}  // namespace

Result<int> api_version(int container) {
  const int v = ::ioctl(container, VFIO_GET_API_VERSION);
  if (v < 0) return errno_error("ioctl(VFIO_GET_API_VERSION)", errno);
  return v;
}

Result<bool> has_type1v2(int container) {
  const int v = ::ioctl(container, VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU);
  if (v < 0) return errno_error("ioctl(VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU)", errno);
  return v != 0;
}

Result<bool> group_viable(int group) {
  vfio_group_status st{};
  st.argsz = sizeof st;
  if (::ioctl(group, VFIO_GROUP_GET_STATUS, &st) != 0)
    return errno_error("ioctl(VFIO_GROUP_GET_STATUS)", errno);
  return (st.flags & VFIO_GROUP_FLAGS_VIABLE) != 0;
}

Status group_set_container(int group, int container) {
  if (::ioctl(group, VFIO_GROUP_SET_CONTAINER, &container) != 0)
    return errno_error("ioctl(VFIO_GROUP_SET_CONTAINER)", errno);
  return {};
}

Status group_unset_container(int group) {
  if (::ioctl(group, VFIO_GROUP_UNSET_CONTAINER) != 0)
    return errno_error("ioctl(VFIO_GROUP_UNSET_CONTAINER)", errno);
  return {};
}

Status set_iommu_type1v2(int container) {
  if (::ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU) != 0)
    return errno_error("ioctl(VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU)", errno);
  return {};
}

Result<bool> has_noiommu(int container) {
  const int v = ::ioctl(container, VFIO_CHECK_EXTENSION, VFIO_NOIOMMU_IOMMU);
  if (v < 0) return errno_error("ioctl(VFIO_CHECK_EXTENSION, VFIO_NOIOMMU_IOMMU)", errno);
  return v != 0;
}

Status set_iommu_noiommu(int container) {
  if (::ioctl(container, VFIO_SET_IOMMU, VFIO_NOIOMMU_IOMMU) != 0)
    return errno_error("ioctl(VFIO_SET_IOMMU, VFIO_NOIOMMU_IOMMU)", errno);
  return {};
}

Result<IommuInfo> iommu_info(int container) {
  // First call learns the size the capability chain needs.
  vfio_iommu_type1_info probe{};
  probe.argsz = sizeof probe;
  if (::ioctl(container, VFIO_IOMMU_GET_INFO, &probe) != 0)
    return errno_error("ioctl(VFIO_IOMMU_GET_INFO)", errno);
  IommuInfo info;
  info.pgsizes = (probe.flags & VFIO_IOMMU_INFO_PGSIZES) != 0 ? probe.iova_pgsizes : 0;
  if ((probe.flags & VFIO_IOMMU_INFO_CAPS) == 0 || probe.argsz <= sizeof probe) return info;
  std::vector<std::uint8_t> buf(probe.argsz);
  auto* full = reinterpret_cast<vfio_iommu_type1_info*>(buf.data());
  full->argsz = probe.argsz;
  if (::ioctl(container, VFIO_IOMMU_GET_INFO, full) != 0)
    return errno_error("ioctl(VFIO_IOMMU_GET_INFO, capabilities)", errno);
  std::uint32_t off = full->cap_offset;
  for (int guard = 0; off != 0 && guard < 64; ++guard) {
    if (off < sizeof(vfio_iommu_type1_info) || off + sizeof(vfio_info_cap_header) > buf.size())
      return make_error(Errc::io_error, "VFIO_IOMMU_GET_INFO: capability offset out of range");
    vfio_info_cap_header hdr;
    std::memcpy(&hdr, buf.data() + off, sizeof hdr);
    if (hdr.id == VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE) {
      vfio_iommu_type1_info_cap_iova_range cap;
      if (off + sizeof cap > buf.size())
        return make_error(Errc::io_error, "VFIO_IOMMU_GET_INFO: truncated IOVA_RANGE capability");
      std::memcpy(&cap, buf.data() + off, sizeof cap);
      const std::size_t need = off + sizeof cap + std::size_t{cap.nr_iovas} * sizeof(vfio_iova_range);
      if (need > buf.size())
        return make_error(Errc::io_error, "VFIO_IOMMU_GET_INFO: truncated IOVA ranges");
      for (std::uint32_t i = 0; i < cap.nr_iovas; ++i) {
        vfio_iova_range r;
        std::memcpy(&r, buf.data() + off + sizeof cap + i * sizeof r, sizeof r);
        info.ranges.push_back({r.start, r.end});
      }
    } else if (hdr.id == VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL) {
      vfio_iommu_type1_info_dma_avail cap;
      if (off + sizeof cap > buf.size())
        return make_error(Errc::io_error, "VFIO_IOMMU_GET_INFO: truncated DMA_AVAIL capability");
      std::memcpy(&cap, buf.data() + off, sizeof cap);
      info.dma_avail = cap.avail;
    }
    off = hdr.next;
  }
  return info;
}

Status map_dma(int container, const void* vaddr, std::uint64_t iova, std::uint64_t bytes) {
  vfio_iommu_type1_dma_map m{};
  m.argsz = sizeof m;
  m.flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE;
  m.vaddr = reinterpret_cast<std::uintptr_t>(vaddr);
  m.iova = iova;
  m.size = bytes;
  if (::ioctl(container, VFIO_IOMMU_MAP_DMA, &m) != 0)
    return errno_error("ioctl(VFIO_IOMMU_MAP_DMA, vaddr " + hex(m.vaddr) + ", iova " + hex(iova) +
                           ", " + std::to_string(bytes) + " bytes)",
                       errno);
  return {};
}

Result<std::uint64_t> unmap_dma(int container, std::uint64_t iova, std::uint64_t bytes) {
  vfio_iommu_type1_dma_unmap u{};
  u.argsz = sizeof u;
  u.iova = iova;
  u.size = bytes;
  if (::ioctl(container, VFIO_IOMMU_UNMAP_DMA, &u) != 0)
    return errno_error("ioctl(VFIO_IOMMU_UNMAP_DMA, iova " + hex(iova) + ", " +
                           std::to_string(bytes) + " bytes)",
                       errno);
  return static_cast<std::uint64_t>(u.size);
}

Result<Fd> device_fd(int group, const std::string& bdf) {
  const int fd = ::ioctl(group, VFIO_GROUP_GET_DEVICE_FD, bdf.c_str());
  if (fd < 0) return errno_error("ioctl(VFIO_GROUP_GET_DEVICE_FD, " + bdf + ")", errno);
  return Fd(fd);
}

bool RegionInfo::mmap_ok() const noexcept { return (flags & VFIO_REGION_INFO_FLAG_MMAP) != 0; }
bool RegionInfo::readable() const noexcept { return (flags & VFIO_REGION_INFO_FLAG_READ) != 0; }
bool RegionInfo::writable() const noexcept { return (flags & VFIO_REGION_INFO_FLAG_WRITE) != 0; }

Result<RegionInfo> region_info(int device, std::uint32_t index) {
  vfio_region_info ri{};
  ri.argsz = sizeof ri;
  ri.index = index;
  if (::ioctl(device, VFIO_DEVICE_GET_REGION_INFO, &ri) != 0)
    return errno_error("ioctl(VFIO_DEVICE_GET_REGION_INFO, region " + std::to_string(index) + ")",
                       errno);
  RegionInfo r;
  r.index = index;
  r.flags = ri.flags;
  r.size = ri.size;
  r.offset = ri.offset;
  return r;
}

std::uint32_t config_region_index() noexcept { return VFIO_PCI_CONFIG_REGION_INDEX; }

Status read_at(int fd, std::uint64_t offset, void* out, std::size_t len) {
  const ssize_t n = ::pread(fd, out, len, static_cast<off_t>(offset));
  if (n < 0) return errno_error("pread(" + std::to_string(len) + " bytes at " + hex(offset) + ")", errno);
  if (static_cast<std::size_t>(n) != len)
    return make_error(Errc::io_error, "pread(" + std::to_string(len) + " bytes at " + hex(offset) +
                                          "): short read");
  return {};
}

Status write_at(int fd, std::uint64_t offset, const void* in, std::size_t len) {
  const ssize_t n = ::pwrite(fd, in, len, static_cast<off_t>(offset));
  if (n < 0) return errno_error("pwrite(" + std::to_string(len) + " bytes at " + hex(offset) + ")", errno);
  if (static_cast<std::size_t>(n) != len)
    return make_error(Errc::io_error, "pwrite(" + std::to_string(len) + " bytes at " + hex(offset) +
                                          "): short write");
  return {};
}

Result<void*> map_region(int device, const RegionInfo& r) {
  void* p = ::mmap(nullptr, r.size, PROT_READ | PROT_WRITE, MAP_SHARED, device,
                   static_cast<off_t>(r.offset));
  if (p == MAP_FAILED)
    return errno_error("mmap(region " + std::to_string(r.index) + ", " + std::to_string(r.size) +
                           " bytes)",
                       errno);
  return p;
}

std::uint64_t memlock_limit() noexcept {
  rlimit rl{};
  if (::getrlimit(RLIMIT_MEMLOCK, &rl) != 0) return 0;
  return rl.rlim_cur == RLIM_INFINITY ? ~std::uint64_t{0} : static_cast<std::uint64_t>(rl.rlim_cur);
}

bool can_lock_unlimited() noexcept { return ::geteuid() == 0; }

}  // namespace numacma::os::vfio
