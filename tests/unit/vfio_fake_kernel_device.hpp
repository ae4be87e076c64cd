// FakeKernel (vfio_fake_kernel.hpp, which tells the behaviour): a device's
// fd and regions (GET_DEVICE_FD, GET_REGION_INFO, pread/pwrite, the BAR0
// mmap), defined out of the class.
#pragma once

#include <linux/vfio.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>

#include "vfio_fake_kernel.hpp"

namespace fakevfio {

inline numacma::Result<int> FakeKernel::device_fd(int g, const std::string& bdf) {
  std::lock_guard<std::mutex> l(mu_);
  log("device_fd " + std::to_string(g) + " " + bdf);
  if (!is(g, Kind::group)) return err("VFIO_GROUP_GET_DEVICE_FD(" + bdf + ")", EBADF);
  const int id = fds_.at(g).group;
  GroupState& st = group_state_[id];
  if (st.container < 0 || !containers_[st.container].iommu)
    return err("VFIO_GROUP_GET_DEVICE_FD(" + bdf + ")", EINVAL);
  const auto& devs = groups_.at(id).devices;
  if (std::find(devs.begin(), devs.end(), bdf) == devs.end())
    return err("VFIO_GROUP_GET_DEVICE_FD(" + bdf + ")", ENODEV);
  ++st.devices_open;
  return new_fd({Kind::device, id, bdf});
}

inline numacma::Result<numacma::vfio::RegionInfo> FakeKernel::region_info(int d, std::uint32_t index) {
  std::lock_guard<std::mutex> l(mu_);
  if (!is(d, Kind::device)) return err("VFIO_DEVICE_GET_REGION_INFO", EBADF);
  numacma::vfio::RegionInfo r;
  r.index = index;
  r.offset = static_cast<std::uint64_t>(index) << kRegionShift;
  if (index == 0) {
    r.size = kBar0Bytes;
    r.flags = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE |
              (bar0_mmap ? VFIO_REGION_INFO_FLAG_MMAP : 0u);
  } else if (index == 2) {
    r.size = kBar2Bytes;
    r.flags = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;
  } else if (index <= 6) {
    r.size = 0;  // BAR absent (and no ROM)
  } else if (index == VFIO_PCI_CONFIG_REGION_INDEX) {
    r.size = kConfigBytes;
    r.flags = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;
  } else {
    return err("VFIO_DEVICE_GET_REGION_INFO(" + std::to_string(index) + ")", EINVAL);
  }
  return r;
}

inline numacma::Status FakeKernel::read_at(int fd, std::uint64_t offset, void* out, std::size_t len) {
  std::lock_guard<std::mutex> l(mu_);
  ++preads_;
  std::uint8_t* p = region_bytes(fd, offset, len);
  if (p == nullptr) return err("pread(" + std::to_string(len) + " bytes at " + hex(offset) + ")", EINVAL);
  std::memcpy(out, p, len);
  return {};
}

inline numacma::Status FakeKernel::write_at(int fd, std::uint64_t offset, const void* in, std::size_t len) {
  std::lock_guard<std::mutex> l(mu_);
  ++pwrites_;
  std::uint8_t* p = region_bytes(fd, offset, len);
  if (p == nullptr) return err("pwrite(" + std::to_string(len) + " bytes at " + hex(offset) + ")", EINVAL);
  const std::uint64_t index = offset >> kRegionShift, rel = offset & ((1ULL << kRegionShift) - 1);
  for (std::size_t i = 0; i < len; ++i) {
    if (index == VFIO_PCI_CONFIG_REGION_INDEX && rel + i < 4) continue;  // vendor/device ID: read-only
    p[i] = static_cast<const std::uint8_t*>(in)[i];
  }
  return {};
}

inline numacma::Result<void*> FakeKernel::map_region(int d, const numacma::vfio::RegionInfo& r) {
  std::lock_guard<std::mutex> l(mu_);
  log("mmap " + std::to_string(d) + " " + std::to_string(r.index));
  if (!is(d, Kind::device)) return err("mmap(region)", EBADF);
  if (r.index != 0 || !bar0_mmap || map_region_fails || r.size != kBar0Bytes) return err("mmap(region)", EINVAL);
  void* p = devs_.at(fds_.at(d).bdf).bar0.data();
  if (regions_.count(p) != 0) return err("mmap(region)", EEXIST);  // the container maps a BAR once
  regions_[p] = {d, r.size};
  return p;
}

inline void FakeKernel::unmap_region(void* addr, std::uint64_t bytes) noexcept {
  std::lock_guard<std::mutex> l(mu_);
  log("munmap");
  auto it = regions_.find(addr);
  if (it == regions_.end()) {
    violation("munmap of a BAR that is not mmapped");
    return;
  }
  if (it->second.bytes != bytes) violation("munmap of a BAR with the wrong size " + std::to_string(bytes));
  regions_.erase(it);
}

inline std::uint8_t* FakeKernel::region_bytes(int fd, std::uint64_t offset, std::size_t len) {
  if (!is(fd, Kind::device)) return nullptr;
  DeviceState& d = devs_.at(fds_.at(fd).bdf);
  const std::uint64_t index = offset >> kRegionShift, rel = offset & ((1ULL << kRegionShift) - 1);
  std::vector<std::uint8_t>* v = index == 0                              ? &d.bar0
                                 : index == 2                            ? &d.bar2
                                 : index == VFIO_PCI_CONFIG_REGION_INDEX ? &d.config
                                                                         : nullptr;
  if (v == nullptr || len == 0 || rel + len > v->size()) return nullptr;
  return v->data() + rel;
}

}  // namespace fakevfio
