// numacma-vmcheck: the NUMA checks (topo-match placement contiguity dma mask
// exhaust nohuge cmdq; see vmcheck.cpp for each one's arguments).
#include <fcntl.h>
#include <numaif.h>
#include <sys/wait.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "numacma/numacma.hpp"

#include "vmcheck.hpp"

using nlohmann::json;
using numacma::DmaBuffer;
using numacma::Pool;
using numacma::PoolOptions;
using numacma::Result;

namespace vmcheck {

int check_topo(const std::string& got_path, const std::string& want_path) {
  std::ifstream g(got_path), w(want_path);
  const json got = json::parse(g, nullptr, false), want = json::parse(w, nullptr, false);
  if (got.is_discarded() || want.is_discarded()) return fail("unreadable JSON"), 1;
  std::vector<int> ids;
  for (const auto& n : got["nodes"]) ids.push_back(n["node"].get<int>());
  if (ids != want["nodes"].get<std::vector<int>>()) fail("nodes " + json(ids).dump() + " != " + want["nodes"].dump());
  if (got["distances"] != want["distances"])
    fail("distances " + got["distances"].dump() + " != " + want["distances"].dump());
  else
    info("distances match: " + got["distances"].dump());
  for (const auto& n : got["nodes"]) {
    const std::string id = std::to_string(n["node"].get<int>());
    std::uint64_t hp = 0;
    for (const auto& h : n["hugepages"])
      if (h["page_bytes"] == 2097152) hp = h["total"].get<std::uint64_t>();
    if (want["hugepages"].contains(id) && want["hugepages"][id].get<std::uint64_t>() != hp)
      fail("node " + id + " has " + std::to_string(hp) + " 2M hugepages, want " + want["hugepages"][id].dump());
  }
  std::multiset<std::string> have;
  for (const auto& d : got["pci"])
    have.insert(d["vendor"].get<std::string>() + ":" + d["device"].get<std::string>() + "@" +
                std::to_string(d["numa_node"].get<int>()));
  for (const auto& d : want["devices"]) {
    const std::string key = d.get<std::string>();
    auto it = have.find(key);
    if (it == have.end()) {
      fail("device " + key + " (vendor:device@node) not listed by numacma topo");
    } else {
      info("device " + key + " listed on its node");
      have.erase(it);
    }
  }
  return g_failures ? 1 : 0;
}

int check_placement(const std::string& backing) {
  Pool pool = make_pool("cma=4M cma_pernuma=4M", backing);
  const numacma::Stats st = pool.stats();
  for (int n : memory_nodes()) {
    const std::string name = "pernuma" + std::to_string(n);
    const numacma::AreaReport* a = area(st, name);
    if (a == nullptr) {
      if (backing == "hugetlb" && free_hugepages(n) < 2) {
        bool noted = false;
        for (const auto& note : pool.reservation_notes()) noted |= note.area == name;
        if (!noted) fail(name + " missing without a reservation note");
        else info("node " + std::to_string(n) + ": no hugepages, " + name + " not reserved and reported");
        continue;
      }
      fail(name + " was not reserved");
      continue;
    }
    const numacma::Device dev = numacma::Device::on_node(n, "dev" + std::to_string(n));
    for (std::size_t size : {std::size_t{4096}, std::size_t{65536}, std::size_t{2} << 20}) {
      auto b = pool.alloc_coherent(dev, size);
      if (!b) {
        fail(name + ": alloc " + std::to_string(size) + ": " + b.error().message);
        continue;
      }
      const std::string want = size == kPage ? "pages" : name;
      if (b->area_name() != want) fail("node " + std::to_string(n) + " size " + std::to_string(size) +
                                       " from " + b->area_name() + ", want " + want);
      std::memset(b->cpu(), 0x5a, b->size());
      if (all_on_node(*b, n, name + " size " + std::to_string(size)))
        info("node " + std::to_string(n) + ": " + std::to_string(size / 1024) + " KiB from " +
             b->area_name() + " (" + a->backing + "), all " + std::to_string(b->pages()) +
             " page(s) on node " + std::to_string(n) + " by move_pages");
    }
  }
  f3_holds(pool);
  return g_failures ? 1 : 0;
}

int check_contiguity(int node) {
  if (free_hugepages(node) < 4) return std::printf("SKIP: node %d has no free hugepages\n", node), 77;
  Pool pool = make_pool("cma_pernuma=6M", "hugetlb");
  const numacma::Device dev = numacma::Device::on_node(node, "dev");
  std::vector<DmaBuffer> keep;
  for (std::size_t size : {std::size_t{65536}, std::size_t{1} << 20, std::size_t{2} << 20, std::size_t{512} << 10}) {
    auto b = pool.alloc_coherent(dev, size);
    if (!b) { fail("alloc " + std::to_string(size) + ": " + b.error().message); continue; }
    if (b->iova() || !b->contiguous()) fail("hugetlb buffer not marked physical and contiguous");
    std::memset(b->cpu(), 1, b->size());
    std::size_t bad = 0;
    for (std::size_t i = 0; i < b->pages(); ++i) {
      const auto* p = static_cast<const char*>(b->cpu()) + i * kPage;
      bad += phys_of(p) != b->dma_addr() + i * kPage;
    }
    if (bad) fail(std::to_string(bad) + " pages of a " + std::to_string(size) + " buffer not at dma_addr + offset");
    else info(std::to_string(size / 1024) + " KiB at dma " + hex(b->dma_addr()) + " from " + b->area_name() +
              ": all " + std::to_string(b->pages()) + " pages at dma_addr + offset (pagemap)");
    keep.push_back(std::move(*b));
  }
  keep.clear();
  f3_holds(pool);
  return g_failures ? 1 : 0;
}

int check_dma(const std::string& bdf, std::uint64_t mask) {
  Edu edu;
  Pool pool = make_pool("cma=4M cma_pernuma=8M", "hugetlb");
  std::optional<numacma::Device> dev = edu_device(edu, bdf, mask, pool);
  if (!dev) return 1;
  auto src = pool.alloc_coherent(*dev, kPage);
  if (!src) return fail("source page: " + src.error().message), 1;
  const std::string own = "pernuma" + std::to_string(dev->node);
  const numacma::AreaReport* a = area(pool.stats(), own);
  if (a == nullptr) return fail(own + " not reserved"), 1;
  // Four 2 MiB buffers fill the 8 MiB area, first-fit in the area's order:
  // the first is at its start, the last at its end. Freeing the second and
  // asking for 64 KiB puts that buffer in the middle.
  std::vector<DmaBuffer> big;
  for (int i = 0; i < 4; ++i) {
    auto b = pool.alloc_coherent(*dev, 2 << 20);
    if (!b || b->area_name() != own)
      return fail("2 MiB buffer " + std::to_string(i) + " not from " + own + (b ? " but " + b->area_name() : ": " + b.error().message)), 1;
    big.push_back(std::move(*b));
  }
  if (const auto* full = area(pool.stats(), own); full->used != full->pages)
    fail(own + " not full after four 2 MiB buffers");
  const std::uint64_t hole = big[1].dma_addr();
  big[1] = DmaBuffer();
  auto mid = pool.alloc_coherent(*dev, 65536);
  if (!mid) return fail("64 KiB: " + mid.error().message), 1;
  if (mid->dma_addr() != hole) fail("the 64 KiB buffer did not take the freed middle slot");
  auto one = pool.alloc_coherent(*dev, kPage);
  if (!one) return fail("1 page: " + one.error().message), 1;
  struct Case { const DmaBuffer* b; const char* where; };
  const Case cases[] = {{&big[0], "start of the area"}, {&*mid, "middle of the area"},
                        {&big[3], "end of the area"}, {&big[2], "after the middle"}, {&*one, "one page"}};
  unsigned seed = 1;
  for (const Case& c : cases) {
    const DmaBuffer& b = *c.b;
    if (b.dma_addr() + b.size() - 1 > mask) fail("buffer above the DMA mask");
    const std::size_t last = b.pages() - 1;
    bool ok = true;
    for (std::size_t page : {std::size_t{0}, last / 2, last}) ok &= dma_page(edu, *src, b, page, seed++);
    if (ok)
      info(std::to_string(b.size() / 1024) + " KiB from " + b.area_name() + " (" + c.where +
           "): device wrote pages 0, " + std::to_string(last / 2) + ", " + std::to_string(last) +
           " through dma " + hex(b.dma_addr()) + ", CPU read them back");
  }
  big.clear();
  mid = DmaBuffer();
  one = DmaBuffer();
  src = DmaBuffer();
  f3_holds(pool);
  return g_failures ? 1 : 0;
}

int check_mask(const std::string& bdf, std::uint64_t mask) {
  // 1. The kernel's placement (R5) puts `reserved` at the top of the highest
  //    node and every per-node area at the top of its node: in this guest all
  //    of them lie above 256 MiB, and a low-zone request (A4) may not use the
  //    per-node areas anyway. Nothing reachable: a clear error, never a
  //    buffer above the mask.
  {
    Edu edu;
    Pool pool = make_pool("cma=2M cma_pernuma=2M", "hugetlb");
    std::optional<numacma::Device> dev = edu_device(edu, bdf, mask, pool);
    if (!dev) return 1;
    bool any_reachable = false;  // of the areas a low-zone request may use: the default one
    for (const auto& a : pool.stats().areas) {
      const bool beyond = a.base_dma + a.pages * kPage - 1 > mask;
      if (a.name == "reserved") any_reachable = any_reachable || !beyond;
      info("area " + a.name + " node " + std::to_string(a.node) + " at " + hex(a.base_dma) +
           (beyond ? " (beyond the mask)" : " (reachable)"));
    }
    if (any_reachable) fail("reserved lies below 256 MiB: the guest's layout is not what this check assumes");
    auto b = pool.alloc_coherent(*dev, 65536);
    if (b) {
      fail("got a buffer at " + hex(b->dma_addr()) + " from " + b->area_name());
    } else {
      const auto code = b.error().code;
      if (code != numacma::Errc::unreachable && code != numacma::Errc::no_memory)
        fail(std::string("unexpected error code ") + numacma::errc_name(code));
      info("nothing reachable: " + std::string(numacma::errc_name(code)) + ": " + b.error().message);
      if (b.error().message.find("above the DMA mask") == std::string::npos)
        fail("the message does not say the memory is above the mask");
    }
  }
  // 2. The device's own area (A2) on node 0, whose memory lies below 256 MiB:
  //    every buffer comes from it, below the mask, and the device writes
  //    through one; when it is full the request fails (it is exclusive).
  Edu edu;
  PoolOptions o;
  o.params = "";
  o.backing = "hugetlb";
  o.device_areas = {{bdf, 0, 4 << 20}};
  auto made = Pool::create(o);
  if (!made) return fail("Pool::create with a device area: " + made.error().message), 1;
  Pool pool = std::move(*made);
  std::optional<numacma::Device> dev = edu_device(edu, bdf, mask, pool);
  if (!dev) return 1;
  if (dev->area != bdf) return fail("the device area was not attached to the device"), 1;
  auto src = pool.alloc_coherent(*dev, 2 * kPage);
  if (!src) return fail("source buffer: " + src.error().message), 1;
  std::map<std::string, int> from;
  std::vector<DmaBuffer> keep;
  for (int i = 0; i < 256; ++i) {
    auto b = pool.alloc_coherent(*dev, 65536);
    if (!b) {
      const auto code = b.error().code;
      if (code != numacma::Errc::no_memory) fail(std::string("unexpected error code ") + numacma::errc_name(code));
      info("after " + std::to_string(i) + " buffers: " + numacma::errc_name(code) + ": " + b.error().message);
      break;
    }
    if (b->dma_addr() + b->size() - 1 > mask) {
      fail("buffer at " + hex(b->dma_addr()) + " from " + b->area_name() + " is above the mask " + hex(mask));
      break;
    }
    if (keep.empty() && !dma_page(edu, *src, *b, 15, 7)) break;
    ++from[b->area_name()];
    keep.push_back(std::move(*b));
  }
  for (const auto& [name, n] : from) info(std::to_string(n) + " x 64 KiB from " + name + ", all below " + hex(mask + 1));
  if (from.size() != 1 || from.count(bdf) == 0) fail("buffers came from somewhere other than the device area");
  keep.clear();
  src = DmaBuffer();
  f3_holds(pool);
  return g_failures ? 1 : 0;
}

int check_exhaust(int node, const std::string& policy, const std::string& order_csv) {
  const bool nearest = policy == "nearest";
  Pool pool = make_pool("cma=2M cma_pernuma=2M", "auto", nearest ? numacma::Policy::nearest : numacma::Policy::kernel);
  std::vector<std::string> expect;  // area per 64 KiB request, in order
  auto add = [&](const std::string& name) {
    if (area(pool.stats(), name) == nullptr) return;
    for (int i = 0; i < 32; ++i) expect.push_back(name);
  };
  add("pernuma" + std::to_string(node));
  if (nearest) {
    std::stringstream ss(order_csv);
    std::string tok;
    while (std::getline(ss, tok, ',')) if (!tok.empty()) add("pernuma" + tok);
  }
  add("reserved");
  expect.push_back("pages");
  const numacma::Device dev = numacma::Device::on_node(node, "dev");
  std::vector<DmaBuffer> keep;
  std::map<std::string, int> got;
  for (std::size_t i = 0; i < expect.size(); ++i) {
    auto b = pool.alloc_coherent(dev, 65536);
    if (!b) { fail("request " + std::to_string(i) + ": " + b.error().message); break; }
    if (b->area_name() != expect[i]) {
      fail("request " + std::to_string(i) + " from " + b->area_name() + ", want " + expect[i]);
      break;
    }
    ++got[b->area_name()];
    // Every buffer on the node of the area it came from (move_pages): the
    // device's own pernuma<N>, the others' (nearest), `reserved` where the
    // plan put it, and the page fallback on the device's node.
    if (b->area_name() == "pages") {
      all_on_node(*b, node, "pages fallback");
    } else {
      const numacma::Stats now = pool.stats();  // alive while `from` points into it
      const numacma::AreaReport* from = area(now, b->area_name());
      if (from == nullptr) fail("no area " + b->area_name() + " in stats()");
      else if (all_on_node(*b, from->node, b->area_name() + " buffer") && got[b->area_name()] == 32)
        info("all 32 buffers from " + b->area_name() + " on its node " + std::to_string(from->node) +
             " by move_pages");
    }
    keep.push_back(std::move(*b));
  }
  std::string seq;
  for (std::size_t i = 0; i < expect.size(); i += 32) seq += (seq.empty() ? "" : " -> ") + expect[i];
  info("policy=" + policy + ", device on node " + std::to_string(node) + ": " + seq);
  const numacma::Stats st = pool.stats();
  for (const auto& n : st.nodes) {
    if (n.node != node) continue;
    std::uint64_t local = 0, other = 0;
    for (const auto& [name, k] : got) {
      if (name == "pernuma" + std::to_string(node)) local += k;
      else if (name.rfind("pernuma", 0) == 0) other += k;
    }
    const std::string counters = "local " + std::to_string(n.local) + ", other_node " + std::to_string(n.other_node) +
                                 ", default " + std::to_string(n.default_area) + ", pages " + std::to_string(n.pages);
    if (n.local != local || n.other_node != other || n.default_area != std::uint64_t(got["reserved"]) ||
        n.pages != std::uint64_t(got["pages"]))
      fail("counters " + counters);
    else
      info("counters agree: " + counters);
  }
  keep.clear();
  f3_holds(pool);
  return g_failures ? 1 : 0;
}

int check_nohuge(int node) {
  if (free_hugepages(node) != 0) return fail("node " + std::to_string(node) + " has hugepages"), 1;
  Pool pool = make_pool("cma_pernuma=4M", "auto");
  for (const auto& a : pool.stats().areas) {
    const int n = a.node;
    info(a.name + ": " + a.backing + (a.iova ? " (IOVA only)" : " (physical)"));
    const bool want_anon = free_hugepages(n) < 2;
    if (want_anon != (a.backing == "anon")) fail(a.name + " backing " + a.backing);
  }
  bool noted = false;
  for (const auto& note : pool.reservation_notes())
    if (note.area == "pernuma" + std::to_string(node))
      noted = note.message.find("hugepages") != std::string::npos && note.message.find("anon") != std::string::npos;
  if (!noted) fail("no note saying why pernuma" + std::to_string(node) + " is anon");
  auto b = pool.alloc_coherent(numacma::Device::on_node(node, "dev"), 65536);
  if (!b) return fail(b.error().message), 1;
  if (!b->iova()) fail("a multi-page anon buffer must be marked IOVA");
  std::memset(b->cpu(), 3, b->size());
  if (all_on_node(*b, node, "anon buffer")) info("64 KiB from " + b->area_name() + " marked IOVA, all pages on node " + std::to_string(node));
  b = DmaBuffer();
  f3_holds(pool);
  return g_failures ? 1 : 0;
}

namespace {

bool cpu_on_node(int cpu, int node) {
  return ::access(("/sys/devices/system/node/node" + std::to_string(node) + "/cpu" + std::to_string(cpu)).c_str(),
                  F_OK) == 0;
}

}  // namespace

int check_cmdq(const std::string& path, int driver_node, int device_node, const std::string& order_csv) {
  std::vector<int> order;
  std::stringstream os(order_csv);
  for (std::string item; std::getline(os, item, ',');) order.push_back(std::stoi(item));
  std::ifstream in(path);
  std::vector<json> rows;
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) rows.push_back(json::parse(line, nullptr, false));
  if (rows.size() != order.size())
    return fail(std::to_string(rows.size()) + " result lines for " + std::to_string(order.size()) + " queue nodes"), 1;
  double local = 0;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const json& r = rows[i];
    if (r.is_discarded() || !r.is_object()) return fail("line " + std::to_string(i + 1) + " is not a JSON object"), 1;
    const int q = order[i];
    const std::string where = "queue on node " + std::to_string(q) + ": ";
    if (r.value("bench", "") != "cmdq") fail(where + "bench is not cmdq");
    if (r.value("driver_node", -1) != driver_node || r.value("device_node", -1) != device_node)
      fail(where + "driver/device nodes " + r.value("driver_node", json(-1)).dump() + "/" +
           r.value("device_node", json(-1)).dump());
    const int dcpu = r.value("driver_cpu", -1), vcpu = r.value("device_cpu", -1);
    if (dcpu == vcpu || !cpu_on_node(dcpu, driver_node) || !cpu_on_node(vcpu, device_node))
      fail(where + "driver CPU " + std::to_string(dcpu) + ", device CPU " + std::to_string(vcpu));
    if (r.value("queue_node", -1) != q) fail(where + "queue_node " + r.value("queue_node", json(-1)).dump());
    if (r.value("area", "") != "pernuma" + std::to_string(q)) fail(where + "area " + r.value("area", ""));
    if (r.value("local", !(i == 0)) != (i == 0)) fail(where + "local flag");
    const double med = r.value("median_ns", 0.0), p99 = r.value("p99_ns", 0.0), ratio = r.value("ratio", 0.0);
    if (!(med > 0) || p99 < med) fail(where + "median " + std::to_string(med) + ", p99 " + std::to_string(p99));
    if (i == 0) local = med;
    if (local > 0 && std::abs(ratio - med / local) > 0.002) fail(where + "ratio " + std::to_string(ratio));
    info(where + "area " + r.value("area", "") + ", driver CPU " + std::to_string(dcpu) + " (node " +
         std::to_string(driver_node) + "), device CPU " + std::to_string(vcpu) + " (node " +
         std::to_string(device_node) + "), median " + std::to_string(static_cast<long>(med)) +
         " ns (TCG: not a timing)");
  }
  return g_failures ? 1 : 0;
}

}  // namespace vmcheck
