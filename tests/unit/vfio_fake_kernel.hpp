// A fake of Linux's VFIO type1 for unit tests (src/vfio/kernel.hpp), and a
// temporary sysfs tree (a copy of tests/data/vm1 plus PCI devices with IOMMU
// groups and drivers) for the container to read.
//
// FakeKernel behaves like the kernel where the container could get it wrong:
//   fds          numbers from 1000 up, never reused; closing an unknown one,
//                a group still in a container, a container with groups in it
//                or a device fd whose BAR is still mmapped is a violation
//   container    open(<dev_root>/vfio): configurable errno; API version and
//                TYPE1v2 configurable; SET_IOMMU only once and only after a
//                group joined (EINVAL before, EBUSY after); the last group to
//                leave takes the IOMMU backend along (and any mappings still
//                there: recorded as a violation, the library must unmap first)
//   groups       open(<dev_root>/<N>): ENOENT when not configured, its
//                configured errno, EBUSY when already open; viability per
//                group; SET_CONTAINER once (EINVAL twice, EPERM not viable);
//                UNSET_CONTAINER fails with EBUSY while a device fd of the
//                group is open; GET_DEVICE_FD only for a BDF of that group,
//                only once the container has its IOMMU
//   map_dma      iova/size/vaddr 4 KiB aligned (EINVAL), vaddr 0 or memory
//                not mapped in this process (EFAULT, checked with mincore as
//                pinning would), inside the reported IOVA ranges (EINVAL),
//                no overlap (EEXIST), at most dma_entry_limit mappings
//                (ENOSPC), a configurable errno on the Nth call
//   unmap_dma    type1v2: a range that bisects a mapping is EINVAL; unmaps
//                every mapping inside [iova, iova + size) and returns their
//                bytes (0 when nothing is mapped there); memory that was
//                freed while still mapped is a violation (the device could
//                still reach pages the process gave back)
//   GET_INFO     IOVA ranges (default Intel 39-bit: the MSI window left out),
//                pgsizes 0x40201000, DMA_AVAIL = limit - live mappings
//   device       BAR0 of 16 KiB (std::vector; mmap-able or not), BAR2 of
//                4 KiB (never mmap-able), BARs 1, 3-5 absent, a 256-byte
//                config space (IDs read-only); regions at index << 40 in the
//                device fd, as vfio-pci puts them
// Every call is logged; tests assert that nothing leaked (no mapping, no fd,
// no mmapped BAR) and that the order was right.
#pragma once

#include <linux/vfio.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "os/errno_error.hpp"
#include "vfio/kernel.hpp"

namespace fakevfio {

namespace fs = std::filesystem;

inline constexpr std::uint64_t kMsiFirst = 0xfee00000, kMsiLast = 0xfeefffff;
inline constexpr std::uint64_t kRegionShift = 40;  // VFIO_PCI_OFFSET_SHIFT
inline constexpr std::uint64_t kBar0Bytes = 16 * 1024;
inline constexpr std::uint64_t kBar2Bytes = 4 * 1024;  // never mmap-able (an I/O-port-like BAR)
inline constexpr std::uint64_t kConfigBytes = 256;
inline constexpr std::uint64_t kPgsizes = 0x40201000;  // 4 KiB | 2 MiB | 1 GiB
inline constexpr std::uint16_t kVendor = 0x1b36, kDeviceId = 0x0010;  // QEMU NVMe

inline std::string hex(std::uint64_t v) {
  char b[24];
  std::snprintf(b, sizeof b, "0x%llx", static_cast<unsigned long long>(v));
  return b;
}

struct Range {
  std::uint64_t first = 0, last = 0;
};

/** What an Intel IOMMU with 39-bit addresses reports. */
inline std::vector<Range> intel39() { return {{0, kMsiFirst - 1}, {kMsiLast + 1, (1ULL << 39) - 1}}; }

struct FakeMapping {
  int container = -1;
  std::uintptr_t vaddr = 0;
  std::uint64_t iova = 0;
  std::uint64_t bytes = 0;
};

class FakeKernel final : public numacma::vfio::Kernel {
 public:
  enum class Kind { container, group, device };

  struct GroupConfig {
    std::vector<std::string> devices;
    bool viable = true;
    int open_errno = 0;  ///< open of /dev/vfio/<N> fails with it (0: opens)
  };

