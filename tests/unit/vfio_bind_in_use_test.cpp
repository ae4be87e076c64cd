// vfio::bind refuses a device the machine uses, before it writes anything,
// and binds it with force unless the root file system is on it. Run on a
// writable copy of the fixture machine tests/data/in-use (see
// tests/data/make_in_use_fixture.py for what each device is used for), with
// vfio-pci loaded in the copy and a writer that plays the kernel's part:
//   drivers/<d>/unbind <- X    X's driver link goes
//   drivers_probe <- X         X is bound to the driver its driver_override names
// Every write is logged: a refusal must leave the log empty.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "numacma/numacma.h"
#include "numacma/numacma.hpp"
#include "vfio/bind.hpp"

namespace fs = std::filesystem;
namespace vfio = numacma::vfio;
using numacma::Errc;
using numacma::Status;

namespace {

const fs::path kFixture = fs::path(NUMACMA_TEST_DATA) / "in-use";

bool contains(const std::string& s, const std::string& what) { return s.find(what) != std::string::npos; }

void put(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::trunc) << text;
}

std::string slurp(const fs::path& p) {
  std::ifstream f(p);
  return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

/** The fixture machine, copied where it may be written, vfio-pci loaded. */
struct Machine {
  fs::path top, sys, run;
  std::vector<std::pair<std::string, std::string>> log;

  Machine() {
    static int seq = 0;
    top = fs::temp_directory_path() / ("numacma-inuse-" + std::to_string(::getpid()) + "-" + std::to_string(seq++));
    fs::remove_all(top);
    fs::create_directories(top);
    fs::copy(kFixture, top / "in-use", fs::copy_options::recursive | fs::copy_options::copy_symlinks);
    sys = top / "in-use/sys";
    run = top / "run";
    put(sys / "bus/pci/drivers_probe", "");
    put(sys / "bus/pci/drivers/vfio-pci/unbind", "");
    for (const auto& e : fs::directory_iterator(sys / "bus/pci/devices")) put(e.path() / "driver_override", "");
    for (const auto& e : fs::directory_iterator(sys / "bus/pci/drivers")) put(e.path() / "unbind", "");
  }
  ~Machine() { fs::remove_all(top); }

  fs::path dev(const std::string& bdf) const { return sys / "bus/pci/devices" / bdf; }
  std::string driver_of(const std::string& bdf) const {
    std::error_code ec;
    const fs::path t = fs::read_symlink(dev(bdf) / "driver", ec);
    return ec ? std::string() : t.filename().string();
  }

  vfio::BindOptions options(const std::string& proc = "proc") {
    vfio::BindOptions o;
    o.sysfs_root = sys.string();
    o.proc_root = (top / "in-use" / proc).string();
    o.run_dir = run.string();
    o.addresses = [] {
      return numacma::Result<std::vector<vfio::IfAddress>>(
          std::vector<vfio::IfAddress>{{"enp7s0", "192.0.2.10"}, {"enp8s0", "198.51.100.7"}});
    };
    o.write = [this](const std::string& path, const std::string& text) -> Status {
      log.emplace_back(fs::path(path).lexically_relative(sys).string(), text);
      const fs::path p(path);
      if (p.filename() == "unbind") {
        fs::remove(dev(text) / "driver");
      } else if (p.filename() == "drivers_probe") {
        std::string over = slurp(dev(text) / "driver_override");
        while (!over.empty() && over.back() == '\n') over.pop_back();
        if (!over.empty() && driver_of(text).empty())
          fs::create_directory_symlink(sys / "bus/pci/drivers" / over, dev(text) / "driver");
      } else {
        put(p, text);
      }
      return {};
    };
    return o;
  }
};

/** Each device of the fixture that is in use, with a word of each use. */
const std::vector<std::pair<std::string, std::string>> kInUse = {
    {"0000:02:00.0", "nvme1n1p1 is held by dm-0"},
    {"0000:02:00.0", "dm-0 (which holds nvme1n1p1) is mounted on /srv"},
    {"0000:04:00.0", "nvme3n1p1 is mounted on /data"},
    {"0000:05:00.0", "sda1 is held by md127 (software RAID (md))"},
    {"0000:06:00.0", "nvme4n1 is mounted on /var/lib/data"},
    {"0000:07:00.0", "enp7s0 is up (operstate up)"},
    {"0000:08:00.0", "enp8s0 has address (198.51.100.7)"},
    {"0000:09:00.0", "nvme5n1 is used as swap"},
};

}  // namespace

