// `numacma doctor`'s judgement (tools/numacma/doctor.hpp): the facts of the
// host fixtures tests/data/host-* read through src/os (os::read_host), and
// hand-made facts for what a fixture cannot show (a user refused /dev/vfio).
// Each check's state, the exact fix lines, and dma_usable.
#include <gtest/gtest.h>

#include <string>

#include "doctor.hpp"

using numacma::Errc;
using numacma::cli::doctor::Check;
using numacma::cli::doctor::Input;
using numacma::cli::doctor::Report;
using numacma::cli::doctor::State;
namespace doctor = numacma::cli::doctor;
namespace os = numacma::os;

namespace {

const std::string kData = NUMACMA_TEST_DATA;

/** The doctor's input for host fixture `host` over the sysfs tree `sysfs`. */
Input fixture(const std::string& host, const std::string& sysfs) {
  Input in;
  in.paths.sysfs_root = kData + "/" + sysfs;
  in.paths.proc_root = kData + "/" + host + "/proc";
  in.paths.dev_root = kData + "/" + host + "/dev";
  in.paths.modules_root = kData + "/" + host + "/lib/modules";
  in.fixture = true;
  in.files = os::read_host(in.paths);
  in.topology = numacma::topo::Topology::from_sysfs(in.paths.sysfs_root);
  in.pools = std::vector<std::string>{};
  in.run_dir = "/run/numacma";
  return in;
}

const Check& check(const Report& r, const std::string& name) {
  for (const Check& c : r.checks)
    if (c.name == name) return c;
  ADD_FAILURE() << "no check named " << name;
  static const Check none;
  return none;
}

bool has(const std::string& s, const std::string& what) { return s.find(what) != std::string::npos; }

}  // namespace

TEST(Doctor, ProbeReadsAFixtureAndNeverThisHostsPagemap) {
  const Input in = fixture("host-vfio", "x86-2s");
  EXPECT_EQ(in.files.osrelease, "6.1.0-test-amd64");
  EXPECT_EQ(in.files.iommu_groups.size(), 4u);
  EXPECT_TRUE(in.files.vfio_pci_driver);
  EXPECT_TRUE(has(in.files.vfio_pci_module, "kernel/drivers/vfio/pci/vfio-pci.ko.xz"));
  EXPECT_TRUE(in.files.dev_vfio);
  ASSERT_EQ(in.files.dev_vfio_groups.size(), 1u);
  EXPECT_EQ(in.files.dev_vfio_groups[0].first, "48");
  EXPECT_EQ(in.files.pagemap_readable, -1) << "a fixture's proc root: CapEff stands in for the probe";
  const Input bare = fixture("host-bare", "vm1");
  EXPECT_FALSE(bare.files.iommu_groups_dir);
  EXPECT_FALSE(bare.files.dev_vfio);
  EXPECT_TRUE(bare.files.vfio_pci_module.empty());
  os::HostPaths nowhere;
  nowhere.proc_root = "/nonexistent/proc";
  const os::HostFiles none = os::read_host(nowhere);
  ASSERT_EQ(none.unreadable.count("/nonexistent/proc/cmdline"), 1u);
  EXPECT_EQ(none.unreadable.at("/nonexistent/proc/cmdline"),
            "open(/nonexistent/proc/cmdline): No such file or directory")
      << "what could not be read says why";
  EXPECT_EQ(none.pagemap_readable, -1);
}

