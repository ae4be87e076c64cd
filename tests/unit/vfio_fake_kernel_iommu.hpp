// FakeKernel (vfio_fake_kernel.hpp, which tells the behaviour): the container,
// group and IOMMU calls (open, close, SET_CONTAINER, SET_IOMMU, GET_INFO,
// MAP_DMA, UNMAP_DMA), defined out of the class.
#pragma once

#include <sys/mman.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <string>
#include <vector>

#include "vfio_fake_kernel.hpp"

namespace fakevfio {

inline numacma::Result<int> FakeKernel::open(const std::string& path) {
  std::lock_guard<std::mutex> l(mu_);
  log("open " + path);
  if (path == dev_root + "/vfio") {
    if (container_open_errno != 0) return err("open(" + path + ")", container_open_errno);
    const int fd = new_fd({Kind::container, -1, {}});
    containers_[fd];
    return fd;
  }
  if (path == iommu_path()) {
    if (!iommufd) return err("open(" + path + ")", ENOENT);
    if (iommufd_open_errno != 0) return err("open(" + path + ")", iommufd_open_errno);
    const int fd = new_fd({Kind::iommufd, -1, {}});
    iommufds_[fd];
    return fd;
  }
  const std::string cdevs_dir = dev_root + "/devices/";
  if (path.compare(0, cdevs_dir.size(), cdevs_dir) == 0) {
    const std::string name = path.substr(cdevs_dir.size());
    for (const auto& [bdf, n] : cdev_of_) {
      if (n != name) continue;
      if (!cdevs) break;
      if (cdev_open_errno != 0) return err("open(" + path + ")", cdev_open_errno);
      for (const auto& [id, g] : groups_)
        if (std::find(g.devices.begin(), g.devices.end(), bdf) != g.devices.end()) {
          Fd f{Kind::device, id, bdf};
          f.cdev = true;
          return new_fd(std::move(f));
        }
    }
    return err("open(" + path + ")", ENOENT);
  }
  const std::string prefix = dev_root + "/";
  if (path.compare(0, prefix.size(), prefix) != 0) return err("open(" + path + ")", ENOENT);
  std::string num = path.substr(prefix.size());
  const bool noiommu_node = num.compare(0, 8, "noiommu-") == 0;
  if (noiommu_node) num = num.substr(8);
  if (num.empty() || num.find_first_not_of("0123456789") != std::string::npos)
    return err("open(" + path + ")", ENOENT);
  const int id = std::stoi(num);
  auto g = groups_.find(id);
  if (g == groups_.end() || g->second.noiommu != noiommu_node) return err("open(" + path + ")", ENOENT);
  if (g->second.open_errno != 0) return err("open(" + path + ")", g->second.open_errno);
  if (g->second.noiommu && !rawio) return err("open(" + path + ")", EPERM);
  GroupState& st = group_state_[id];
  if (st.fd >= 0) return err("open(" + path + ")", EBUSY);  // one opener at a time
  st.fd = new_fd({Kind::group, id, {}});
  return st.fd;
}

inline void FakeKernel::close(int fd) noexcept {
  std::lock_guard<std::mutex> l(mu_);
  log("close " + std::to_string(fd));
  auto it = fds_.find(fd);
  if (it == fds_.end()) {
    violation("close of fd " + std::to_string(fd) + ", which is not open");
    return;
  }
  const Fd f = it->second;
  fds_.erase(it);
  switch (f.kind) {
    case Kind::container: {
      Container& c = containers_[fd];
      if (!c.groups.empty()) violation("container " + std::to_string(fd) + " closed with groups still in it");
      if (!c.maps.empty()) violation("container " + std::to_string(fd) + " closed with mappings");
      containers_.erase(fd);
      break;
    }
    case Kind::group: {
      GroupState& st = group_state_[f.group];
      if (st.container >= 0) {
        violation("group " + std::to_string(f.group) + " closed while still in container " +
                  std::to_string(st.container));
        leave_container(f.group, st);
      }
      if (st.devices_open > 0)
        violation("group " + std::to_string(f.group) + " closed while device fds are open");
      st.fd = -1;
      break;
    }
    case Kind::device: {
      if (f.cdev) detach_cdev(f, fd);
      else --group_state_[f.group].devices_open;
      for (const auto& [p, r] : regions_)
        if (r.fd == fd) violation("device fd " + std::to_string(fd) + " closed while its BAR is mmapped");
      break;
    }
    case Kind::iommufd: {
      IommufdState& st = iommufds_[fd];
      if (!st.bound.empty()) violation("iommufd " + std::to_string(fd) + " closed with devices still bound");
      for (const auto& [id, a] : st.ioas)
        if (!a.maps.empty())
          violation("iommufd " + std::to_string(fd) + " closed with " + std::to_string(a.maps.size()) +
                    " mapping(s) left in IOAS " + std::to_string(id));
      iommufds_.erase(fd);
      break;
    }
  }
}

inline numacma::Result<int> FakeKernel::api_version(int c) {
  std::lock_guard<std::mutex> l(mu_);
  if (!is(c, Kind::container)) return err("VFIO_GET_API_VERSION", EBADF);
  return api;
}

inline numacma::Result<bool> FakeKernel::has_type1v2(int c) {
  std::lock_guard<std::mutex> l(mu_);
  if (!is(c, Kind::container)) return err("VFIO_CHECK_EXTENSION", EBADF);
  return type1v2;
}

inline numacma::Result<bool> FakeKernel::group_viable(int g) {
  std::lock_guard<std::mutex> l(mu_);
  if (!is(g, Kind::group)) return err("VFIO_GROUP_GET_STATUS", EBADF);
  return groups_.at(fds_.at(g).group).viable;
}

inline numacma::Status FakeKernel::group_set_container(int g, int c) {
  std::lock_guard<std::mutex> l(mu_);
  log("set_container " + std::to_string(g) + " " + std::to_string(c));
  if (!is(g, Kind::group) || !is(c, Kind::container)) return err("VFIO_GROUP_SET_CONTAINER", EBADF);
  const int id = fds_.at(g).group;
  GroupState& st = group_state_[id];
  if (st.container >= 0) return err("VFIO_GROUP_SET_CONTAINER", EINVAL);
  if (!groups_.at(id).viable) return err("VFIO_GROUP_SET_CONTAINER", EPERM);
  Container& k = containers_[c];
  const bool noiommu = groups_.at(id).noiommu;
  if (noiommu && !rawio) return err("VFIO_GROUP_SET_CONTAINER", EPERM);
  if (!k.groups.empty() && k.noiommu != noiommu) return err("VFIO_GROUP_SET_CONTAINER", EPERM);  // never mixed
  st.container = c;
  k.groups.insert(id);
  k.noiommu = noiommu;
  return {};
}

inline numacma::Status FakeKernel::group_unset_container(int g) {
  std::lock_guard<std::mutex> l(mu_);
  log("unset_container " + std::to_string(g));
  if (!is(g, Kind::group)) return err("VFIO_GROUP_UNSET_CONTAINER", EBADF);
  const int id = fds_.at(g).group;
  GroupState& st = group_state_[id];
  if (st.container < 0) return err("VFIO_GROUP_UNSET_CONTAINER", EINVAL);
  if (st.devices_open > 0) return err("VFIO_GROUP_UNSET_CONTAINER", EBUSY);
  leave_container(id, st);
  return {};
}

inline numacma::Status FakeKernel::set_iommu_type1v2(int c) {
  std::lock_guard<std::mutex> l(mu_);
  log("set_iommu " + std::to_string(c));
  if (!is(c, Kind::container)) return err("VFIO_SET_IOMMU", EBADF);
  Container& k = containers_[c];
  if (k.iommu) return err("VFIO_SET_IOMMU", EBUSY);
  if (k.groups.empty()) return err("VFIO_SET_IOMMU", EINVAL);
  if (k.noiommu) return err("VFIO_SET_IOMMU", ENODEV);  // type1 serves no no-IOMMU container
  if (set_iommu_errno != 0 && set_iommu_failures > 0) {
    --set_iommu_failures;
    return err("VFIO_SET_IOMMU", set_iommu_errno);
  }
  k.iommu = true;
  return {};
}

inline numacma::Result<bool> FakeKernel::has_noiommu(int c) {
  std::lock_guard<std::mutex> l(mu_);
  if (!is(c, Kind::container)) return err("VFIO_CHECK_EXTENSION", EBADF);
  return noiommu_mode;
}

inline numacma::Status FakeKernel::set_iommu_noiommu(int c) {
  std::lock_guard<std::mutex> l(mu_);
  log("set_iommu_noiommu " + std::to_string(c));
  if (!is(c, Kind::container)) return err("VFIO_SET_IOMMU", EBADF);
  Container& k = containers_[c];
  if (k.iommu) return err("VFIO_SET_IOMMU", EBUSY);
  if (k.groups.empty() || !k.noiommu || !noiommu_mode) return err("VFIO_SET_IOMMU", ENODEV);
  if (!rawio) return err("VFIO_SET_IOMMU", EPERM);
  if (set_iommu_errno != 0 && set_iommu_failures > 0) {
    --set_iommu_failures;
    return err("VFIO_SET_IOMMU", set_iommu_errno);
  }
  k.iommu = true;
  return {};
}

inline numacma::Result<numacma::vfio::IommuInfo> FakeKernel::iommu_info(int c) {
  std::lock_guard<std::mutex> l(mu_);
  if (!is(c, Kind::container)) return err("VFIO_IOMMU_GET_INFO", EBADF);
  const Container& k = containers_[c];
  if (k.noiommu) violation("VFIO_IOMMU_GET_INFO on a no-IOMMU container");
  if (!k.iommu) return err("VFIO_IOMMU_GET_INFO", EINVAL);
  numacma::vfio::IommuInfo info;
  info.pgsizes = pgsizes;
  for (const Range& r : ranges) info.ranges.push_back({r.first, r.last});
  info.dma_avail = report_dma_avail ? static_cast<std::int64_t>(dma_entry_limit) -
                                          static_cast<std::int64_t>(k.maps.size())
                                    : -1;
  return info;
}

inline numacma::Status FakeKernel::map_dma(int c, std::uintptr_t vaddr, std::uint64_t iova, std::uint64_t bytes) {
  std::lock_guard<std::mutex> l(mu_);
  log("map " + hex(iova) + " " + hex(bytes));
  const std::string what = "VFIO_IOMMU_MAP_DMA(iova " + hex(iova) + ", " + hex(bytes) + " bytes)";
  if (!is(c, Kind::container)) return err(what, EBADF);
  Container& k = containers_[c];
  if (!k.iommu) return err(what, EINVAL);
  if (k.noiommu) {
    violation(what + " on a no-IOMMU container");
    return err(what, ENOTTY);
  }
  return map_into(k.maps, c, vaddr, iova, bytes, what, ranges, dma_entry_limit);
}

inline numacma::Status FakeKernel::map_into(std::map<std::uint64_t, FakeMapping>& maps, int owner,
                                            std::uintptr_t vaddr, std::uint64_t iova, std::uint64_t bytes,
                                            const std::string& what, const std::vector<Range>& valid_ranges,
                                            std::uint64_t limit) {
  ++map_calls_;
  if (fail_map_nth != 0 && map_calls_ == fail_map_nth) return err(what, fail_map_errno);
  if (bytes == 0 || ((iova | bytes | vaddr) & 0xfff) != 0) return err(what, EINVAL);
  if (iova + bytes - 1 < iova || vaddr + bytes - 1 < vaddr) return err(what, EINVAL);
  if (vaddr == 0 || !mapped_here(vaddr, bytes)) return err(what, EFAULT);
  const bool valid = std::any_of(valid_ranges.begin(), valid_ranges.end(), [&](const Range& r) {
    return r.first <= iova && iova + bytes - 1 <= r.last;
  }) || valid_ranges.empty();
  if (!valid) return err(what, EINVAL);
  for (const auto& [a, m] : maps)
    if (a <= iova + bytes - 1 && iova <= a + m.bytes - 1) return err(what, EEXIST);
  if (maps.size() >= limit) return err(what, ENOSPC);
  maps[iova] = FakeMapping{owner, vaddr, iova, bytes};
  return {};
}

inline numacma::Result<std::uint64_t> FakeKernel::unmap_dma(int c, std::uint64_t iova, std::uint64_t bytes) {
  std::lock_guard<std::mutex> l(mu_);
  log("unmap " + hex(iova) + " " + hex(bytes));
  const std::string what = "VFIO_IOMMU_UNMAP_DMA(iova " + hex(iova) + ", " + hex(bytes) + " bytes)";
  if (!is(c, Kind::container)) return err(what, EBADF);
  Container& k = containers_[c];
  if (!k.iommu) return err(what, EINVAL);
  if (k.noiommu) {
    violation(what + " on a no-IOMMU container");
    return err(what, ENOTTY);
  }
  return unmap_from(k.maps, iova, bytes, what);
}

inline numacma::Result<std::uint64_t> FakeKernel::unmap_from(std::map<std::uint64_t, FakeMapping>& maps,
                                                           std::uint64_t iova, std::uint64_t bytes,
                                                           const std::string& what) {
  if (bytes == 0 || ((iova | bytes) & 0xfff) != 0) return err(what, EINVAL);
  const std::uint64_t last = iova + bytes - 1;
  if (last < iova) return err(what, EINVAL);
  // type1v2 (and iommufd): neither end may cut a mapping in two.
  for (const auto& [a, m] : maps) {
    const std::uint64_t mlast = a + m.bytes - 1;
    if (a < iova && iova <= mlast) return err(what, EINVAL);
    if (a <= last && last < mlast) return err(what, EINVAL);
  }
  std::uint64_t done = 0;
  for (auto it = maps.begin(); it != maps.end();) {
    if (it->first >= iova && it->first + it->second.bytes - 1 <= last) {
      if (!mapped_here(it->second.vaddr, it->second.bytes))
        violation("the memory of the mapping at " + hex(it->first) + " was freed while the IOMMU still mapped it");
      done += it->second.bytes;
      it = maps.erase(it);
    } else {
      ++it;
    }
  }
  return done;
}

inline void FakeKernel::leave_container(int id, GroupState& st) {
  Container& c = containers_[st.container];
  c.groups.erase(id);
  if (c.groups.empty()) {
    if (!c.maps.empty())
      violation(std::to_string(c.maps.size()) + " mapping(s) dropped by the kernel when the last group left");
    c.maps.clear();
    c.iommu = false;
    c.noiommu = false;
  }
  st.container = -1;
}

inline bool FakeKernel::mapped_here(std::uintptr_t vaddr, std::uint64_t bytes) {
  std::vector<unsigned char> vec(static_cast<std::size_t>((bytes + 4095) / 4096));
  return ::mincore(reinterpret_cast<void*>(vaddr), bytes, vec.data()) == 0;
}

}  // namespace fakevfio
