// The VFIO checks of numacma-vmcheck (tests/vm/vm.py, topology vfio2: q35
// with an emulated Intel IOMMU, an NVMe controller on each node). What the
// library claims is verified by independent means: move_pages(2) for the node
// of every page, the NVMe controller's own DMA (through the IOVAs the pool
// handed out) for the addresses, the guest kernel's DMAR fault log for what
// the IOMMU blocked, and the container's DMA_AVAIL for leaked mappings.
//
//   vfio-nvme BDF NODE [BITS]     the driver on the controller: identify, write
//                                 and read back through a multi-page buffer of an
//                                 anonymous (IOVA-only) area; every queue and
//                                 buffer on NODE; every IOVA below 2^BITS
//   vfio-json FILE NODE [BITS]    `numacma nvme-selftest --json` output: one dma
//                                 line per structure on NODE, then ok, every LBA
//                                 verified and restored
//   vfio-noiommu-phys FILE NODE   the same output in VFIO's no-IOMMU mode: every
//                                 structure's address is physical, inside NODE's
//                                 memory (its zones' pfn spans, /proc/zoneinfo)
//   vfio-fault BDF                a freed page-fallback buffer is unmapped and an
//                                 IOVA outside every mapping is blocked: DMAR
//                                 faults logged, live buffers untouched
//   vfio-attach BDF0 BDF1         BDF1 attached after creation reaches the areas
//                                 mapped for BDF0 alone
//   vfio-avail BDF CYCLES         CYCLES alloc/free of page-fallback buffers leave
//                                 DMA_AVAIL where it started (type1), the same
//                                 IOVAs mapped again each cycle (iommufd)
//   vfio-errors NVME EDU          unbound device, mask too narrow, permission,
//                                 RLIMIT_MEMLOCK, IOVA space exhausted (and nothing
//                                 left mapped after a failed create)
//   vfio-bench BDF                figures: pool creation with and without VFIO
//                                 (1 GiB of 2 MiB and of 4 KiB pages), alloc+free
//                                 of an area buffer and of a page buffer
// vfio-errors and vfio-bench are in vfio_errors.cpp; the helpers both files
// use in vfio_checks.hpp.
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <numaif.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "numacma/numacma.hpp"
#include "nvme/controller.hpp"
#include "nvme/selftest.hpp"
#include "vfio_checks.hpp"
#include "vmcheck.hpp"

using numacma::DmaBuffer;
using numacma::Pool;
using numacma::PoolOptions;