TEST(Doctor, AnIommuHostWithVfioIsUsableThroughVfio) {
  const Input in = fixture("host-vfio", "x86-2s");
  const Report r = doctor::diagnose(in);
  EXPECT_EQ(check(r, "iommu").state, State::ok);
  EXPECT_TRUE(has(check(r, "iommu").detail, "4 IOMMU group(s)"));
  EXPECT_TRUE(has(check(r, "iommu").detail, "intel_iommu=on iommu=pt"));
  EXPECT_TRUE(has(check(r, "iommu").detail, "passthrough"));
  EXPECT_EQ(check(r, "interrupt_remapping").state, State::ok);
  EXPECT_EQ(check(r, "vfio_pci").state, State::ok);
  EXPECT_EQ(check(r, "dev_vfio").state, State::ok);
  EXPECT_TRUE(has(check(r, "dev_vfio").detail, "groups read-write: 48")) << check(r, "dev_vfio").detail;
  EXPECT_EQ(check(r, "hugetlbfs").state, State::ok);
  EXPECT_EQ(check(r, "hugepages").state, State::ok) << check(r, "hugepages").detail;  // 1000 and 512 free
  // No CAP_SYS_ADMIN, RLIMIT_MEMLOCK 8 MiB.
  EXPECT_EQ(check(r, "pagemap").state, State::failed);
  EXPECT_TRUE(has(check(r, "pagemap").fix, "run as root"));
  EXPECT_EQ(check(r, "memlock").state, State::failed);
  EXPECT_TRUE(has(check(r, "memlock").detail, "8 MiB")) << check(r, "memlock").detail;
  EXPECT_TRUE(has(check(r, "kernel_cma").detail, "CmaTotal 65536 kB"));
  EXPECT_TRUE(has(check(r, "kernel_cma").detail, "cma=64M"));
  EXPECT_TRUE(r.via_vfio);
  EXPECT_FALSE(r.via_physical);
  EXPECT_TRUE(r.dma_usable());
  EXPECT_TRUE(has(r.summary, "yes: ")) << r.summary;
  EXPECT_TRUE(has(r.summary, "through VFIO")) << r.summary;
  EXPECT_TRUE(has(r.summary, "but see memlock")) << r.summary;
}

// VFIO's no-IOMMU mode puts groups under kernel/iommu_groups with no IOMMU
// behind them (named vfio-noiommu): they are not an IOMMU, and VFIO's
// translated path is not there; the fix names the mode as the unsafe way.
TEST(Doctor, NoIommuGroupsAreNotAnIommu) {
  Input in = fixture("host-vfio", "x86-2s");
  numacma::topo::PciDevice nvme;
  nvme.bdf = "0000:17:00.0";
  nvme.iommu_group = 0;
  nvme.noiommu_group = true;
  nvme.driver = "vfio-pci";
  in.topology = numacma::topo::Topology::from_parts(in.topology->nodes(), {}, {nvme});
  in.files.iommu_groups = {"0"};
  const Report r = doctor::diagnose(in);
  const Check& c = check(r, "iommu");
  EXPECT_EQ(c.state, State::failed) << c.detail;
  EXPECT_TRUE(has(c.detail, "VFIO's no-IOMMU groups")) << c.detail;
  EXPECT_TRUE(has(c.fix, "intel_iommu=on")) << c.fix;
  EXPECT_TRUE(has(c.fix, "--iommu noiommu")) << c.fix;
  EXPECT_FALSE(r.via_vfio) << "no IOMMU: VFIO's translated path is not there";
  // A real group beside it: the IOMMU is on, and only the real group counts.
  in.files.iommu_groups = {"0", "13"};
  const Report both = doctor::diagnose(in);
  EXPECT_EQ(check(both, "iommu").state, State::ok);
  EXPECT_TRUE(has(check(both, "iommu").detail, "on: 1 IOMMU group(s)")) << check(both, "iommu").detail;
}