// One machine for many binds (a copy of the tree takes a while): a refusal
// writes nothing, and each device binds apart from the others.

TEST(VfioBindInUse, EachUseIsRefusedBeforeAnyWriteAndNamed) {
  Machine m;
  for (const auto& [bdf, use] : kInUse) {
    const std::string before = m.driver_of(bdf);
    auto r = vfio::bind(bdf, m.options());
    ASSERT_FALSE(r.ok()) << bdf;
    EXPECT_EQ(r.error().code, Errc::busy) << bdf;
    EXPECT_TRUE(contains(r.error().message, bdf + " is in use: ")) << r.error().message;
    EXPECT_TRUE(contains(r.error().message, use)) << r.error().message;
    EXPECT_TRUE(contains(r.error().message, "--force")) << r.error().message;
    EXPECT_TRUE(m.log.empty()) << bdf << ": " << m.log.size() << " write(s), the first to " << m.log[0].first;
    EXPECT_EQ(m.driver_of(bdf), before) << bdf;
    EXPECT_FALSE(fs::exists(m.run / "vfio" / (bdf + ".driver"))) << "nothing remembered either";
  }
}

TEST(VfioBindInUse, ForceBindsAnywayAndSaysWhatWasInUse) {
  Machine m;
  std::map<std::string, std::vector<std::string>> overridden;  // bdf -> BindReport::in_use
  for (const auto& [bdf, use] : kInUse) {
    if (overridden.count(bdf) == 0) {
      const std::string before = m.driver_of(bdf);
      vfio::BindOptions o = m.options();
      o.force = true;
      auto r = vfio::bind(bdf, o);
      ASSERT_TRUE(r.ok()) << bdf << ": " << r.error().message;
      EXPECT_EQ(r->to, "vfio-pci") << bdf;
      EXPECT_EQ(m.driver_of(bdf), "vfio-pci") << bdf;
      EXPECT_EQ(slurp(m.run / "vfio" / (bdf + ".driver")), before + "\n");
      EXPECT_EQ(r->note.find("bound with force although in use: "), 0u) << r->note;
      overridden[bdf] = r->in_use;
    }
    bool named = false;
    for (const std::string& u : overridden[bdf]) named = named || contains(u, use);
    EXPECT_TRUE(named) << bdf << ": " << use;
  }
}

TEST(VfioBindInUse, TheRootFileSystemsDeviceIsNeverUnboundNotEvenWithForce) {
  for (const auto& [bdf, proc] : {std::pair<std::string, std::string>{"0000:01:00.0", "proc"},
                                  {"0000:05:00.0", "proc-root-on-lvm"}}) {  // / on dm-1 over md127 over sda1
    Machine m;
    for (const bool force : {false, true}) {
      vfio::BindOptions o = m.options(proc);
      o.force = force;
      auto r = vfio::bind(bdf, o);
      ASSERT_FALSE(r.ok()) << bdf << (force ? " with force" : "");
      EXPECT_EQ(r.error().code, Errc::busy);
      EXPECT_TRUE(contains(r.error().message, "is mounted on / (root file system: never unbound)")) << r.error().message;
      EXPECT_TRUE(contains(r.error().message, "not even with --force")) << r.error().message;
      EXPECT_TRUE(m.log.empty()) << bdf;
      EXPECT_NE(m.driver_of(bdf), "vfio-pci");
    }
  }
}

