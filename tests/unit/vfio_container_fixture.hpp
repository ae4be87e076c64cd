// The fixture of the vfio_container_*_test.cpp files: numacma::vfio::Container
// against the fake VFIO type1 kernel
// (vfio_fake_kernel.hpp) over a temporary vm1-based sysfs tree with extra PCI
// devices:
//   0000:05:00.0, 0000:05:00.1   group 10, vfio-pci
//   0000:06:00.0                 group 11, vfio-pci
//   0000:07:00.0                 group 12, vfio-pci
//   0000:08:00.0                 group 13, bound to nvme
//   0000:08:00.1                 group 15, no driver
//   0000:09:00.0, 0000:09:00.1   group 14 (not viable): vfio-pci, nvme
//   0000:0a:00.0                 no IOMMU group
// Each attach error is checked with its code and the words that tell the user
// what to do; map/unmap with the IOVA rules (floor, MSI window, reserved
// regions, alignment, limit); destruction with nothing left behind, in order.
// Each test file includes it once (one executable per file).
#pragma once

#include <gtest/gtest.h>

#include <sys/mman.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "topology/topology.hpp"
#include "vfio/container.hpp"
#include "vfio_fake_kernel.hpp"

using fakevfio::FakeKernel;
using fakevfio::SysfsTree;
using numacma::Errc;
using numacma::vfio::Container;
using numacma::vfio::IovaRange;
using numacma::vfio::kIovaFloor;

namespace {

constexpr std::uint64_t KiB = 1024, MiB = 1024 * KiB, GiB = 1024 * MiB;
constexpr std::uint64_t k64 = ~std::uint64_t{0};
const std::string kA = "0000:05:00.0", kA2 = "0000:05:00.1", kB = "0000:06:00.0", kC = "0000:07:00.0",
                  kNvme = "0000:08:00.0", kUnbound = "0000:08:00.1", kNv0 = "0000:09:00.0",
                  kNv1 = "0000:09:00.1", kNoGroup = "0000:0a:00.0";
const std::string kRoot = "/fake/dev/vfio";

inline std::uint64_t mask_of(unsigned bits) { return bits >= 64 ? k64 : (std::uint64_t{1} << bits) - 1; }

inline bool contains(const std::string& s, const std::string& what) { return s.find(what) != std::string::npos; }

/** Anonymous memory that is mapped (so the fake's "pinning" accepts it) but never touched. */
struct Mem {
  explicit Mem(std::uint64_t b) : bytes(b) {
    void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p != MAP_FAILED) addr = reinterpret_cast<std::uintptr_t>(p);
  }
  ~Mem() {
    if (addr != 0) ::munmap(reinterpret_cast<void*>(addr), bytes);
  }
  Mem(const Mem&) = delete;
  Mem& operator=(const Mem&) = delete;
  std::uintptr_t addr = 0;
  std::uint64_t bytes;
};

inline bool overlaps(std::uint64_t iova, std::uint64_t bytes, std::uint64_t first, std::uint64_t last) {
  return iova <= last && first <= iova + bytes - 1;
}

class VfioContainer : public ::testing::Test {
 protected:
  void SetUp() override {
    tree_ = std::make_unique<SysfsTree>();
    tree_->add_device(kA, 10);
    tree_->add_device(kA2, 10);
    tree_->add_device(kB, 11);
    tree_->add_device(kC, 12);
    tree_->add_device(kNvme, 13, "nvme");
    tree_->add_device(kUnbound, 15, "");
    tree_->add_device(kNv0, 14);
    tree_->add_device(kNv1, 14, "nvme");
    tree_->add_device(kNoGroup, -1);
    fake_ = make_fake();
  }

  /** A fake kernel with the groups above (in this order: the cdev names follow it). */
  static std::shared_ptr<FakeKernel> make_fake() {
    auto f = std::make_shared<FakeKernel>(kRoot);
    f->add_group(10, {kA, kA2});
    f->add_group(11, {kB});
    f->add_group(12, {kC});
    f->add_group(13, {kNvme});
    f->add_group(15, {kUnbound});
    f->add_group(14, {kNv0, kNv1}, /*viable=*/false);
    return f;
  }

  void TearDown() override {
    c_.reset();
    EXPECT_TRUE(fake_->clean()) << fake_->describe();
  }

  /** A fresh container (the topology is read now, so tree changes made before count). */
  Container& make(numacma::vfio::IommuBackend backend = numacma::vfio::IommuBackend::automatic) {
    auto t = numacma::topo::Topology::from_sysfs(tree_->root());
    EXPECT_TRUE(t) << t.error().message;
    topo_ = std::make_unique<numacma::topo::Topology>(std::move(*t));
    auto c = Container::create(*topo_, kRoot, fake_, backend);
    EXPECT_TRUE(c) << c.error().message;
    c_ = std::move(*c);
    return *c_;
  }

  /** The attach error (code, message); ok when it attached. */
  numacma::Error attach_error(Container& c, const std::string& bdf, std::uint64_t mask = k64) {
    numacma::Status s = c.attach(bdf, mask);
    if (s) return numacma::Error{Errc::ok, ""};
    return s.error();
  }

  /** Memory for mappings, kept until after TearDown (the container is gone first). */
  std::uintptr_t mem(std::uint64_t bytes) {
    mems_.push_back(std::make_unique<Mem>(bytes));
    EXPECT_NE(mems_.back()->addr, 0u);
    return mems_.back()->addr;
  }

  std::vector<std::unique_ptr<Mem>> mems_;
  std::unique_ptr<SysfsTree> tree_;
  std::shared_ptr<FakeKernel> fake_;
  std::unique_ptr<numacma::topo::Topology> topo_;
  std::unique_ptr<Container> c_;
};

}  // namespace
