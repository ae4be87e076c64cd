// numacma-vmcheck: the checks that run inside a QEMU guest (tests/vm/vm.py).
// Each subcommand is one check; exit 0 = pass, 77 = skip, anything else =
// fail. What the library claims is verified here by independent means:
// move_pages(2) for the node of every page, /proc/self/pagemap for physical
// addresses, and QEMU's edu device writing through the returned DMA address.
//
//   topo-match TOPO_JSON EXPECT_JSON      numacma topo --json vs what QEMU was given
//   placement BACKING                     every page of pernuma<N> buffers on node N
//   contiguity NODE                       hugetlb buffers: page i at dma_addr + i*4K
//   dma BDF MASK                          edu DMA writes at start/middle/end of an area
//   exhaust NODE POLICY ORDER             fill pernuma<N>, fallbacks as docs/semantics.md says
//   mask BDF MASK                         a 28-bit device never gets memory above it: no
//                                         reachable area here (R5) -> a clear error; its
//                                         own area on node 0 -> buffers below the mask
//   nohuge NODE                           auto picks anon where a node has no hugepages
//   vfio-*                                the VFIO checks: guest/vfio_checks.cpp
//   cmdq JSON DRIVER DEVICE ORDER         `numacma bench cmdq --json` across nodes: threads
//                                         on CPUs of the driver/device nodes, the queue in
//                                         pernuma<N> of each node of ORDER (local first)
//   dmapool [BDF MASK]...                 DmaPool blocks (512 B and 8 KiB) for a device on
//                                         every node and for each edu: on the node by
//                                         move_pages, at their pages' DMA offset by pagemap,
//                                         inside their boundary; the edu DMAs into blocks;
//                                         destroy() leaves every area unused
//   shared EDU MASK OTHER                 a reserved pool (numacma::reserve, hugetlb), two
//                                         processes attached: A with the edu, B with the device
//                                         OTHER on another node; each buffer from pernuma<its
//                                         device's node> (move_pages agrees); the edu writes A's
//                                         buffer and B's (B reads it back); status shows both
//                                         holders while they hold; whole after they detach
//
// The checks live by concern: numa_checks.cpp, shared_checks.cpp,
// dmapool_checks.cpp, vfio_checks.cpp + vfio_errors.cpp; the helpers they
// share: vmcheck.hpp, witnesses.cpp. This file: the check table (main).
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "vmcheck.hpp"

using namespace vmcheck;

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  const std::vector<std::string> a(argv + 1, argv + argc);
  auto need = [&](std::size_t n) {
    if (a.size() < n) {
      std::fprintf(stderr, "usage: numacma-vmcheck CHECK ARGS (see the source)\n");
      std::exit(2);
    }
  };
  need(1);
  const std::string& c = a[0];
  int rc = 2;
  if (c == "topo-match") need(3), rc = check_topo(a[1], a[2]);
  else if (c == "placement") need(2), rc = check_placement(a[1]);
  else if (c == "contiguity") need(2), rc = check_contiguity(std::stoi(a[1]));
  else if (c == "dma") need(3), rc = check_dma(a[1], std::stoull(a[2], nullptr, 16));
  else if (c == "mask") need(3), rc = check_mask(a[1], std::stoull(a[2], nullptr, 16));
  else if (c == "exhaust") need(3), rc = check_exhaust(std::stoi(a[1]), a[2], a.size() > 3 ? a[3] : "");
  else if (c == "nohuge") need(2), rc = check_nohuge(std::stoi(a[1]));
  else if (c == "cmdq") need(5), rc = check_cmdq(a[1], std::stoi(a[2]), std::stoi(a[3]), a[4]);
  else if (c == "shared") rc = check_shared(std::vector<std::string>(a.begin() + 1, a.end()));
  else if (c == "dmapool") rc = check_dmapool(std::vector<std::string>(a.begin() + 1, a.end()));
  else if (c.rfind("vfio-", 0) == 0) rc = run_vfio_check(a);
  else std::fprintf(stderr, "unknown check %s\n", c.c_str());
  if (rc == -1) std::fprintf(stderr, "unknown check %s\n", c.c_str()), rc = 2;
  if (rc == 0 && g_failures) rc = 1;
  std::printf("%s\n", rc == 0 ? "PASS" : rc == 77 ? "SKIP" : "FAIL");
  return rc;
}