  // ---- configuration (set before the calls it concerns) -----------------------
  std::string dev_root;
  int container_open_errno = 0;  ///< ENOENT: vfio not loaded
  int api = 0;
  bool type1v2 = true;
  int set_iommu_errno = 0;          ///< SET_IOMMU fails with it...
  unsigned set_iommu_failures = ~0u;  ///< ...this many times
  std::vector<Range> ranges = intel39();  ///< empty: no IOVA_RANGE capability
  bool report_dma_avail = true;
  std::uint64_t pgsizes = kPgsizes;
  std::uint64_t dma_entry_limit = 65535;
  unsigned fail_map_nth = 0;  ///< 1-based: that MAP_DMA call fails (0: none)
  int fail_map_errno = ENOMEM;
  std::uint64_t memlock = ~std::uint64_t{0};
  bool unlimited = true;
  bool bar0_mmap = true;      ///< BAR0 region has VFIO_REGION_INFO_FLAG_MMAP
  bool map_region_fails = false;

  explicit FakeKernel(std::string root = "/dev/vfio") : dev_root(std::move(root)) {}

  ~FakeKernel() override = default;

  /** A group and its devices (each gets its BAR0 and config space). */
  void add_group(int id, std::vector<std::string> bdfs, bool viable = true) {
    std::lock_guard<std::mutex> l(mu_);
    GroupConfig& g = groups_[id];
    g.viable = viable;
    for (const std::string& b : bdfs) {
      g.devices.push_back(b);
      DeviceState& d = devs_[b];
      d.bar0.assign(kBar0Bytes, 0);
      d.bar2.assign(kBar2Bytes, 0);
      d.config.assign(kConfigBytes, 0);
      put16(d.config, 0, kVendor);
      put16(d.config, 2, kDeviceId);
    }
  }
  GroupConfig& group(int id) { return groups_.at(id); }

  // ---- what tests look at ------------------------------------------------------
  std::vector<FakeMapping> mappings() const {
    std::lock_guard<std::mutex> l(mu_);
    std::vector<FakeMapping> out;
    for (const auto& [fd, c] : containers_)
      for (const auto& [iova, m] : c.maps) out.push_back(m);
    std::sort(out.begin(), out.end(), [](const FakeMapping& a, const FakeMapping& b) { return a.iova < b.iova; });
    return out;
  }
  /** The mapping that contains [iova, iova + bytes), or nullptr-like (bytes 0). */
  FakeMapping mapping_containing(std::uint64_t iova, std::uint64_t bytes = 1) const {
    for (const FakeMapping& m : mappings())
      if (m.iova <= iova && iova + bytes - 1 <= m.iova + m.bytes - 1) return m;
    return {};
  }
  bool has_mapping(std::uint64_t iova, std::uint64_t bytes) const {
    for (const FakeMapping& m : mappings())
      if (m.iova == iova && m.bytes == bytes) return true;
    return false;
  }
  std::size_t open_fds() const {
    std::lock_guard<std::mutex> l(mu_);
    return fds_.size();
  }
  std::size_t open_fds(Kind k) const {
    std::lock_guard<std::mutex> l(mu_);
    return static_cast<std::size_t>(
        std::count_if(fds_.begin(), fds_.end(), [k](const auto& p) { return p.second.kind == k; }));
  }
  std::size_t mmapped_regions() const {
    std::lock_guard<std::mutex> l(mu_);
    return regions_.size();
  }
  std::vector<std::string> violations() const {
    std::lock_guard<std::mutex> l(mu_);
    return violations_;
  }
  std::vector<std::string> calls() const {
    std::lock_guard<std::mutex> l(mu_);
    return log_;
  }
  unsigned map_calls() const {
    std::lock_guard<std::mutex> l(mu_);
    return map_calls_;
  }
  std::uint64_t preads() const {
    std::lock_guard<std::mutex> l(mu_);
    return preads_;
  }
  std::uint64_t pwrites() const {
    std::lock_guard<std::mutex> l(mu_);
    return pwrites_;
  }
  /** DMA_AVAIL as GET_INFO would report it now (all containers together). */
  std::int64_t dma_avail() const {
    std::lock_guard<std::mutex> l(mu_);
    std::size_t n = 0;
    for (const auto& [fd, c] : containers_) n += c.maps.size();
    return static_cast<std::int64_t>(dma_entry_limit) - static_cast<std::int64_t>(n);
  }
  /** The container fd group `id` is in (-1: none). */
  int container_of_group(int id) const {
    std::lock_guard<std::mutex> l(mu_);
    auto it = group_state_.find(id);
    return it == group_state_.end() ? -1 : it->second.container;
  }
  bool group_open(int id) const {
    std::lock_guard<std::mutex> l(mu_);
    auto it = group_state_.find(id);
    return it != group_state_.end() && it->second.fd >= 0;
  }
  /** The device's BAR0 / config bytes (single-threaded tests only). */
  std::vector<std::uint8_t>& bar0(const std::string& bdf) { return devs_.at(bdf).bar0; }
  std::vector<std::uint8_t>& bar2(const std::string& bdf) { return devs_.at(bdf).bar2; }
  std::vector<std::uint8_t>& config(const std::string& bdf) { return devs_.at(bdf).config; }