namespace vmcheck::vfio {

std::uint64_t mask_of(int bits) { return bits >= 64 ? ~0ULL : (1ULL << bits) - 1; }

std::optional<Pool> make_pool(const std::string& params, const std::string& backing,
                              std::vector<numacma::VfioDeviceSpec> vfio) {
  PoolOptions o;
  o.params = params;
  o.backing = backing;
  o.vfio = std::move(vfio);
  auto p = Pool::create(o);
  if (!p) {
    fail("Pool::create(" + params + ", " + backing + "): " + p.error().message);
    return std::nullopt;
  }
  info("VFIO interface: " + p->vfio_report().iommu);  // iommufd where the kernel has it (auto)
  return std::move(*p);
}

std::string run(const std::string& cmd) {
  std::string out;
  if (FILE* f = ::popen(cmd.c_str(), "r")) {
    char buf[4096];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
    ::pclose(f);
  }
  return out;
}


namespace {

std::vector<int> page_nodes(const void* p, std::size_t bytes) {
  const std::size_t n = (bytes + kPage - 1) / kPage;
  std::vector<void*> pages(n);
  std::vector<int> status(n, -1);
  const auto base = reinterpret_cast<std::uintptr_t>(p) & ~(kPage - 1);
  for (std::size_t i = 0; i < n; ++i) pages[i] = reinterpret_cast<void*>(base + i * kPage);
  if (move_pages(0, n, pages.data(), nullptr, status.data(), 0) != 0) return {};
  return status;
}

bool on_node(const void* p, std::size_t bytes, int node, const std::string& what) {
  const std::vector<int> st = page_nodes(p, bytes);
  const auto bad = std::count_if(st.begin(), st.end(), [&](int s) { return s != node; });
  if (st.empty() || bad != 0) {
    fail(what + ": " + std::to_string(bad) + " of " + std::to_string(st.size()) + " pages not on node " +
         std::to_string(node) + (st.empty() ? "" : " (page 0 on " + std::to_string(st[0]) + ")"));
    return false;
  }
  return true;
}

/** Lines of the kernel log that report a DMAR fault at the page of `iova`. */
int dmar_faults_at(std::uint64_t iova) {
  const std::string log = run("dmesg");
  char needle[48];
  std::snprintf(needle, sizeof needle, "fault addr 0x%llx ", static_cast<unsigned long long>(iova & ~0xfffULL));
  int n = 0;
  std::istringstream in(log);
  for (std::string line; std::getline(in, line);)
    if (line.find("DMAR") != std::string::npos && line.find(needle) != std::string::npos) {
      info("kernel: " + line);
      ++n;
    }
  return n;
}

bool filled_with(const DmaBuffer& b, std::uint8_t v) {
  const auto* p = static_cast<const std::uint8_t*>(b.cpu());
  return std::all_of(p, p + b.size(), [v](std::uint8_t x) { return x == v; });
}

bool mapped(const Pool& pool, std::uint64_t iova) {
  for (const numacma::VfioMapping& m : pool.vfio_report().mappings)
    if (iova >= m.iova && iova - m.iova < m.bytes) return true;
  return false;
}

// ---- vfio-nvme -------------------------------------------------------------------

int check_nvme(const std::string& bdf, int node, int bits) {
  auto pool = make_pool("cma=16M cma_pernuma=8M", "anon", {{bdf, mask_of(bits)}});
  if (!pool) return 1;
  info("pool dma mode " + pool->dma_mode());
  auto ctrl = numacma::nvme::Controller::open(*pool, bdf);
  if (!ctrl) return fail("open: " + ctrl.error().message), 1;
  if (ctrl->node() != node) fail("controller node " + std::to_string(ctrl->node()) + ", want " + std::to_string(node));
  if (auto s = ctrl->identify(); !s) return fail("identify: " + s.error().message), 1;
  if (auto s = ctrl->create_io_queues(); !s) return fail("io queues: " + s.error().message), 1;
  info("controller '" + ctrl->model() + "', " + std::to_string(ctrl->lba_size()) + "-byte LBAs");
  const numacma::Device dev = ctrl->device();
  auto src = pool->alloc_coherent(dev, 64 * 1024);
  auto dst = pool->alloc_coherent(dev, 64 * 1024);
  if (!src || !dst) return fail("data buffers"), 1;
  const std::string want_area = "pernuma" + std::to_string(node);
  for (const DmaBuffer* b : {&*src, &*dst}) {
    if (b->area_name() != want_area) fail("data buffer from " + b->area_name() + ", want " + want_area);
    if (!b->iova() || !b->contiguous()) fail("data buffer not marked IOVA-contiguous");
  }
  const std::uint32_t lba = ctrl->lba_size();
  const std::uint32_t nlb = static_cast<std::uint32_t>(src->size() / lba);
  auto* s = static_cast<std::uint64_t*>(src->cpu());
  for (std::size_t i = 0; i < src->size() / 8; ++i) s[i] = 0x6e756d61636d6100ULL ^ (i * 0x9e3779b97f4a7c15ULL);
  std::memset(dst->cpu(), 0xa5, dst->size());
  if (auto w = ctrl->write(8, nlb, *src); !w) fail("write: " + w.error().message);
  if (auto r = ctrl->read(8, nlb, *dst); !r) fail("read: " + r.error().message);
  if (std::memcmp(src->cpu(), dst->cpu(), src->size()) != 0)
    fail("read-back differs from what was written");
  else
    info("wrote and read back " + std::to_string(nlb) + " LBAs through a " + std::to_string(dst->pages()) +
         "-page buffer at IOVA " + hex(dst->dma_addr()) + " (" + dst->area_name() + ")");
  const std::uint64_t mask = mask_of(bits);
  auto structures = ctrl->dma_structures();
  structures.push_back(numacma::nvme::describe("data", *dst));
  for (const auto& d : structures) {
    info(d.name + ": " + d.area + " node " + std::to_string(d.node) + " iova " + hex(d.iova) + " " +
         std::to_string(d.bytes) + " B");
    on_node(d.cpu, d.bytes, node, d.name);
    if (d.node != node) fail(d.name + " reported on node " + std::to_string(d.node));
    if (d.iova + d.bytes - 1 > mask) fail(d.name + " at IOVA " + hex(d.iova) + " is above the mask " + hex(mask));
    if (!mapped(*pool, d.iova)) fail(d.name + " at IOVA " + hex(d.iova) + " is in no mapping of the container");
  }
  for (const numacma::VfioMapping& m : pool->vfio_report().mappings)
    if (m.iova + m.bytes - 1 > mask) fail("mapping " + m.what + " at " + hex(m.iova) + " is above the mask");
  if (auto sd = ctrl->shutdown(); !sd) fail("shutdown: " + sd.error().message);
  return g_failures ? 1 : 0;
}

// ---- vfio-json ----------------------------------------------------------------------

int check_json(const std::string& path, int node, int bits) {
  std::ifstream in(path);
  int dma = 0, results = 0;
  std::vector<std::string> names;
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded()) return fail("not JSON: " + line), 1;
    if (j.value("op", "") == "dma") {
      ++dma;
      names.push_back(j.value("name", ""));
      if (j.value("node", -2) != node) fail("dma " + j.dump() + " not on node " + std::to_string(node));
      const std::uint64_t iova = std::stoull(j.value("iova", "0x0"), nullptr, 16);
      if (iova == 0) fail("dma " + j.dump() + " has IOVA 0");
      if (iova + j.value("bytes", 0ULL) - 1 > mask_of(bits)) fail("dma " + j.dump() + " above the mask");
    } else if (j.value("op", "") == "result") {
      ++results;
      if (!j.value("ok", false)) fail("result not ok: " + j.dump());
      if (j.value("controller_node", -2) != node) fail("controller_node: " + j.dump());
      const auto w = j.value("lbas_written", 0ULL), v = j.value("lbas_verified", 0ULL);
      if (w == 0 || w != v) fail("lbas written/verified: " + j.dump());
      // By default the self-test gives every LBA its contents back.
      if (j.value("mode", "") != "restore" || !j.value("restored", false) || j.value("lbas_restored", 0ULL) != w)
        fail("not a read-modify-restore run that restored every LBA: " + j.dump());
    }
  }
  for (const char* want : {"asq", "acq", "iosq", "iocq", "identify", "prp", "data"})
    if (std::find(names.begin(), names.end(), want) == names.end()) fail(std::string("no dma line for ") + want);
  if (results != 1) fail("want exactly one result line, got " + std::to_string(results));
  info(std::to_string(dma) + " dma lines, " + std::to_string(results) + " result");
  return g_failures ? 1 : 0;
}

