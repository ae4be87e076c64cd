// FakeKernel (vfio_fake_kernel.hpp, which tells the behaviour): iommufd's
// IOAS calls and the device cdev's BIND_IOMMUFD / ATTACH_IOMMUFD_PT,
// defined out of the class.
#pragma once

#include <cerrno>
#include <cstdint>
#include <limits>
#include <string>

#include "vfio_fake_kernel.hpp"

namespace fakevfio {

inline numacma::Result<std::uint32_t> FakeKernel::ioas_alloc(int fd) {
  std::lock_guard<std::mutex> l(mu_);
  log("ioas_alloc " + std::to_string(fd));
  if (!is(fd, Kind::iommufd)) return err("IOMMU_IOAS_ALLOC", EBADF);
  IommufdState& st = iommufds_[fd];
  const std::uint32_t id = st.next++;
  st.ioas[id];
  return id;
}

inline numacma::Result<numacma::vfio::IoasRanges> FakeKernel::ioas_iova_ranges(int fd, std::uint32_t ioas) {
  std::lock_guard<std::mutex> l(mu_);
  if (!is(fd, Kind::iommufd)) return err("IOMMU_IOAS_IOVA_RANGES", EBADF);
  auto it = iommufds_[fd].ioas.find(ioas);
  if (it == iommufds_[fd].ioas.end()) return err("IOMMU_IOAS_IOVA_RANGES", ENOENT);
  numacma::vfio::IoasRanges out;
  out.alignment = iova_alignment;
  if (it->second.devices.empty())  // a fresh IOAS: everything, until a device narrows it
    out.ranges.push_back({0, std::numeric_limits<std::uint64_t>::max()});
  else
    for (const Range& r : ranges) out.ranges.push_back({r.first, r.last});
  return out;
}

inline numacma::Status FakeKernel::ioas_map(int fd, std::uint32_t ioas, std::uintptr_t vaddr, std::uint64_t iova,
                                            std::uint64_t bytes) {
  std::lock_guard<std::mutex> l(mu_);
  log("ioas_map " + hex(iova) + " " + hex(bytes));
  const std::string what = "IOMMU_IOAS_MAP(iova " + hex(iova) + ", " + hex(bytes) + " bytes)";
  if (!is(fd, Kind::iommufd)) return err(what, EBADF);
  auto it = iommufds_[fd].ioas.find(ioas);
  if (it == iommufds_[fd].ioas.end()) return err(what, ENOENT);
  const std::vector<Range> valid = it->second.devices.empty() ? std::vector<Range>{} : ranges;
  return map_into(it->second.maps, fd, vaddr, iova, bytes, what, valid, std::numeric_limits<std::uint64_t>::max());
}

inline numacma::Result<std::uint64_t> FakeKernel::ioas_unmap(int fd, std::uint32_t ioas, std::uint64_t iova,
                                                             std::uint64_t bytes) {
  std::lock_guard<std::mutex> l(mu_);
  log("ioas_unmap " + hex(iova) + " " + hex(bytes));
  const std::string what = "IOMMU_IOAS_UNMAP(iova " + hex(iova) + ", " + hex(bytes) + " bytes)";
  if (!is(fd, Kind::iommufd)) return err(what, EBADF);
  auto it = iommufds_[fd].ioas.find(ioas);
  if (it == iommufds_[fd].ioas.end()) return err(what, ENOENT);
  return unmap_from(it->second.maps, iova, bytes, what);
}

inline numacma::Result<std::uint32_t> FakeKernel::device_bind_iommufd(int d, int fd) {
  std::lock_guard<std::mutex> l(mu_);
  log("bind_iommufd " + std::to_string(d) + " " + std::to_string(fd));
  auto it = fds_.find(d);
  if (it == fds_.end() || it->second.kind != Kind::device || !it->second.cdev) {
    violation("VFIO_DEVICE_BIND_IOMMUFD on fd " + std::to_string(d) + ", which is not a device cdev");
    return err("VFIO_DEVICE_BIND_IOMMUFD", EBADF);
  }
  if (!is(fd, Kind::iommufd)) return err("VFIO_DEVICE_BIND_IOMMUFD", EBADF);
  Fd& dev = it->second;
  if (dev.iommufd >= 0) return err("VFIO_DEVICE_BIND_IOMMUFD", EINVAL);
  // DMA ownership of the whole group: refused while another driver or the
  // legacy group node has it.
  if (!groups_.at(dev.group).viable || group_state_[dev.group].fd >= 0) return err("VFIO_DEVICE_BIND_IOMMUFD", EBUSY);
  dev.iommufd = fd;
  iommufds_[fd].bound.insert(d);
  return static_cast<std::uint32_t>(d);  // any id will do
}

inline numacma::Status FakeKernel::device_attach_ioas(int d, std::uint32_t ioas) {
  std::lock_guard<std::mutex> l(mu_);
  log("attach_ioas " + std::to_string(d) + " " + std::to_string(ioas));
  if (!is(d, Kind::device)) return err("VFIO_DEVICE_ATTACH_IOMMUFD_PT", EBADF);
  Fd& dev = fds_.at(d);
  if (!dev.cdev) return err("VFIO_DEVICE_ATTACH_IOMMUFD_PT", EINVAL);
  if (dev.ioas != 0) return err("VFIO_DEVICE_ATTACH_IOMMUFD_PT", EINVAL);
  auto it = iommufds_[dev.iommufd].ioas.find(ioas);
  if (it == iommufds_[dev.iommufd].ioas.end()) return err("VFIO_DEVICE_ATTACH_IOMMUFD_PT", ENOENT);
  for (const auto& [a, m] : it->second.maps)  // the device reserves the MSI window
    if (a <= kMsiLast && kMsiFirst <= a + m.bytes - 1) return err("VFIO_DEVICE_ATTACH_IOMMUFD_PT", EADDRINUSE);
  it->second.devices.insert(d);
  dev.ioas = ioas;
  return {};
}

inline void FakeKernel::detach_cdev(const Fd& f, int fd) {
  if (f.iommufd < 0) return;
  IommufdState& st = iommufds_[f.iommufd];
  st.bound.erase(fd);
  if (f.ioas != 0) st.ioas[f.ioas].devices.erase(fd);
}

}  // namespace fakevfio