  /** Nothing left: no mapping, no fd, no mmapped BAR, no violation. */
  bool clean() const { return mappings().empty() && open_fds() == 0 && mmapped_regions() == 0 && violations().empty(); }
  std::string describe() const {
    std::string s = "mappings:";
    for (const FakeMapping& m : mappings()) s.append(" [").append(hex(m.iova)).append(" +").append(hex(m.bytes)).append("]");
    s.append("; open fds:");
    {
      std::lock_guard<std::mutex> l(mu_);
      for (const auto& [fd, f] : fds_) s.append(" ").append(std::to_string(fd)).append("(").append(kind_name(f.kind)).append(")");
      s.append("; mmapped BARs: ").append(std::to_string(regions_.size()));
      s.append("; violations:");
      for (const std::string& v : violations_) s.append(" {").append(v).append("}");
    }
    return s;
  }

  // ---- the Kernel interface ----------------------------------------------------
  numacma::Result<int> open(const std::string& path) override {
    std::lock_guard<std::mutex> l(mu_);
    log("open " + path);
    if (path == dev_root + "/vfio") {
      if (container_open_errno != 0) return err("open(" + path + ")", container_open_errno);
      const int fd = new_fd({Kind::container, -1, {}});
      containers_[fd];
      return fd;
    }
    const std::string prefix = dev_root + "/";
    if (path.compare(0, prefix.size(), prefix) != 0) return err("open(" + path + ")", ENOENT);
    const std::string num = path.substr(prefix.size());
    if (num.empty() || num.find_first_not_of("0123456789") != std::string::npos)
      return err("open(" + path + ")", ENOENT);
    const int id = std::stoi(num);
    auto g = groups_.find(id);
    if (g == groups_.end()) return err("open(" + path + ")", ENOENT);
    if (g->second.open_errno != 0) return err("open(" + path + ")", g->second.open_errno);
    GroupState& st = group_state_[id];
    if (st.fd >= 0) return err("open(" + path + ")", EBUSY);  // one opener at a time
    st.fd = new_fd({Kind::group, id, {}});
    return st.fd;
  }