// ---- vfio-noiommu-phys --------------------------------------------------------------

/** [first, last] physical bytes of each zone of `node` (/proc/zoneinfo's
 *  start_pfn and spanned pages). */
std::vector<std::pair<std::uint64_t, std::uint64_t>> node_spans(int node) {
  std::ifstream in("/proc/zoneinfo");
  std::vector<std::pair<std::uint64_t, std::uint64_t>> out;
  int cur = -1;
  std::uint64_t spanned = 0;
  for (std::string line; std::getline(in, line);) {
    int n = -1;
    if (std::sscanf(line.c_str(), "Node %d, zone", &n) == 1) {
      cur = n;
      spanned = 0;
      continue;
    }
    std::istringstream words(line);
    std::string key;
    words >> key;
    if (key == "spanned") words >> spanned;
    std::uint64_t pfn = 0;
    if (key == "start_pfn:" && (words >> pfn) && cur == node && spanned > 0)
      out.push_back({pfn * 4096, (pfn + spanned) * 4096 - 1});
  }
  return out;
}

int check_noiommu_phys(const std::string& path, int node) {
  const auto spans = node_spans(node);
  if (spans.empty()) return fail("no zone of node " + std::to_string(node) + " in /proc/zoneinfo"), 1;
  for (const auto& [first, last] : spans) info("node " + std::to_string(node) + ": " + hex(first) + "-" + hex(last));
  std::ifstream in(path);
  int seen = 0;
  for (std::string line; std::getline(in, line);) {
    nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || j.value("op", "") != "dma") continue;
    ++seen;
    const std::uint64_t addr = std::stoull(j.value("iova", "0x0"), nullptr, 16);
    const std::uint64_t end = addr + j.value("bytes", 0ULL) - 1;
    const bool inside = std::any_of(spans.begin(), spans.end(),
                                    [&](const auto& s) { return s.first <= addr && end <= s.second; });
    if (!inside) fail("dma " + j.dump() + ": not physical memory of node " + std::to_string(node));
  }
  if (seen == 0) fail("no dma line in " + path);
  info(std::to_string(seen) + " structures at physical addresses of node " + std::to_string(node));
  return g_failures ? 1 : 0;
}