TEST(VfioBindInUse, FreeDevicesBindWithoutForce) {
  Machine m;
  for (const std::string bdf : {"0000:03:00.0", "0000:07:00.1", "0000:0a:00.0"}) {
    auto r = vfio::bind(bdf, m.options());
    ASSERT_TRUE(r.ok()) << bdf << ": " << r.error().message;
    EXPECT_EQ(m.driver_of(bdf), "vfio-pci");
    EXPECT_TRUE(r->in_use.empty());
    EXPECT_FALSE(contains(r->note, "force")) << r->note;
  }
}

TEST(VfioBindInUse, AProcThatCannotBeReadRefusesADeviceWithDisks) {
  Machine m;
  vfio::BindOptions o = m.options("nonexistent");
  o.force = true;  // force cannot skip the root file system's check
  auto r = vfio::bind("0000:03:00.0", o);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(contains(r.error().message, "cannot tell whether 0000:03:00.0's disks are mounted")) << r.error().message;
  EXPECT_TRUE(contains(r.error().message, "nothing was changed")) << r.error().message;
  EXPECT_TRUE(m.log.empty());
}

TEST(VfioBindInUse, ShortBdf) {
  Machine m;
  auto r = vfio::bind("09:00.0", m.options());
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(contains(r.error().message, "0000:09:00.0 is in use: nvme5n1 is used as swap")) << r.error().message;
}

// The public C++ and C calls: force reaches the check. They read the real
// /proc, so the tree is one whose names and numbers no real machine has:
// a disk held by a volume, refused from sysfs alone.
TEST(VfioBindInUse, PublicApiAndCApi) {
  const fs::path top = fs::temp_directory_path() / ("numacma-inuse-api-" + std::to_string(::getpid()));
  fs::remove_all(top);
  const fs::path sys = top / "sys", dev = sys / "bus/pci/devices/0000:05:00.0";
  const fs::path disk = dev / "ncmatest/ncmatest0";
  fs::create_directories(disk / "holders");
  fs::create_directory_symlink("../../../../../../class/block", disk / "subsystem");
  put(disk / "dev", "4094:1\n");
  put(sys / "class/block/ncmatest-vol/dev", "4094:2\n");
  fs::create_directory_symlink("../../../../../../class/block/ncmatest-vol", disk / "holders/ncmatest-vol");
  fs::create_directories(sys / "kernel/iommu_groups/7/devices");
  fs::create_directory_symlink("../../../../kernel/iommu_groups/7", dev / "iommu_group");
  fs::create_directories(sys / "bus/pci/drivers/nvme");
  fs::create_directory_symlink("../../../../bus/pci/drivers/nvme", dev / "driver");

  const Status refused = numacma::vfio_bind("0000:05:00.0", sys.string());
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, Errc::busy);
  EXPECT_TRUE(contains(refused.error().message, "ncmatest0 is held by ncmatest-vol")) << refused.error().message;
  numacma::VfioBindOptions o;
  o.sysfs_root = sys.string();
  o.force = true;  // past the check, to the next one: vfio-pci is not loaded in this tree
  EXPECT_EQ(numacma::vfio_bind("05:00.0", o).error().code, Errc::unsupported);

  EXPECT_EQ(ncma_vfio_bind("0000:05:00.0", sys.c_str()), NCMA_EBUSY);
  EXPECT_TRUE(contains(ncma_last_error_message(), "ncmatest0 is held by ncmatest-vol")) << ncma_last_error_message();
  EXPECT_EQ(ncma_vfio_bind_flags("0000:05:00.0", sys.c_str(), 0), NCMA_EBUSY);
  EXPECT_EQ(ncma_vfio_bind_flags("05:00.0", sys.c_str(), NCMA_VFIO_BIND_FORCE), NCMA_EUNSUPPORTED);
  EXPECT_TRUE(contains(ncma_last_error_message(), "vfio-pci is not loaded")) << ncma_last_error_message();
  EXPECT_EQ(ncma_vfio_bind_flags("0000:05:00.0", sys.c_str(), 0x2), NCMA_EINVAL);
  EXPECT_EQ(ncma_vfio_bind_flags(nullptr, sys.c_str(), 0), NCMA_EINVAL);
  EXPECT_TRUE(fs::is_symlink(dev / "driver")) << "nothing was unbound";
  fs::remove_all(top);
}