TEST(Doctor, ABareHostIsNotUsableAndEachFailureHasItsExactFix) {
  const Input in = fixture("host-bare", "vm1");
  const Report r = doctor::diagnose(in);
  EXPECT_FALSE(r.dma_usable());
  EXPECT_EQ(check(r, "nodes").state, State::ok);
  const Check& hp = check(r, "hugepages");
  EXPECT_EQ(hp.state, State::failed);
  // vm1: node 0 has 0 of 0 2 MiB hugepages and 5.8 GiB: an eighth of it, 373, not 512.
  EXPECT_EQ(hp.fix, "as root: echo 373 > " + kData +
                        "/vm1/devices/system/node/node0/hugepages/hugepages-2048kB/nr_hugepages");
  const Check& iommu = check(r, "iommu");
  EXPECT_EQ(iommu.state, State::failed);
  EXPECT_TRUE(has(iommu.fix, "amd_iommu=on")) << iommu.fix;  // AuthenticAMD
  EXPECT_FALSE(has(iommu.fix, "intel_iommu")) << iommu.fix;
  EXPECT_EQ(check(r, "interrupt_remapping").state, State::failed);
  EXPECT_EQ(check(r, "vfio_pci").state, State::failed);
  EXPECT_TRUE(has(check(r, "vfio_pci").fix, "linux-image-6.1.0-bare-amd64"));
  EXPECT_EQ(check(r, "dev_vfio").state, State::failed);
  EXPECT_EQ(check(r, "dev_vfio").fix, "modprobe vfio-pci");
  EXPECT_EQ(check(r, "hugetlbfs").state, State::note);
  EXPECT_TRUE(check(r, "hugetlbfs").ok());
  EXPECT_TRUE(has(check(r, "kernel_cma").detail, "CmaTotal 0 kB"));
  EXPECT_TRUE(has(r.summary, "no: ")) << r.summary;
  EXPECT_TRUE(has(r.summary, "For physical addresses: as root: echo 373 > ")) << r.summary;
  EXPECT_TRUE(has(r.summary, "nr_hugepages, then run numacma as root. Or for VFIO: ")) << r.summary;
  EXPECT_EQ(r.summary.find("modprobe vfio-pci"), r.summary.rfind("modprobe vfio-pci")) << "each fix once";
  EXPECT_TRUE(has(r.summary, "amd_iommu=on")) << r.summary;
  EXPECT_TRUE(has(r.summary, "on this fixture")) << r.summary;
}

TEST(Doctor, RootWithHugepagesIsUsableWithPhysicalAddresses) {
  const Input in = fixture("host-root", "epyc-8n");
  const Report r = doctor::diagnose(in);
  EXPECT_EQ(check(r, "pagemap").state, State::ok);
  EXPECT_EQ(check(r, "memlock").state, State::ok);  // CAP_IPC_LOCK
  EXPECT_TRUE(r.via_physical);
  EXPECT_FALSE(r.via_vfio);
  EXPECT_TRUE(r.dma_usable());
  // Node 7 alone has no free hugepage: its line alone, 256 + 512.
  const Check& hp = check(r, "hugepages");
  EXPECT_EQ(hp.state, State::failed);
  EXPECT_EQ(hp.fix, "as root: echo 768 > " + kData +
                        "/epyc-8n/devices/system/node/node7/hugepages/hugepages-2048kB/nr_hugepages");
  // intel_iommu=off on the command line: the fix says to remove it.
  EXPECT_TRUE(has(check(r, "iommu").fix, "remove intel_iommu=off")) << check(r, "iommu").fix;
  EXPECT_TRUE(has(check(r, "iommu").fix, "intel_iommu=on")) << check(r, "iommu").fix;
}