// ---- vfio-fault -------------------------------------------------------------------

int check_fault(const std::string& bdf) {
  auto pool = make_pool("cma=16M cma_pernuma=8M", "anon", {{bdf, ~0ULL}});
  if (!pool) return 1;
  auto ctrl = numacma::nvme::Controller::open(*pool, bdf);
  if (!ctrl || !ctrl->identify() || !ctrl->create_io_queues()) return fail("controller bring-up"), 1;
  const numacma::Device dev = ctrl->device();
  const std::uint32_t lba = ctrl->lba_size();
  // LBA 0 holds a known pattern, so that a read that lands is visible.
  auto pat = pool->alloc_coherent(dev, kPage);
  auto live = pool->alloc_coherent(dev, 64 * 1024);
  if (!pat || !live) return fail("buffers"), 1;
  std::memset(pat->cpu(), 0x3c, pat->size());
  if (auto w = ctrl->write(0, kPage / lba, *pat); !w) return fail("write LBA 0: " + w.error().message), 1;
  std::memset(live->cpu(), 0x5a, live->size());

  // 1. A page-fallback buffer, freed: its IOVA must be gone from the IOMMU.
  auto page = pool->alloc_coherent(dev, kPage);
  if (!page) return fail("page buffer: " + page.error().message), 1;
  if (page->area_name() != "pages") fail("the 1-page buffer came from " + page->area_name());
  const std::uint64_t freed = page->dma_addr();
  if (!mapped(*pool, freed)) fail("the live page buffer's IOVA is not mapped");
  if (auto r = page->release(); !r) fail("free: " + r.error().message);
  if (mapped(*pool, freed)) fail("the freed page buffer's IOVA " + hex(freed) + " is still mapped");
  // 2. An IOVA outside every mapping.
  std::uint64_t top = 0;
  for (const auto& m : pool->vfio_report().mappings) top = std::max(top, m.iova + m.bytes);
  const std::uint64_t outside = (top + (64ULL << 20)) & ~((2ULL << 20) - 1);
  if (mapped(*pool, outside)) fail("the chosen outside IOVA is mapped");

  for (const auto& [what, iova] : {std::pair<std::string, std::uint64_t>{"freed page buffer", freed},
                                   {"outside every mapping", outside}}) {
    const int before = dmar_faults_at(iova);
    auto c = ctrl->submit_io_raw(numacma::nvme::IoOpcode::read, 0, 1, iova, 0);
    if (!c) {
      fail("read aimed at " + what + ": no completion: " + c.error().message);
      continue;
    }
    info("read into " + what + " (IOVA " + hex(iova) + ") completed with " + c->describe());
    std::this_thread::sleep_for(std::chrono::milliseconds(200));  // the fault is logged from an IRQ
    const int after = dmar_faults_at(iova);
    if (after <= before) fail("no DMAR fault logged for the read into " + what + " at " + hex(iova));
    if (!filled_with(*live, 0x5a)) fail("a live buffer changed after the read into " + what);
  }
  // The control: the same read aimed at a live buffer lands.
  if (auto r = ctrl->read(0, kPage / lba, *live); !r) fail("control read: " + r.error().message);
  if (std::memcmp(live->cpu(), pat->cpu(), kPage) != 0)
    fail("control: the read into a mapped buffer did not land (the fault checks above prove nothing)");
  else
    info("control: the same read into a mapped buffer lands");
  (void)ctrl->shutdown();
  return g_failures ? 1 : 0;
}

