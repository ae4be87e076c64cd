// nvme_example.cpp — the polled user-space NVMe driver (src/nvme) on
// a numacma pool in vfio mode: reads 64 LBAs, writes a pattern to them,
// reads it back and verifies it, writes the original contents back and
// verifies them, and shows on which NUMA node and at which IOVA every queue
// and buffer lives.
//
// usage: nvme_example BDF [--params P] [--backing B]
//   BDF      the controller, bound to vfio-pci (numacma's vfio_bind, or
//            `echo vfio-pci > /sys/bus/pci/devices/BDF/driver_override`)
//   P        kernel-style pool parameters (default "cma=16M cma_pernuma=8M")
//   B        auto | hugetlb | anon | sim (default anon: 4 KiB pages, which
//            the IOMMU makes contiguous for the device)
// Exit code 0 only when every LBA read back as written and was restored.
#include <cstdio>
#include <cstring>
#include <string>

#include <numacma/numacma.hpp>

#include "nvme/selftest.hpp"

int main(int argc, char** argv) {
  std::string bdf, params = "cma=16M cma_pernuma=8M", backing = "anon";
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if ((a == "--params" || a == "--backing") && i + 1 < argc) {
      (a == "--params" ? params : backing) = argv[++i];
    } else if (!a.empty() && a[0] != '-' && bdf.empty()) {
      bdf = a;
    } else {
      std::fprintf(stderr, "usage: %s BDF [--params P] [--backing auto|hugetlb|anon|sim]\n", argv[0]);
      return 2;
    }
  }
  if (bdf.empty()) {
    std::fprintf(stderr, "usage: %s BDF [--params P] [--backing auto|hugetlb|anon|sim]\n", argv[0]);
    return 2;
  }

  // The pool maps every area into the controller's IOMMU container; the
  // controller's driver declares a 64-bit DMA mask.
  numacma::PoolOptions opts;
  opts.params = params;
  opts.backing = backing;
  opts.vfio = {{bdf, ~std::uint64_t{0}}};
  numacma::Result<numacma::Pool> pool = numacma::Pool::create(opts);
  if (!pool) return std::fprintf(stderr, "pool: %s\n", pool.error().message.c_str()), 1;

  nvme_example::SelftestOptions st;
  st.announce = [&](const std::string& plan) { std::printf("%s %s\n", bdf.c_str(), plan.c_str()); };
  const nvme_example::SelftestResult r = nvme_example::selftest(*pool, bdf, st);

  std::printf("%-9s %-12s %4s  %-18s %8s\n", "structure", "area", "node", "iova", "bytes");
  for (const nvme_example::DmaStructure& d : r.dma)
    std::printf("%-9s %-12s %4d  0x%-16llx %8zu\n", d.name.c_str(), d.area.c_str(), d.node,
                static_cast<unsigned long long>(d.iova), d.bytes);
  std::printf("controller %s on node %d: %s, LBA size %u\n", bdf.c_str(), r.controller_node,
              r.model.empty() ? "(not identified)" : r.model.c_str(), r.lba_size);
  std::printf("LBAs written %llu, verified %llu of %llu, restored %llu\n",
              static_cast<unsigned long long>(r.lbas_written), static_cast<unsigned long long>(r.lbas_verified),
              static_cast<unsigned long long>(r.lbas_requested), static_cast<unsigned long long>(r.lbas_restored));
  if (!r.ok) {
    std::printf("FAILED: %s\n", r.error.empty() ? "not every LBA verified" : r.error.c_str());
    if (!r.restore_error.empty() && r.restore_error != r.error) std::printf("%s\n", r.restore_error.c_str());
    return 1;
  }
  std::printf("OK: every LBA read back as written, and its original contents are back\n");
  return 0;
}