TEST(Doctor, WhatAFixtureCannotShow) {
  Input in = fixture("host-vfio", "x86-2s");
  // A user refused /dev/vfio/vfio: not usable through VFIO.
  in.files.dev_vfio_error = "access(/dev/vfio/vfio, R_OK | W_OK): Permission denied";
  Report r = doctor::diagnose(in);
  EXPECT_EQ(check(r, "dev_vfio").state, State::failed);
  EXPECT_TRUE(has(check(r, "dev_vfio").detail, "Permission denied"));
  EXPECT_FALSE(r.via_vfio);
  EXPECT_FALSE(r.dma_usable());
  // Every group node refused: the same.
  in.files.dev_vfio_error.clear();
  in.files.dev_vfio_groups = {{"48", "access(/dev/vfio/48, R_OK | W_OK): Permission denied"}};
  r = doctor::diagnose(in);
  EXPECT_EQ(check(r, "dev_vfio").state, State::failed);
  EXPECT_TRUE(has(check(r, "dev_vfio").fix, "udev"));
  // The pagemap probe of this process outranks CapEff.
  in.files.pagemap_readable = 1;
  EXPECT_EQ(check(doctor::diagnose(in), "pagemap").state, State::ok);
  // No IR- entries, but the IOMMU supports it: unknown, not failed.
  in.files.interrupts = "  24:  1  PCI-MSI  eth0\n";
  in.files.iommu_units = {{"dmar0", "f050da"}};  // bit 3 (IR) set
  EXPECT_EQ(check(doctor::diagnose(in), "interrupt_remapping").state, State::unknown);
  // arm64: not applicable.
  in.files.cpuinfo = "processor\t: 0\nCPU implementer\t: 0x48\n";
  EXPECT_EQ(check(doctor::diagnose(in), "interrupt_remapping").state, State::ok);
  EXPECT_TRUE(has(doctor::iommu_fix(in.files.cpuinfo, ""), "SMMU"));
  EXPECT_TRUE(has(doctor::iommu_fix("", ""), "intel_iommu=on (Intel) or amd_iommu=on (AMD)"));
  // Reservations listed, or the error that hid them.
  in.pools = std::vector<std::string>{"dpdk", "spdk"};
  EXPECT_TRUE(has(check(doctor::diagnose(in), "shared_pools").detail, "2 under /run/numacma/pools: dpdk, spdk"));
  in.pools = numacma::make_error(Errc::permission, "run directory: /run/numacma is world-writable");
  EXPECT_EQ(check(doctor::diagnose(in), "shared_pools").state, State::unknown);
  // No topology at all.
  in.topology = numacma::make_error(Errc::not_found, "open(x/devices/system/node/online): No such file");
  r = doctor::diagnose(in);
  EXPECT_EQ(check(r, "nodes").state, State::failed);
  EXPECT_FALSE(r.via_physical);
}

TEST(Doctor, TextAndJsonShapes) {
  const Input in = fixture("host-bare", "vm1");
  const Report r = doctor::diagnose(in);
  const std::string t = doctor::doctor_text(in, r);
  EXPECT_EQ(t.rfind("numacma doctor: a FIXTURE, not this host", 0), 0u) << t;
  EXPECT_TRUE(has(t, "\nFAILED   hugepages ")) << t;
  EXPECT_TRUE(has(t, "fix: as root: echo 373 > ")) << t;
  EXPECT_TRUE(has(t, "\nnote     hugetlbfs ")) << t;
  EXPECT_TRUE(has(t, "\ndma_usable: no: ")) << t;
  const auto j = doctor::doctor_json(in, r);
  EXPECT_EQ(j["dma_usable"], false);
  EXPECT_EQ(j["fixture"], true);
  EXPECT_TRUE(j["dma_paths"].empty());
  ASSERT_EQ(j["checks"].size(), 11u);
  for (const auto& c : j["checks"]) {
    std::vector<std::string> keys;
    for (auto it = c.begin(); it != c.end(); ++it) keys.push_back(it.key());
    EXPECT_EQ(keys, (std::vector<std::string>{"name", "ok", "detail", "fix", "state"}));
    if (c["state"] == "failed") EXPECT_FALSE(c["fix"].get<std::string>().empty()) << c.dump();
    if (c["state"] == "ok") EXPECT_EQ(c["fix"], "") << c.dump();
    EXPECT_EQ(c["ok"].get<bool>(), c["state"] == "ok" || c["state"] == "note") << c.dump();
  }
}