// ---- vfio-attach ------------------------------------------------------------------

int check_attach(const std::string& bdf0, const std::string& bdf1) {
  auto pool = make_pool("cma=16M cma_pernuma=8M", "anon", {{bdf0, ~0ULL}});
  if (!pool) return 1;
  const auto before = pool->vfio_report();
  if (auto s = pool->vfio_attach({bdf1, ~0ULL}); !s) return fail("attach " + bdf1 + ": " + s.error().message), 1;
  const auto after = pool->vfio_report();
  if (after.devices.size() != 2) fail("the container lists " + std::to_string(after.devices.size()) + " devices");
  if (after.mappings.size() != before.mappings.size()) fail("attaching changed the mappings");
  auto r = numacma::nvme::selftest(*pool, bdf1);
  if (!r.ok) fail("selftest on the later device: " + r.error);
  for (const auto& d : r.dma) {
    const bool in_old = std::any_of(before.mappings.begin(), before.mappings.end(),
                                    [&](const numacma::VfioMapping& m) { return d.iova >= m.iova && d.iova - m.iova < m.bytes; });
    info(d.name + ": " + d.area + " node " + std::to_string(d.node) + " iova " + hex(d.iova) +
         (in_old ? " (mapped before the attach)" : ""));
    if (d.area != "pages" && !in_old) fail(d.name + " is in an area mapped after the attach");
  }
  const auto data = std::find_if(r.dma.begin(), r.dma.end(), [](const auto& d) { return d.name == "data"; });
  if (data == r.dma.end() || data->area == "pages") fail("the data buffer did not come from an area");
  info("lbas written " + std::to_string(r.lbas_written) + ", verified " + std::to_string(r.lbas_verified));
  return g_failures ? 1 : 0;
}

// ---- vfio-avail ---------------------------------------------------------------------

