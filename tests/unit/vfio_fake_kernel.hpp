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
//   iommufd      open(<parent of dev_root>/iommu): ENOENT unless `iommufd`, or
//                its configured errno; IOAS_ALLOC ids from 1; an IOAS's
//                IOVA ranges are everything until a device is attached, then
//                `ranges`; IOAS_MAP as MAP_DMA (FIXED_IOVA) without the entry
//                limit; IOAS_UNMAP as UNMAP_DMA; closing the iommufd with
//                mappings or bound devices left is a violation
//   cdevs        open(<dev_root>/devices/vfioN): each device gets vfio<k> in
//                the order groups were added (cdev(bdf)); ENOENT unless
//                `cdevs`, or cdev_open_errno; BIND_IOMMUFD once (EBUSY when
//                the group is not viable or its group node is open), then
//                ATTACH_IOMMUFD_PT to an IOAS of that iommufd (ENOENT for
//                another; EADDRINUSE when a mapping lies in the MSI window
//                the device reserves); region calls before BIND are a
//                violation; close detaches
//   no-IOMMU     a group added with add_noiommu_group opens only as
//                <dev_root>/noiommu-<N> (and the others only as <dev_root>/<N>),
//                EPERM without `rawio` (CAP_SYS_RAWIO); CHECK_EXTENSION(NOIOMMU)
//                is `noiommu_mode`; SET_CONTAINER mixing no-IOMMU and real
//                groups is EPERM; SET_IOMMU(NOIOMMU) only for a container of
//                no-IOMMU groups (type1v2's only for the others: ENODEV), and
//                GET_INFO, MAP_DMA or UNMAP_DMA on it are violations
//   device       BAR0 of 16 KiB (std::vector; mmap-able or not), BAR2 of
//                4 KiB (never mmap-able), BARs 1, 3-5 absent, a 256-byte
//                config space (IDs read-only); regions at index << 40 in the
//                device fd, as vfio-pci puts them
// Every call is logged; tests assert that nothing leaked (no mapping, no fd,
// no mmapped BAR) and that the order was right.
// Files: this one (the class, its configuration and what tests look at),
// vfio_fake_kernel_iommu.hpp (containers, groups, MAP/UNMAP_DMA),
// vfio_fake_kernel_device.hpp (device fds, regions, BARs, config space),
// vfio_fake_sysfs.hpp (SysfsTree).
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
  enum class Kind { container, group, device, iommufd };

  struct GroupConfig {
    std::vector<std::string> devices;
    bool viable = true;
    int open_errno = 0;  ///< open of /dev/vfio/<N> fails with it (0: opens)
    bool noiommu = false;  ///< VFIO's no-IOMMU group: /dev/vfio/noiommu-<N>
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
  bool iommufd = false;           ///< /dev/iommu exists
  int iommufd_open_errno = 0;
  bool cdevs = false;             ///< /dev/vfio/devices/vfioN exist
  bool noiommu_mode = false;      ///< vfio's enable_unsafe_noiommu_mode (CHECK_EXTENSION(NOIOMMU))
  bool rawio = true;              ///< the caller has CAP_SYS_RAWIO (no-IOMMU groups and SET_IOMMU)
  int cdev_open_errno = 0;
  std::uint64_t iova_alignment = 4096;  ///< IOAS_IOVA_RANGES' out_iova_alignment

  explicit FakeKernel(std::string root = "/dev/vfio") : dev_root(std::move(root)) {}

  ~FakeKernel() override = default;

  /** A group and its devices (each gets its BAR0 and config space). */
  void add_group(int id, std::vector<std::string> bdfs, bool viable = true) {
    std::lock_guard<std::mutex> l(mu_);
    GroupConfig& g = groups_[id];
    g.viable = viable;
    for (const std::string& b : bdfs) {
      g.devices.push_back(b);
      cdev_of_[b] = "vfio" + std::to_string(cdev_of_.size());
      DeviceState& d = devs_[b];
      d.bar0.assign(kBar0Bytes, 0);
      d.bar2.assign(kBar2Bytes, 0);
      d.config.assign(kConfigBytes, 0);
      put16(d.config, 0, kVendor);
      put16(d.config, 2, kDeviceId);
    }
  }
  /** A no-IOMMU group (what vfio-pci makes in no-IOMMU mode for a device
   *  without an IOMMU). */
  void add_noiommu_group(int id, std::vector<std::string> bdfs) {
    add_group(id, std::move(bdfs));
    std::lock_guard<std::mutex> l(mu_);
    groups_[id].noiommu = true;
  }
  GroupConfig& group(int id) { return groups_.at(id); }
  /** "vfioN": the device's cdev name (SysfsTree::add_cdev puts it in sysfs). */
  std::string cdev(const std::string& bdf) const { return cdev_of_.at(bdf); }
  std::string iommu_path() const { return fs::path(dev_root).parent_path().string() + "/iommu"; }

  // ---- what tests look at ------------------------------------------------------
  std::vector<FakeMapping> mappings() const {
    std::lock_guard<std::mutex> l(mu_);
    std::vector<FakeMapping> out;
    for (const auto& [fd, c] : containers_)
      for (const auto& [iova, m] : c.maps) out.push_back(m);
    for (const auto& [fd, f] : iommufds_)
      for (const auto& [id, a] : f.ioas)
        for (const auto& [iova, m] : a.maps) out.push_back(m);
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
  numacma::Result<int> open(const std::string& path) override;
  void close(int fd) noexcept override;
  numacma::Result<int> api_version(int c) override;
  numacma::Result<bool> has_type1v2(int c) override;
  numacma::Result<bool> group_viable(int g) override;
  numacma::Status group_set_container(int g, int c) override;
  numacma::Status group_unset_container(int g) override;
  numacma::Status set_iommu_type1v2(int c) override;
  numacma::Result<bool> has_noiommu(int c) override;
  numacma::Status set_iommu_noiommu(int c) override;
  numacma::Result<numacma::vfio::IommuInfo> iommu_info(int c) override;
  numacma::Status map_dma(int c, std::uintptr_t vaddr, std::uint64_t iova, std::uint64_t bytes) override;
  numacma::Result<std::uint64_t> unmap_dma(int c, std::uint64_t iova, std::uint64_t bytes) override;
  numacma::Result<int> device_fd(int g, const std::string& bdf) override;
  numacma::Result<numacma::vfio::RegionInfo> region_info(int d, std::uint32_t index) override;
  std::uint32_t config_region_index() const noexcept override { return VFIO_PCI_CONFIG_REGION_INDEX; }
  numacma::Status read_at(int fd, std::uint64_t offset, void* out, std::size_t len) override;
  numacma::Status write_at(int fd, std::uint64_t offset, const void* in, std::size_t len) override;
  numacma::Result<void*> map_region(int d, const numacma::vfio::RegionInfo& r) override;
  void unmap_region(void* addr, std::uint64_t bytes) noexcept override;

  numacma::Result<std::uint32_t> ioas_alloc(int fd) override;
  numacma::Result<numacma::vfio::IoasRanges> ioas_iova_ranges(int fd, std::uint32_t ioas) override;
  numacma::Status ioas_map(int fd, std::uint32_t ioas, std::uintptr_t vaddr, std::uint64_t iova,
                           std::uint64_t bytes) override;
  numacma::Result<std::uint64_t> ioas_unmap(int fd, std::uint32_t ioas, std::uint64_t iova,
                                            std::uint64_t bytes) override;
  numacma::Result<std::uint32_t> device_bind_iommufd(int d, int fd) override;
  numacma::Status device_attach_ioas(int d, std::uint32_t ioas) override;

  std::uint64_t memlock_limit() noexcept override { return memlock; }
  bool can_lock_unlimited() noexcept override { return unlimited; }

  static const char* kind_name(Kind k) {
    switch (k) {
      case Kind::container: return "container";
      case Kind::group: return "group";
      case Kind::device: return "device";
      case Kind::iommufd: return "iommufd";
    }
    return "?";
  }

 private:
  struct Fd {
    Kind kind;
    int group = -1;
    std::string bdf;
    bool cdev = false;      ///< a device opened through /dev/vfio/devices/vfioN
    int iommufd = -1;       ///< cdev: bound to this iommufd (-1: not yet)
    std::uint32_t ioas = 0; ///< cdev: attached to this IOAS (0: not yet)
  };
  struct Ioas {
    std::map<std::uint64_t, FakeMapping> maps;
    std::set<int> devices;  ///< cdev fds attached
  };
  struct IommufdState {
    std::uint32_t next = 1;
    std::map<std::uint32_t, Ioas> ioas;
    std::set<int> bound;    ///< cdev fds bound
  };
  struct Container {
    bool iommu = false;
    bool noiommu = false;  ///< its groups are no-IOMMU groups (and so its IOMMU type, once set)
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
    if (it != fds_.end() && it->second.kind == k && k == Kind::device && it->second.cdev && it->second.iommufd < 0) {
      violation("device cdev fd " + std::to_string(fd) + " used before VFIO_DEVICE_BIND_IOMMUFD");
      return false;
    }
    if (it != fds_.end() && it->second.kind == k) return true;
    violation(std::string("fd ") + std::to_string(fd) + " used as a " + kind_name(k) + " but it is " +
              (it == fds_.end() ? std::string("not open") : kind_name(it->second.kind)));
    return false;
  }
  void log(const std::string& s) { log_.push_back(s); }
  void violation(const std::string& s) { violations_.push_back(s); }

  /** The group leaves its container; the last one out takes the IOMMU along. */
  void leave_container(int id, GroupState& st);

  /** Pinning would fault on memory that is not mapped in this process. */
  static bool mapped_here(std::uintptr_t vaddr, std::uint64_t bytes);
  /** MAP_DMA's and IOAS_MAP's checks, then the mapping entered in `maps`. */
  numacma::Status map_into(std::map<std::uint64_t, FakeMapping>& maps, int owner, std::uintptr_t vaddr,
                           std::uint64_t iova, std::uint64_t bytes, const std::string& what,
                           const std::vector<Range>& valid, std::uint64_t limit);
  /** UNMAP_DMA's and IOAS_UNMAP's rules on `maps`. */
  numacma::Result<std::uint64_t> unmap_from(std::map<std::uint64_t, FakeMapping>& maps, std::uint64_t iova,
                                            std::uint64_t bytes, const std::string& what);
  /** A cdev fd closing: out of its IOAS and its iommufd. */
  void detach_cdev(const Fd& f, int fd);

  std::uint8_t* region_bytes(int fd, std::uint64_t offset, std::size_t len);

  mutable std::mutex mu_;
  int next_fd_ = 1000;
  std::map<int, Fd> fds_;
  std::map<int, Container> containers_;
  std::map<int, GroupConfig> groups_;
  std::map<int, GroupState> group_state_;
  std::map<std::string, DeviceState> devs_;
  std::map<std::string, std::string> cdev_of_;  // bdf -> "vfioN"
  std::map<int, IommufdState> iommufds_;
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

}  // namespace fakevfio

// The members defined out of the class (each of the two includes this file
// first, so either may be included alone), and the sysfs side:
#include "vfio_fake_kernel_device.hpp"
#include "vfio_fake_kernel_iommu.hpp"
#include "vfio_fake_kernel_iommufd.hpp"
#include "vfio_fake_sysfs.hpp"
