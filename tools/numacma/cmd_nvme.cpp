// `numacma nvme-selftest BDF`: drives an NVMe controller bound to vfio-pci
// with the NVMe driver (src/nvme: controller.hpp, selftest.hpp) on a pool in vfio
// mode: identify, one I/O queue pair, then the self-test on 64 LBAs of
// namespace 1. By default it is read-modify-restore (as badblocks -n): the
// LBAs' contents are read, the pattern written and verified, the contents
// written back and verified. --destructive --yes leaves the pattern there.
// Before the first I/O one line on stderr says which LBAs and how. Prints
// where every DMA structure lives. With --json: one object a line, first
// {"op":"dma",...} per structure, then one {"op":"result",...}. Exit 0 only
// when every LBA verified and (by default) every LBA was restored; 1 when
// the pool or the test failed (a failed restore loudly, naming the LBAs);
// 2 on bad usage, --destructive without --yes included.
#include <cstdio>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "cli_util.hpp"
#include "commands.hpp"
#include "numacma/numacma.hpp"
#include "nvme/selftest.hpp"
#include "topology/topology.hpp"

namespace numacma::cli {
namespace {

struct NvmeArgs {
  std::string bdf;
  std::string params = "cma=16M cma_pernuma=8M";
  std::string backing;  // "": anon, or hugetlb with --iommu noiommu
  unsigned dma_bits = 64;
  std::string iommu = "auto";
  bool json = false;
  bool destructive = false;
  bool yes = false;
};

std::string ranges_text(const std::vector<numacma::nvme::LbaRange>& v) {
  std::string s;
  for (const numacma::nvme::LbaRange& x : v)
    s += (s.empty() ? "" : ", ") + std::to_string(x.first) +
         (x.first == x.last ? std::string() : "-" + std::to_string(x.last));
  return s;
}

void print_result_json(const numacma::nvme::SelftestResult& r, const VfioReport& vfio) {
  nlohmann::ordered_json o;
  o["op"] = "result";
  o["ok"] = r.ok;
  o["iommu"] = vfio.iommu;    // "iommufd", "type1" or "noiommu"; "" when no pool was made
  o["unsafe"] = vfio.unsafe;  // no-IOMMU mode: the "iova"s are physical addresses
  o["controller_node"] = r.controller_node;
  o["nsid"] = r.nsid;
  o["mode"] = r.destructive ? "destructive" : "restore";
  o["first_lba"] = r.first_lba;
  o["lbas_written"] = r.lbas_written;
  o["lbas_verified"] = r.lbas_verified;
  o["restored"] = r.restored;
  o["lbas_restored"] = r.lbas_restored;
  nlohmann::ordered_json lost = nlohmann::ordered_json::array();
  for (const numacma::nvme::LbaRange& x : r.unrestored) lost.push_back({{"first", x.first}, {"last", x.last}});
  o["unrestored"] = lost;
  o["error"] = r.error;
  o["model"] = r.model;
  std::printf("%s\n", o.dump().c_str());
}

void run(const NvmeArgs& a) {
  Result<std::string> parsed = topo::parse_bdf(a.bdf);
  if (!parsed) return usage_error("nvme-selftest", parsed.error().message);
  const std::string bdf = *parsed;
  numacma::nvme::SelftestOptions st;
  if (a.destructive && !a.yes)
    return usage_error("nvme-selftest",
                       "--destructive overwrites LBAs " + std::to_string(st.first_lba) + "-" +
                           std::to_string(st.first_lba + st.lbas - 1) + " of namespace " +
                           std::to_string(st.controller.nsid) + " of " + bdf +
                           " with a test pattern and does not restore them (a partition table and the start "
                           "of a file system live there): add --yes if that data may be lost, or leave out "
                           "--destructive for the default run, which writes the original contents back");
  st.destructive = a.destructive;
  st.announce = [&bdf](const std::string& plan) {
    std::fprintf(stderr, "numacma nvme-selftest: %s %s\n", bdf.c_str(), plan.c_str());
    std::fflush(stderr);
  };

  PoolOptions opts;
  opts.params = a.params;
  opts.backing = !a.backing.empty() ? a.backing : a.iommu == "noiommu" ? "hugetlb" : "anon";
  // The mask the driver declares, as dma_set_mask_and_coherent(DMA_BIT_MASK(N)).
  const std::uint64_t mask = a.dma_bits >= 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << a.dma_bits) - 1;
  opts.vfio = {{bdf, mask}};
  opts.iommu = iommu_of(a.iommu);