int check_avail(const std::string& bdf, int cycles) {
  auto pool = make_pool("", "anon", {{bdf, ~0ULL}});  // no areas: every buffer is pages
  if (!pool) return 1;
  auto dev = numacma::Device::from_vfio(bdf, *pool);
  if (!dev) return fail(dev.error().message), 1;
  // type1: the kernel's DMA_AVAIL counts the container's mappings. iommufd
  // has no such count; there every cycle maps its buffers again at the same
  // IOVAs with FIXED_IOVA, which the kernel refuses (EEXIST) while an old
  // mapping is still there: the same IOVAs in the first and the last cycle
  // are the kernel's word that each unmap happened.
  const bool iommufd = pool->vfio_report().iommu == "iommufd";
  info("interface: " + pool->vfio_report().iommu);
  const std::int64_t start = pool->vfio_report().dma_avail;
  if (!iommufd) {
    info("DMA_AVAIL at start: " + std::to_string(start));
    if (start < 0) return fail("the kernel does not report DMA_AVAIL"), 1;
  }
  std::uint64_t first_a = 0, first_b = 0;
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < cycles; ++i) {
    auto a = pool->alloc_coherent(*dev, kPage);
    auto b = pool->alloc_coherent(*dev, 4 * kPage);
    if (!a || !b) return fail("cycle " + std::to_string(i) + ": " + (a ? b.error().message : a.error().message)), 1;
    if (i == 0) {
      first_a = a->dma_addr();
      first_b = b->dma_addr();
      const numacma::VfioReport now = pool->vfio_report();
      info("with two page buffers live: " + std::to_string(now.mappings.size()) + " mappings, DMA_AVAIL " +
           std::to_string(now.dma_avail));
      if (now.mappings.size() != 2) fail("two live page buffers should take two mappings");
      if (!iommufd && now.dma_avail != start - 2) fail("two live page buffers should take two of DMA_AVAIL");
    }
    if (i == cycles - 1 && (a->dma_addr() != first_a || b->dma_addr() != first_b))
      fail("the last cycle's IOVAs are not the first's: an IOVA was not given back");
  }
  const double ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count();
  if (!iommufd) {
    const std::int64_t end = pool->vfio_report().dma_avail;
    info("DMA_AVAIL after " + std::to_string(cycles) + " cycles: " + std::to_string(end));
    if (end != start) fail("DMA_AVAIL moved from " + std::to_string(start) + " to " + std::to_string(end));
  } else {
    info("IOAS after " + std::to_string(cycles) + " cycles: IOVAs " + hex(first_a) + " and " + hex(first_b) +
         " mapped again with FIXED_IOVA in every cycle, so unmapped in every cycle");
  }
  if (!pool->vfio_report().mappings.empty()) fail("mappings left behind");
  std::printf("{\"figure\":\"vfio_pages_alloc_free\",\"iommu\":\"%s\",\"cycles\":%d,\"ns_per_pair\":%.0f,\"note\":\"4 KiB + 16 KiB page buffers, "
              "each mapped and unmapped, TCG guest\"}\n", iommufd ? "iommufd" : "type1", cycles, ns / cycles / 2);
  return g_failures ? 1 : 0;
}

}  // namespace
}  // namespace vmcheck::vfio

namespace vmcheck {


/** Runs a vfio-* check; -1 when `a[0]` is not one. */
int run_vfio_check(const std::vector<std::string>& a) {
  auto need = [&](std::size_t n) {
    if (a.size() < n) {
      std::fprintf(stderr, "usage: numacma-vmcheck %s: too few arguments\n", a[0].c_str());
      std::exit(2);
    }
  };
  const std::string& c = a[0];
  int rc = -1;
  if (c == "vfio-nvme") need(3), rc = vfio::check_nvme(a[1], std::stoi(a[2]), a.size() > 3 ? std::stoi(a[3]) : 64);
  else if (c == "vfio-json") need(3), rc = vfio::check_json(a[1], std::stoi(a[2]), a.size() > 3 ? std::stoi(a[3]) : 64);
  else if (c == "vfio-noiommu-phys") need(3), rc = vfio::check_noiommu_phys(a[1], std::stoi(a[2]));
  else if (c == "vfio-fault") need(2), rc = vfio::check_fault(a[1]);
  else if (c == "vfio-attach") need(3), rc = vfio::check_attach(a[1], a[2]);
  else if (c == "vfio-avail") need(3), rc = vfio::check_avail(a[1], std::stoi(a[2]));
  else if (c == "vfio-errors") need(3), rc = vfio::check_errors(a[1], a[2]);
  else if (c == "vfio-bench") need(3), rc = vfio::check_bench(a[1], std::stoi(a[2]));
  if (rc == 0 && g_failures) rc = 1;
  return rc;
}

}  // namespace vmcheck
