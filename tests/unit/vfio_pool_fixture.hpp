// The fixture of the vfio_pool_*_test.cpp files: the Pool in vfio mode
// against the fake VFIO type1 kernel
// (vfio_fake_kernel.hpp, installed with detail::set_vfio_kernel_for_testing),
// with the anon backing over a temporary copy of tests/data/vm1 (one node,
// node 0, like this host: the areas really are mbind-ed to node 0 and
// populated, so they are kept to a few MiB). Devices of the tree:
//   0000:05:00.0  group 10   vfio-pci, node 0
//   0000:06:00.0  group 11   vfio-pci, node 0
//   0000:07:00.0  group 12   vfio-pci, node 0   (attached later)
//   0000:08:00.0  group 13   vfio-pci, numa_node -1
//   0000:09:00.0  group 14   bound to nvme
// What is checked is what the device would see: every DMA address inside a
// mapping of the container, at the CPU address's offset, below the device's
// mask; page buffers mapped exactly while they live; nothing mapped and no fd
// open once a pool is gone or failed to be created.
// Each test file includes it once (one executable per file).
#pragma once

#include <gtest/gtest.h>

#include <sys/mman.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "numacma/numacma.h"
#include "numacma/numacma.hpp"
#include "pool/pool_impl.hpp"
#include "vfio_fake_kernel.hpp"

using fakevfio::FakeKernel;
using fakevfio::FakeMapping;
using fakevfio::SysfsTree;
using numacma::Device;
using numacma::DmaBuffer;
using numacma::DmaMode;
using numacma::Errc;
using numacma::Pool;
using numacma::PoolOptions;
using numacma::Served;
using numacma::VfioDeviceSpec;

namespace {

constexpr std::uint64_t KiB = 1024, MiB = 1024 * KiB;
constexpr std::uint64_t k64 = ~std::uint64_t{0};
const std::string kDev0 = "0000:05:00.0", kDev1 = "0000:06:00.0", kLate = "0000:07:00.0",
                  kNoNode = "0000:08:00.0", kNvme = "0000:09:00.0";
const std::string kRoot = "/fake/dev/vfio";
const std::string kParams = "cma=4M cma_pernuma=2M";

inline std::uint64_t mask_of(unsigned bits) { return bits >= 64 ? k64 : (std::uint64_t{1} << bits) - 1; }
inline bool contains(const std::string& s, const std::string& what) { return s.find(what) != std::string::npos; }

inline const numacma::AreaReport* area(const numacma::Stats& s, const std::string& name) {
  for (const auto& a : s.areas)
    if (a.name == name) return &a;
  return nullptr;
}

inline void expect_f3(const Pool& pool) {
  for (const auto& a : pool.stats().areas) {
    EXPECT_EQ(a.used, 0u) << a.name;
    EXPECT_EQ(a.maxchunk, a.pages) << a.name;
  }
}

class VfioPool : public ::testing::Test {
 protected:
  void SetUp() override {
    tree_ = std::make_unique<SysfsTree>();
    tree_->add_device(kDev0, 10);
    tree_->add_device(kDev1, 11);
    tree_->add_device(kLate, 12);
    tree_->add_device(kNoNode, 13, "vfio-pci", -1);
    tree_->add_device(kNvme, 14, "nvme");
    install_fake(kRoot);
  }

  void TearDown() override {
    numacma::detail::set_vfio_kernel_for_testing(nullptr);
    EXPECT_TRUE(fake_->clean()) << fake_->describe();
  }

  void install_fake(const std::string& root) {
    fake_ = std::make_shared<FakeKernel>(root);
    fake_->add_group(10, {kDev0});
    fake_->add_group(11, {kDev1});
    fake_->add_group(12, {kLate});
    fake_->add_group(13, {kNoNode});
    fake_->add_group(14, {kNvme});
    numacma::detail::set_vfio_kernel_for_testing(fake_);
  }

  PoolOptions options(const std::string& params, std::vector<VfioDeviceSpec> vfio) const {
    PoolOptions o;
    o.params = params;
    o.backing = "anon";
    o.sysfs_root = tree_->root();
    o.vfio = std::move(vfio);
    o.vfio_dev_root = kRoot;
    return o;
  }

  Pool make(const std::string& params, std::vector<VfioDeviceSpec> vfio) {
    auto p = Pool::create(options(params, std::move(vfio)));
    if (!p) throw std::runtime_error("Pool::create: " + p.error().message);
    return std::move(*p);
  }

  /** The buffer is inside one mapping of the container, at the CPU address's offset. */
  void expect_mapped(const DmaBuffer& b) const {
    const FakeMapping m = fake_->mapping_containing(b.dma_addr(), b.pages() * 4096);
    ASSERT_NE(m.bytes, 0u) << "DMA address " << fakevfio::hex(b.dma_addr()) << " is in no mapping: "
                           << fake_->describe();
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(b.cpu()) - m.vaddr, b.dma_addr() - m.iova)
        << "the device would reach other memory than the CPU";
  }

  std::size_t page_mappings(const Pool& pool) const {
    const auto rep = pool.vfio_report();
    return static_cast<std::size_t>(std::count_if(rep.mappings.begin(), rep.mappings.end(),
                                                  [](const numacma::VfioMapping& m) { return m.what == "pages"; }));
  }

  std::unique_ptr<SysfsTree> tree_;
  std::shared_ptr<FakeKernel> fake_;
};

}  // namespace