  numacma::nvme::SelftestResult r;  // as selftest() leaves it when nothing could be done
  r.nsid = st.controller.nsid;
  r.restored = !a.destructive;  // nothing written
  r.destructive = a.destructive;
  Result<Pool> pool = Pool::create(opts);
  if (!pool) {
    r.error = "creating the pool: " + pool.error().message;
  } else {
    r = numacma::nvme::selftest(*pool, bdf, st);
  }
  const VfioReport vfio = pool ? pool->vfio_report() : VfioReport{};  // what every report below says
  // A restore that failed is said on stderr whatever the output format:
  // those LBAs may hold the test's pattern instead of the user's data.
  if (!r.restore_error.empty())
    std::fprintf(stderr, "numacma nvme-selftest: %s: %s\n", bdf.c_str(), r.restore_error.c_str());

  if (a.json) {
    for (const numacma::nvme::DmaStructure& d : r.dma) {
      nlohmann::ordered_json o;
      o["op"] = "dma";
      o["name"] = d.name;
      o["area"] = d.area;
      o["node"] = d.node;
      o["iova"] = hex(d.iova);
      o["bytes"] = d.bytes;
      std::printf("%s\n", o.dump().c_str());
    }
    print_result_json(r, vfio);
    std::fflush(stdout);
    if (!r.ok) exit_code() = 1;  // the result object says why; stdout stays pure JSON lines
    return;
  }

  if (vfio.unsafe) std::printf("%s\n", kNoIommuWarning);
  if (!r.dma.empty()) {
    std::printf("DMA structures of %s (dma mode %s%s)\n", bdf.c_str(), pool ? pool->dma_mode().c_str() : "-",
                vfio.unsafe ? "" : (" over " + (pool ? vfio.iommu : std::string("-"))).c_str());
    Table t({"name", "area", "node", vfio.unsafe ? "phys addr" : "iova", "bytes"});  // JSON keeps "iova"
    for (const numacma::nvme::DmaStructure& d : r.dma)
      t.add({d.name, d.area, std::to_string(d.node), hex(d.iova), std::to_string(d.bytes)});
    t.print();
    std::printf("\n");
  }
  if (pool) {
    std::printf("controller  %s on node %d: %s\n", bdf.c_str(), r.controller_node,
                r.model.empty() ? "(not identified)" : r.model.c_str());
    std::printf("LBAs        %llu written, %llu verified of %llu (LBA size %u, namespace %u)\n",
                static_cast<unsigned long long>(r.lbas_written), static_cast<unsigned long long>(r.lbas_verified),
                static_cast<unsigned long long>(r.lbas_requested), r.lba_size, r.nsid);
    if (r.destructive)
      std::printf("restored    no: --destructive, the pattern stays on the disk\n");
    else if (!r.unrestored.empty())
      std::printf("restored    NO: LBAs %s may have lost their original contents\n",
                  ranges_text(r.unrestored).c_str());
    else
      std::printf("restored    %llu LBAs: original contents written back and read back the same\n",
                  static_cast<unsigned long long>(r.lbas_restored));
  }
  std::fflush(stdout);
  if (!r.ok) return failure("nvme-selftest", r.error.empty() ? "not every LBA verified" : r.error);
  std::printf("ok          every LBA read back as written\n");
}

}  // namespace

void register_nvme(CLI::App& app) {
  auto args = std::make_shared<NvmeArgs>();
  CLI::App* sub = app.add_subcommand(
      "nvme-selftest",
      "drive an NVMe controller bound to vfio-pci with the polled user-space NVMe driver: read 64 LBAs, "
      "write a pattern, read it back and verify it, write the original contents back and verify "
      "them; and show where its queues live");
  sub->add_option("bdf", args->bdf, "PCI address of the controller, e.g. 0000:05:00.0 or 05:00.0")->required();
  sub->add_option("--params", args->params, "kernel-style pool parameters (default \"cma=16M cma_pernuma=8M\")");
  sub->add_option("--backing", args->backing, "auto | hugetlb | anon | sim (default anon; hugetlb with --iommu noiommu)")
      ->check(CLI::IsMember({"auto", "hugetlb", "anon", "sim"}));
  sub->add_option("--dma-bits", args->dma_bits, "the DMA mask the driver declares, in bits (default 64)")
      ->check(CLI::Range(12u, 64u));
  add_iommu_option(sub, args->iommu);
  sub->add_flag("--json", args->json, "one JSON object a line: a \"dma\" object per structure, then the result");
  sub->add_flag("--destructive", args->destructive,
                "overwrite the LBAs with the pattern and leave it there (no read first, no restore): their "
                "data is lost. Needs --yes");
  sub->add_flag("--yes", args->yes, "confirm --destructive");
  sub->callback([args] { run(*args); });
}

}  // namespace numacma::cli