  void close(int fd) noexcept override {
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
        GroupState& st = group_state_[f.group];
        --st.devices_open;
        for (const auto& [p, r] : regions_)
          if (r.fd == fd) violation("device fd " + std::to_string(fd) + " closed while its BAR is mmapped");
        break;
      }
    }
  }

  numacma::Result<int> api_version(int c) override {
    std::lock_guard<std::mutex> l(mu_);
    if (!is(c, Kind::container)) return err("VFIO_GET_API_VERSION", EBADF);
    return api;
  }

  numacma::Result<bool> has_type1v2(int c) override {
    std::lock_guard<std::mutex> l(mu_);
    if (!is(c, Kind::container)) return err("VFIO_CHECK_EXTENSION", EBADF);
    return type1v2;
  }

  numacma::Result<bool> group_viable(int g) override {
    std::lock_guard<std::mutex> l(mu_);
    if (!is(g, Kind::group)) return err("VFIO_GROUP_GET_STATUS", EBADF);
    return groups_.at(fds_.at(g).group).viable;
  }

  numacma::Status group_set_container(int g, int c) override {
    std::lock_guard<std::mutex> l(mu_);
    log("set_container " + std::to_string(g) + " " + std::to_string(c));
    if (!is(g, Kind::group) || !is(c, Kind::container)) return err("VFIO_GROUP_SET_CONTAINER", EBADF);
    const int id = fds_.at(g).group;
    GroupState& st = group_state_[id];
    if (st.container >= 0) return err("VFIO_GROUP_SET_CONTAINER", EINVAL);
    if (!groups_.at(id).viable) return err("VFIO_GROUP_SET_CONTAINER", EPERM);
    st.container = c;
    containers_[c].groups.insert(id);
    return {};
  }

  numacma::Status group_unset_container(int g) override {
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

  numacma::Status set_iommu_type1v2(int c) override {
    std::lock_guard<std::mutex> l(mu_);
    log("set_iommu " + std::to_string(c));
    if (!is(c, Kind::container)) return err("VFIO_SET_IOMMU", EBADF);
    Container& k = containers_[c];
    if (k.iommu) return err("VFIO_SET_IOMMU", EBUSY);
    if (k.groups.empty()) return err("VFIO_SET_IOMMU", EINVAL);
    if (set_iommu_errno != 0 && set_iommu_failures > 0) {
      --set_iommu_failures;
      return err("VFIO_SET_IOMMU", set_iommu_errno);
    }
    k.iommu = true;
    return {};
  }

  numacma::Result<numacma::vfio::IommuInfo> iommu_info(int c) override {
    std::lock_guard<std::mutex> l(mu_);
    if (!is(c, Kind::container)) return err("VFIO_IOMMU_GET_INFO", EBADF);
    const Container& k = containers_[c];
    if (!k.iommu) return err("VFIO_IOMMU_GET_INFO", EINVAL);
    numacma::vfio::IommuInfo info;
    info.pgsizes = pgsizes;
    for (const Range& r : ranges) info.ranges.push_back({r.first, r.last});
    info.dma_avail = report_dma_avail ? static_cast<std::int64_t>(dma_entry_limit) -
                                            static_cast<std::int64_t>(k.maps.size())
                                      : -1;
    return info;
  }

  numacma::Status map_dma(int c, std::uintptr_t vaddr, std::uint64_t iova, std::uint64_t bytes) override {
    std::lock_guard<std::mutex> l(mu_);
    log("map " + hex(iova) + " " + hex(bytes));
    const std::string what = "VFIO_IOMMU_MAP_DMA(iova " + hex(iova) + ", " + hex(bytes) + " bytes)";
    if (!is(c, Kind::container)) return err(what, EBADF);
    Container& k = containers_[c];
    if (!k.iommu) return err(what, EINVAL);
    ++map_calls_;
    if (fail_map_nth != 0 && map_calls_ == fail_map_nth) return err(what, fail_map_errno);
    if (bytes == 0 || ((iova | bytes | vaddr) & 0xfff) != 0) return err(what, EINVAL);
    if (iova + bytes - 1 < iova || vaddr + bytes - 1 < vaddr) return err(what, EINVAL);
    if (vaddr == 0 || !mapped_here(vaddr, bytes)) return err(what, EFAULT);
    const bool valid = std::any_of(ranges.begin(), ranges.end(), [&](const Range& r) {
      return r.first <= iova && iova + bytes - 1 <= r.last;
    }) || ranges.empty();
    if (!valid) return err(what, EINVAL);
    for (const auto& [a, m] : k.maps)
      if (a <= iova + bytes - 1 && iova <= a + m.bytes - 1) return err(what, EEXIST);
    if (k.maps.size() >= dma_entry_limit) return err(what, ENOSPC);
    k.maps[iova] = FakeMapping{c, vaddr, iova, bytes};
    return {};
  }

  numacma::Result<std::uint64_t> unmap_dma(int c, std::uint64_t iova, std::uint64_t bytes) override {
    std::lock_guard<std::mutex> l(mu_);
    log("unmap " + hex(iova) + " " + hex(bytes));
    const std::string what = "VFIO_IOMMU_UNMAP_DMA(iova " + hex(iova) + ", " + hex(bytes) + " bytes)";
    if (!is(c, Kind::container)) return err(what, EBADF);
    Container& k = containers_[c];
    if (!k.iommu) return err(what, EINVAL);
    if (bytes == 0 || ((iova | bytes) & 0xfff) != 0) return err(what, EINVAL);
    const std::uint64_t last = iova + bytes - 1;
    if (last < iova) return err(what, EINVAL);
    // type1v2: neither end may cut a mapping in two.
    for (const auto& [a, m] : k.maps) {
      const std::uint64_t mlast = a + m.bytes - 1;
      if (a < iova && iova <= mlast) return err(what, EINVAL);
      if (a <= last && last < mlast) return err(what, EINVAL);
    }
    std::uint64_t done = 0;
    for (auto it = k.maps.begin(); it != k.maps.end();) {
      if (it->first >= iova && it->first + it->second.bytes - 1 <= last) {
        if (!mapped_here(it->second.vaddr, it->second.bytes))
          violation("the memory of the mapping at " + hex(it->first) + " was freed while the IOMMU still mapped it");
        done += it->second.bytes;
        it = k.maps.erase(it);
      } else {
        ++it;
      }
    }
    return done;
  }

  numacma::Result<int> device_fd(int g, const std::string& bdf) override {
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

  numacma::Result<numacma::vfio::RegionInfo> region_info(int d, std::uint32_t index) override {
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

  std::uint32_t config_region_index() const noexcept override { return VFIO_PCI_CONFIG_REGION_INDEX; }

  numacma::Status read_at(int fd, std::uint64_t offset, void* out, std::size_t len) override {
    std::lock_guard<std::mutex> l(mu_);
    ++preads_;
    std::uint8_t* p = region_bytes(fd, offset, len);
    if (p == nullptr) return err("pread(" + std::to_string(len) + " bytes at " + hex(offset) + ")", EINVAL);
    std::memcpy(out, p, len);
    return {};
  }

  numacma::Status write_at(int fd, std::uint64_t offset, const void* in, std::size_t len) override {
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

  numacma::Result<void*> map_region(int d, const numacma::vfio::RegionInfo& r) override {
    std::lock_guard<std::mutex> l(mu_);
    log("mmap " + std::to_string(d) + " " + std::to_string(r.index));
    if (!is(d, Kind::device)) return err("mmap(region)", EBADF);
    if (r.index != 0 || !bar0_mmap || map_region_fails || r.size != kBar0Bytes) return err("mmap(region)", EINVAL);
    void* p = devs_.at(fds_.at(d).bdf).bar0.data();
    if (regions_.count(p) != 0) return err("mmap(region)", EEXIST);  // the container maps a BAR once
    regions_[p] = {d, r.size};
    return p;
  }

  void unmap_region(void* addr, std::uint64_t bytes) noexcept override {
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

  std::uint64_t memlock_limit() noexcept override { return memlock; }
  bool can_lock_unlimited() noexcept override { return unlimited; }

  static const char* kind_name(Kind k) {
    switch (k) {
      case Kind::container: return "container";
      case Kind::group: return "group";
      case Kind::device: return "device";
    }
    return "?";
  }

 private:
  struct Fd {
    Kind kind;
    int group = -1;
    std::string bdf;
  };
  struct Container {
    bool iommu = false;
    std::set<int> groups;
    std::map<std::uint64_t, FakeMapping> maps;
  };
  struct GroupState {
    int fd = -1;
    int container = -1;
    int devices_open = 0;
  };
  struct DeviceState {
    std::vector<std::uint8_t> bar0, bar2, config;
  };
  struct MappedRegion {
    int fd = -1;
    std::uint64_t bytes = 0;
  };

  static void put16(std::vector<std::uint8_t>& v, std::size_t at, std::uint16_t x) {
    v[at] = static_cast<std::uint8_t>(x);
    v[at + 1] = static_cast<std::uint8_t>(x >> 8);
  }
  static numacma::Error err(const std::string& what, int e) { return numacma::os::errno_error(what, e); }

  int new_fd(Fd f) {
    const int fd = next_fd_++;
    log("  -> fd " + std::to_string(fd) + " " + kind_name(f.kind));
    fds_[fd] = std::move(f);
    return fd;
  }
  bool is(int fd, Kind k) {
    auto it = fds_.find(fd);
    if (it != fds_.end() && it->second.kind == k) return true;
    violation(std::string("fd ") + std::to_string(fd) + " used as a " + kind_name(k) + " but it is " +
              (it == fds_.end() ? std::string("not open") : kind_name(it->second.kind)));
    return false;
  }
  void log(const std::string& s) { log_.push_back(s); }
  void violation(const std::string& s) { violations_.push_back(s); }

  /** The group leaves its container; the last one out takes the IOMMU along. */
  void leave_container(int id, GroupState& st) {
    Container& c = containers_[st.container];
    c.groups.erase(id);
    if (c.groups.empty()) {
      if (!c.maps.empty())
        violation(std::to_string(c.maps.size()) + " mapping(s) dropped by the kernel when the last group left");
      c.maps.clear();
      c.iommu = false;
    }
    st.container = -1;
  }

  /** Pinning would fault on memory that is not mapped in this process. */
  static bool mapped_here(std::uintptr_t vaddr, std::uint64_t bytes) {
    std::vector<unsigned char> vec(static_cast<std::size_t>((bytes + 4095) / 4096));
    return ::mincore(reinterpret_cast<void*>(vaddr), bytes, vec.data()) == 0;
  }

  std::uint8_t* region_bytes(int fd, std::uint64_t offset, std::size_t len) {
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

  mutable std::mutex mu_;
  int next_fd_ = 1000;
  std::map<int, Fd> fds_;
  std::map<int, Container> containers_;
  std::map<int, GroupConfig> groups_;
  std::map<int, GroupState> group_state_;
  std::map<std::string, DeviceState> devs_;
  std::map<void*, MappedRegion> regions_;
  std::vector<std::string> log_;
  std::vector<std::string> violations_;
  unsigned map_calls_ = 0;
  std::uint64_t preads_ = 0, pwrites_ = 0;
};

/** Index of the first logged call that starts with `prefix` at or after `from`; -1 when none. */
inline long find_call(const std::vector<std::string>& calls, const std::string& prefix, std::size_t from = 0) {
  for (std::size_t i = from; i < calls.size(); ++i)
    if (calls[i].compare(0, prefix.size(), prefix) == 0) return static_cast<long>(i);
  return -1;
}
inline long find_last_call(const std::vector<std::string>& calls, const std::string& prefix) {
  for (std::size_t i = calls.size(); i-- > 0;)
    if (calls[i].compare(0, prefix.size(), prefix) == 0) return static_cast<long>(i);
  return -1;
}

// ---- the sysfs side ---------------------------------------------------------------

/** A temporary copy of tests/data/vm1 (one node, node 0, like this host) with
 *  extra PCI devices: iommu_group and driver links as the kernel makes them,
 *  kernel/iommu_groups/<N>/{reserved_regions,devices/}. Removed on destruction. */
class SysfsTree {
 public:
  SysfsTree() {
    static int seq = 0;
    top_ = fs::temp_directory_path() /
           ("numacma-vfio-" + std::to_string(::getpid()) + "-" + std::to_string(seq++));
    fs::remove_all(top_);
    fs::create_directories(top_);
    root_ = top_ / "sys";
    fs::copy(fs::path(NUMACMA_TEST_DATA) / "vm1", root_,
             fs::copy_options::recursive | fs::copy_options::copy_symlinks);
    fs::create_directories(root_ / "kernel/iommu_groups");
  }
  ~SysfsTree() {
    std::error_code ec;
    fs::remove_all(top_, ec);
  }
  SysfsTree(const SysfsTree&) = delete;
  SysfsTree& operator=(const SysfsTree&) = delete;

  std::string root() const { return root_.string(); }
  fs::path dev_dir(const std::string& bdf) const { return root_ / "bus/pci/devices" / bdf; }

  /** A PCI device on `node`; group < 0: no iommu_group link; driver "": unbound.
   *  A new group gets the x86 MSI window as its reserved region. */
  void add_device(const std::string& bdf, int group, const std::string& driver = "vfio-pci", int node = 0) {
    const fs::path d = dev_dir(bdf);
    fs::create_directories(d);
    put(d / "numa_node", std::to_string(node) + "\n");
    put(d / "vendor", "0x1b36\n");
    put(d / "device", "0x0010\n");
    put(d / "class", "0x010802\n");
    if (group >= 0) {
      const fs::path g = root_ / "kernel/iommu_groups" / std::to_string(group);
      if (!fs::exists(g)) {
        fs::create_directories(g / "devices");
        put(g / "reserved_regions", "0x00000000fee00000 0x00000000feefffff msi\n");
      }
      fs::create_directory_symlink("../../../../bus/pci/devices/" + bdf, g / "devices" / bdf);
      fs::create_directory_symlink("../../../../kernel/iommu_groups/" + std::to_string(group), d / "iommu_group");
    }
    if (!driver.empty()) set_driver(bdf, driver);
  }
  void set_driver(const std::string& bdf, const std::string& driver) {
    const fs::path d = dev_dir(bdf);
    fs::remove(d / "driver");
    const fs::path drv = root_ / "bus/pci/drivers" / driver;
    fs::create_directories(drv);
    if (!fs::exists(fs::symlink_status(drv / bdf)))
      fs::create_directory_symlink("../../../../bus/pci/devices/" + bdf, drv / bdf);
    fs::create_directory_symlink("../../../../bus/pci/drivers/" + driver, d / "driver");
  }
  void set_reserved_regions(int group, const std::string& text) {
    put(root_ / "kernel/iommu_groups" / std::to_string(group) / "reserved_regions", text);
  }

 private:
  static void put(const fs::path& p, const std::string& text) { std::ofstream(p, std::ios::trunc) << text; }
  fs::path top_, root_;
};

}  // namespace fakevfio
