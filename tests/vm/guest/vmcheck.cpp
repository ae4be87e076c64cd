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
#include "numacma/shared.hpp"

using nlohmann::json;
using numacma::DmaBuffer;
using numacma::Pool;
using numacma::PoolOptions;
using numacma::Result;

namespace {

constexpr std::size_t kPage = 4096;
int g_failures = 0;

void fail(const std::string& msg) {
  std::printf("FAIL: %s\n", msg.c_str());
  ++g_failures;
}
void info(const std::string& msg) { std::printf("  %s\n", msg.c_str()); }

std::string hex(std::uint64_t v) {
  char b[24];
  std::snprintf(b, sizeof b, "0x%llx", static_cast<unsigned long long>(v));
  return b;
}

// ---- independent witnesses -------------------------------------------------

/** Node of every 4 KiB page of [p, p+bytes), by move_pages(2) with no target. */
std::vector<int> page_nodes(const void* p, std::size_t bytes) {
  const std::size_t n = (bytes + kPage - 1) / kPage;
  std::vector<void*> pages(n);
  std::vector<int> status(n, -1);
  for (std::size_t i = 0; i < n; ++i) pages[i] = static_cast<char*>(const_cast<void*>(p)) + i * kPage;
  if (move_pages(0, n, pages.data(), nullptr, status.data(), 0) != 0) {
    fail(std::string("move_pages: ") + std::strerror(errno));
    return {};
  }
  return status;
}

bool all_on_node(const DmaBuffer& b, int node, const std::string& what) {
  const std::vector<int> st = page_nodes(b.cpu(), b.size());
  std::size_t bad = 0;
  for (int s : st) bad += s != node;
  if (st.empty() || bad != 0) {
    fail(what + ": " + std::to_string(bad) + " of " + std::to_string(st.size()) +
         " pages not on node " + std::to_string(node) + (st.empty() ? "" : " (first says " + std::to_string(st[0]) + ")"));
    return false;
  }
  return true;
}

/** Physical address of the page holding p, from /proc/self/pagemap. */
std::uint64_t phys_of(const void* p) {
  static int fd = ::open("/proc/self/pagemap", O_RDONLY);
  const std::uint64_t va = reinterpret_cast<std::uintptr_t>(p);
  std::uint64_t e = 0;
  if (fd < 0 || ::pread(fd, &e, 8, static_cast<off_t>(va / kPage * 8)) != 8) return ~0ULL;
  if (((e >> 63) & 1) == 0) return ~0ULL;
  return ((e & ((1ULL << 55) - 1)) * kPage) | (va % kPage);
}

// ---- the edu device ----------------------------------------------------------

class Edu {
 public:
  bool open(const std::string& bdf) {
    const std::string dir = "/sys/bus/pci/devices/" + bdf + "/";
    int cfg = ::open((dir + "config").c_str(), O_RDWR);
    if (cfg < 0) return fail("open config of " + bdf), false;
    std::uint16_t cmd = 0;
    if (::pread(cfg, &cmd, 2, 4) != 2) return fail("read PCI command"), false;
    cmd |= 0x6;  // memory space + bus master
    if (::pwrite(cfg, &cmd, 2, 4) != 2) return fail("write PCI command"), false;
    ::close(cfg);
    fd_ = ::open((dir + "resource0").c_str(), O_RDWR | O_SYNC);
    if (fd_ < 0) return fail("open resource0 of " + bdf + ": " + std::strerror(errno)), false;
    void* m = ::mmap(nullptr, 1 << 20, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
    if (m == MAP_FAILED) return fail(std::string("mmap resource0: ") + std::strerror(errno)), false;
    bar_ = static_cast<volatile std::uint8_t*>(m);
    const std::uint32_t id = r32(0);
    if ((id & 0xff) != 0xed) return fail("edu identification register " + hex(id)), false;
    w32(4, 0x12345678);
    if (r32(4) != ~0x12345678u) return fail("edu liveness register"), false;
    return true;
  }
  /** One DMA transfer of `count` bytes; to_ram: device buffer -> RAM at dma. */
  bool transfer(std::uint64_t dma, std::uint32_t count, bool to_ram) {
    w64(0x80, to_ram ? 0x40000 : dma);
    w64(0x88, to_ram ? dma : 0x40000);
    w64(0x90, count);
    w64(0x98, to_ram ? 3 : 1);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (r64(0x98) & 1) {
      if (std::chrono::steady_clock::now() > deadline) return fail("edu DMA did not complete"), false;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    return true;
  }

 private:
  std::uint32_t r32(std::size_t o) { return *reinterpret_cast<volatile std::uint32_t*>(bar_ + o); }
  void w32(std::size_t o, std::uint32_t v) { *reinterpret_cast<volatile std::uint32_t*>(bar_ + o) = v; }
  std::uint64_t r64(std::size_t o) { return *reinterpret_cast<volatile std::uint64_t*>(bar_ + o); }
  void w64(std::size_t o, std::uint64_t v) { *reinterpret_cast<volatile std::uint64_t*>(bar_ + o) = v; }
  int fd_ = -1;
  volatile std::uint8_t* bar_ = nullptr;
};

/** Makes the device write a pattern into page `page` of `dst` (via `src`).
 *  QEMU's edu rejects a transfer that reaches the last byte of its 4 KiB
 *  buffer (an off-by-one in edu_check_range, fatal to QEMU), so each page
 *  goes in two halves through the first half of the device buffer. */
bool dma_page(Edu& edu, const DmaBuffer& src, const DmaBuffer& dst, std::size_t page, unsigned seed) {
  auto* s = static_cast<std::uint8_t*>(src.cpu());
  auto* d = static_cast<std::uint8_t*>(dst.cpu()) + page * kPage;
  for (std::size_t i = 0; i < kPage; ++i) s[i] = static_cast<std::uint8_t>(seed * 131 + i * 7 + (i >> 8));
  std::memset(d, 0, kPage);
  __sync_synchronize();
  constexpr std::uint32_t kHalf = kPage / 2;
  for (std::uint32_t off = 0; off < kPage; off += kHalf) {
    if (!edu.transfer(src.dma_addr() + off, kHalf, false)) return false;
    if (!edu.transfer(dst.dma_addr() + page * kPage + off, kHalf, true)) return false;
  }
  __sync_synchronize();
  if (std::memcmp(s, d, kPage) != 0) {
    fail("DMA to " + hex(dst.dma_addr() + page * kPage) + " did not land in the buffer's page " +
         std::to_string(page));
    return false;
  }
  return true;
}

// ---- helpers over the library ---------------------------------------------------

Pool make_pool(const std::string& params, const std::string& backing,
               numacma::Policy policy = numacma::Policy::kernel) {
  PoolOptions o;
  o.params = params;
  o.backing = backing;
  o.policy = policy;
  auto p = Pool::create(o);
  if (!p) {
    std::printf("FAIL: Pool::create(%s, %s): %s\n", params.c_str(), backing.c_str(), p.error().message.c_str());
    std::exit(1);
  }
  for (const auto& n : p->reservation_notes()) info("note: " + n.area + ": " + n.message);
  return std::move(*p);
}

const numacma::AreaReport* area(const numacma::Stats& st, const std::string& name) {
  for (const auto& a : st.areas)
    if (a.name == name) return &a;
  return nullptr;
}

/** F3: after every buffer is freed, nothing is used and every page that was
 *  allocated was released. (maxchunk equals pages only for one-segment areas:
 *  hugepages that are not physically adjacent split an area.) */
bool f3_holds(const Pool& pool) {
  bool ok = true;
  for (const auto& a : pool.stats().areas) {
    if (a.used != 0 || a.alloc_pages_success != a.release_pages_success ||
        (a.segments == 1 && a.maxchunk != a.pages)) {
      fail("F3: area " + a.name + " used " + std::to_string(a.used) + " maxchunk " +
           std::to_string(a.maxchunk) + "/" + std::to_string(a.pages) + " allocated " +
           std::to_string(a.alloc_pages_success) + " released " + std::to_string(a.release_pages_success));
      ok = false;
    }
  }
  if (ok) info("F3 holds: every area whole again, allocated == released");
  return ok;
}

std::vector<int> memory_nodes() {
  std::vector<int> out;
  std::ifstream f("/sys/devices/system/node/has_memory");
  std::string s;
  std::getline(f, s);
  std::stringstream ss(s);
  std::string part;
  while (std::getline(ss, part, ',')) {
    const auto dash = part.find('-');
    const int a = std::stoi(part.substr(0, dash));
    const int b = dash == std::string::npos ? a : std::stoi(part.substr(dash + 1));
    for (int i = a; i <= b; ++i) out.push_back(i);
  }
  return out;
}

std::uint64_t free_hugepages(int node) {
  std::ifstream f("/sys/devices/system/node/node" + std::to_string(node) +
                  "/hugepages/hugepages-2048kB/free_hugepages");
  std::uint64_t n = 0;
  f >> n;
  return n;
}

// ---- the checks ---------------------------------------------------------------------

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

/** Opens the edu device at `bdf` and makes its Device on `pool`, with the DMA
 *  mask QEMU gave the edu (the kernel would read it from the driver). */
std::optional<numacma::Device> edu_device(Edu& edu, const std::string& bdf, std::uint64_t mask, const Pool& pool) {
  if (!edu.open(bdf)) return std::nullopt;
  Result<numacma::Device> dev = numacma::Device::from_pci(bdf, pool);
  if (!dev) return fail(dev.error().message), std::nullopt;
  dev->coherent_dma_mask = mask;
  return *dev;
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

bool cpu_on_node(int cpu, int node) {
  return ::access(("/sys/devices/system/node/node" + std::to_string(node) + "/cpu" + std::to_string(cpu)).c_str(),
                  F_OK) == 0;
}

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

// ---- shared --------------------------------------------------------------------

/** The fill both processes agree on for the other process's buffer. */
std::uint8_t shared_byte(std::size_t i) { return static_cast<std::uint8_t>(i * 7 + 3 + (i >> 12)); }

/** Process A: the edu on its node; its buffer from its node's area, written by
 *  its edu; then the edu writes B's buffer (B's DMA address, read from
 *  `from_b`), and says so on `to_b`. */
int shared_edu_process(const std::string& bdf, std::uint64_t mask, int from_b, int to_b, int ready_fd,
                       int go_fd) {
  Result<Pool> pool = Pool::attach("vmshared");
  if (!pool) return fail("A: attach: " + pool.error().message), 1;
  Edu edu;
  std::optional<numacma::Device> dev = edu_device(edu, bdf, mask, *pool);
  if (!dev) return 1;
  auto src = pool->alloc_coherent(*dev, kPage);
  auto buf = pool->alloc_coherent(*dev, 64 << 10);
  if (!src || !buf) return fail("A: alloc: " + (src ? buf.error().message : src.error().message)), 1;
  const std::string own = "pernuma" + std::to_string(dev->node);
  if (buf->area_name() != own) fail("A: buffer from " + buf->area_name() + ", not " + own);
  all_on_node(*buf, dev->node, "A's buffer");
  bool ok = true;
  for (std::size_t page : {std::size_t{0}, buf->pages() - 1}) ok &= dma_page(edu, *src, *buf, page, 7);
  if (ok)
    info("A (pid " + std::to_string(::getpid()) + "): " + bdf + " on node " + std::to_string(dev->node) +
         " wrote A's 64 KiB buffer in " + own + " through dma " + hex(buf->dma_addr()));
  // B's buffer: 64 KiB at the DMA address B sends, written page by page.
  std::uint64_t b_dma = 0;
  if (::read(from_b, &b_dma, sizeof b_dma) != sizeof b_dma) return fail("A: no DMA address from B"), 1;
  auto* s = static_cast<std::uint8_t*>(src->cpu());
  for (std::size_t page = 0; page < 16 && ok; ++page) {
    for (std::size_t i = 0; i < kPage; ++i) s[i] = shared_byte(page * kPage + i);
    __sync_synchronize();
    ok = edu.transfer(src->dma_addr(), kPage / 2, false) &&
         edu.transfer(b_dma + page * kPage, kPage / 2, true) &&
         edu.transfer(src->dma_addr() + kPage / 2, kPage / 2, false) &&
         edu.transfer(b_dma + page * kPage + kPage / 2, kPage / 2, true);
  }
  (void)!::write(to_b, ok ? "d" : "x", 1);
  const char c = g_failures ? 'n' : 'y';
  (void)!::write(ready_fd, &c, 1);
  char go;
  (void)!::read(go_fd, &go, 1);
  return g_failures ? 1 : 0;
}

/** Process B: a device on another node; its buffer from that node's area,
 *  written by A's edu (B has no DMA engine of its own here). */
int shared_other_process(const std::string& bdf, int to_a, int from_a, int ready_fd, int go_fd) {
  Result<Pool> pool = Pool::attach("vmshared");
  if (!pool) return fail("B: attach: " + pool.error().message), 1;
  Result<numacma::Device> dev = numacma::Device::from_pci(bdf, *pool);
  if (!dev) return fail("B: " + dev.error().message), 1;
  auto buf = pool->alloc_coherent(*dev, 64 << 10);
  if (!buf) return fail("B: alloc: " + buf.error().message), 1;
  const std::string own = "pernuma" + std::to_string(dev->node);
  if (buf->area_name() != own) fail("B: buffer from " + buf->area_name() + ", not " + own);
  all_on_node(*buf, dev->node, "B's buffer");
  std::memset(buf->cpu(), 0, buf->size());
  __sync_synchronize();
  const std::uint64_t dma = buf->dma_addr();
  (void)!::write(to_a, &dma, sizeof dma);
  char c = 0;
  if (::read(from_a, &c, 1) != 1 || c != 'd') fail("B: A's edu did not write B's buffer");
  __sync_synchronize();
  const auto* p = static_cast<const std::uint8_t*>(buf->cpu());
  std::size_t bad = 0;
  for (std::size_t i = 0; i < buf->size(); ++i) bad += p[i] != shared_byte(i);
  if (bad != 0) fail("B: " + std::to_string(bad) + " bytes of B's buffer differ from what A's edu wrote");
  else
    info("B (pid " + std::to_string(::getpid()) + "): " + bdf + " on node " + std::to_string(dev->node) +
         ": its 64 KiB buffer in " + own + " (dma " + hex(dma) + ") holds what A's edu wrote there");
  const char r = g_failures ? 'n' : 'y';
  (void)!::write(ready_fd, &r, 1);
  char go;
  (void)!::read(go_fd, &go, 1);
  return g_failures ? 1 : 0;
}

int check_shared(const std::vector<std::string>& a) {
  if (a.size() != 3) return fail("shared needs EDU_BDF EDU_MASK OTHER_BDF"), 2;
  (void)numacma::release("vmshared", true);
  numacma::ReserveOptions o;
  o.params = "cma=4M cma_pernuma=8M";
  o.backing = "hugetlb";
  Result<std::vector<numacma::ReservationNote>> r = numacma::reserve("vmshared", o);
  if (!r) return fail("reserve: " + r.error().message), 1;
  int ready[2], go[2], b2a[2], a2b[2];
  if (::pipe(ready) != 0 || ::pipe(go) != 0 || ::pipe(b2a) != 0 || ::pipe(a2b) != 0) return fail("pipe"), 1;
  std::fflush(stdout);
  std::vector<pid_t> kids;
  for (int i = 0; i < 2; ++i) {
    const pid_t pid = ::fork();
    if (pid == 0)
      ::_exit(i == 0 ? shared_edu_process(a[0], std::stoull(a[1], nullptr, 16), b2a[0], a2b[1], ready[1], go[0])
                     : shared_other_process(a[2], b2a[1], a2b[0], ready[1], go[0]));
    kids.push_back(pid);
  }
  for (std::size_t i = 0; i < kids.size(); ++i) {
    char c = 'n';
    if (::read(ready[0], &c, 1) != 1 || c != 'y') fail("a process failed before holding its buffer");
  }
  // Both hold their buffers now: two live holders, each in its own node's area.
  Result<numacma::PoolStatus> st = numacma::status("vmshared");
  if (!st) return fail("status: " + st.error().message), 1;
  std::set<std::string> held;
  for (const numacma::HolderStatus& h : st->holders) {
    if (!h.alive) fail("holder " + std::to_string(h.pid) + " not alive");
    for (const auto& [area_name, pages] : h.pages)
      if (area_name.rfind("pernuma", 0) == 0) held.insert(area_name);
  }
  if (st->holders.size() != 2) fail(std::to_string(st->holders.size()) + " holders while both processes hold buffers");
  if (held.size() != 2) fail("the two processes' buffers are not in two per-node areas");
  else info("status: 2 live holders, their buffers in " + *held.begin() + " and " + *held.rbegin());
  (void)!::write(go[1], "gg", 2);
  for (pid_t k : kids) {
    int s = 0;
    ::waitpid(k, &s, 0);
    if (!WIFEXITED(s) || WEXITSTATUS(s) != 0) fail("process " + std::to_string(k) + " failed");
  }
  st = numacma::status("vmshared");
  if (!st || !st->holders.empty()) fail("holders left after both detached");
  for (const numacma::SharedAreaStatus& s : st->areas) {
    if (s.area.used != 0) fail(s.area.name + " not whole after both detached");
    if (s.area.maxchunk != s.longest_segment) fail(s.area.name + ": largest free run is not its longest segment");
  }
  if (numacma::Status rel = numacma::release("vmshared"); !rel) fail("release: " + rel.error().message);
  return g_failures ? 1 : 0;
}

// ---- dmapool ---------------------------------------------------------------------

/** Has the edu write `bytes` of a pattern at `dst_dma` (the block at `dst`),
 *  in pieces of at most 2 KiB through the first half of the device buffer (as
 *  dma_page: edu's off-by-one at the end of its 4 KiB buffer), via the first
 *  2 KiB of `src`. The block is zeroed first and the pattern has no zero byte,
 *  so every byte the device did not write shows. */
bool dma_block(Edu& edu, const DmaBuffer& src, void* dst, std::uint64_t dst_dma, std::size_t bytes,
               unsigned seed) {
  constexpr std::size_t kHalf = kPage / 2;
  auto* s = static_cast<std::uint8_t*>(src.cpu());
  auto* d = static_cast<std::uint8_t*>(dst);
  std::memset(d, 0, bytes);
  for (std::size_t off = 0; off < bytes; off += kHalf) {
    const std::size_t n = std::min(kHalf, bytes - off);
    for (std::size_t i = 0; i < n; ++i)
      s[i] = static_cast<std::uint8_t>((seed * 131 + (off + i) * 7 + (i >> 8)) % 251 + 1);
    __sync_synchronize();
    if (!edu.transfer(src.dma_addr(), static_cast<std::uint32_t>(n), false)) return false;
    if (!edu.transfer(dst_dma + off, static_cast<std::uint32_t>(n), true)) return false;
    __sync_synchronize();
    if (std::memcmp(s, d + off, n) != 0) {
      fail("DMA to " + hex(dst_dma + off) + " did not land at the block's CPU address + " +
           std::to_string(off));
      return false;
    }
  }
  return true;
}

/** `count` blocks of `dp`, kept in `out`, each touched, then checked: every
 *  4 KiB page they touch on `want_node` (move_pages); dma = page.dma + (cpu -
 *  page.cpu) for the page of stats().page_list that holds it, and = the
 *  physical address (pagemap); aligned; inside `boundary`; no two overlap;
 *  every page of the pool from `want_area` on `want_node`. */
bool dmapool_blocks(numacma::DmaPool& dp, std::size_t count, const std::string& want_area, int want_node,
                    std::size_t boundary, std::vector<numacma::DmaBlock>& out) {
  const std::string what = "dma_pool " + dp.name();
  for (std::size_t i = 0; i < count; ++i) {
    auto b = dp.alloc();
    if (!b) return fail(what + ": alloc " + std::to_string(i) + ": " + b.error().message), false;
    out.push_back(std::move(*b));
  }
  const numacma::DmaPoolStats st = dp.stats();
  for (std::size_t i = 0; i < out.size(); ++i) std::memset(out[i].cpu(), 0x40 + int(i % 64), st.block_size);
  bool ok = true;
  auto bad = [&](const std::string& m) { fail(what + ": " + m); ok = false; };
  if (st.node != want_node) bad("stats().node " + std::to_string(st.node));
  if (st.blocks_live != count)
    bad("blocks_live " + std::to_string(st.blocks_live) + ", want " + std::to_string(count));
  if (st.pages != st.page_list.size() || st.pages == 0)
    bad("pages " + std::to_string(st.pages) + ", page_list " + std::to_string(st.page_list.size()));
  for (const auto& pg : st.page_list)
    if (pg.area != want_area || pg.node != want_node)
      bad("page at dma " + hex(pg.dma) + " from " + pg.area + " on node " + std::to_string(pg.node) +
          ", want " + want_area + " on node " + std::to_string(want_node));
  std::vector<void*> pages;  // every 4 KiB page a block touches, once
  std::set<std::uintptr_t> seen;
  std::vector<std::uintptr_t> starts;
  std::size_t phys_bad = 0;
  for (const numacma::DmaBlock& b : out) {
    const auto cpu = reinterpret_cast<std::uintptr_t>(b.cpu());
    const std::uint64_t dma = b.dma_addr();
    starts.push_back(cpu);
    for (std::uintptr_t a = cpu & ~(kPage - 1); a < cpu + st.block_size; a += kPage)
      if (seen.insert(a).second) pages.push_back(reinterpret_cast<void*>(a));
    const numacma::DmaPoolPage* page = nullptr;
    for (const auto& pg : st.page_list) {
      const auto pc = reinterpret_cast<std::uintptr_t>(pg.cpu);
      if (cpu >= pc && cpu + st.block_size <= pc + st.page_bytes) page = &pg;
    }
    if (page == nullptr) {
      bad("block at " + hex(cpu) + " lies in none of the pool's pages");
      continue;
    }
    if (dma - page->dma != cpu - reinterpret_cast<std::uintptr_t>(page->cpu))
      bad("block at cpu " + hex(cpu) + " dma " + hex(dma) + ": dma - page.dma != cpu - page.cpu");
    if (dma % st.align != 0 || cpu % st.align != 0)
      bad("block at dma " + hex(dma) + " not aligned to " + std::to_string(st.align));
    if (boundary != 0 && dma / boundary != (dma + st.block_size - 1) / boundary)
      bad("block at dma " + hex(dma) + " (" + std::to_string(st.block_size) + " bytes) crosses a " +
          std::to_string(boundary) + " boundary");
    for (std::size_t off = 0; off < st.block_size; off += kPage)
      phys_bad += phys_of(reinterpret_cast<const char*>(cpu) + off) != dma + off;
  }
  if (phys_bad) bad(std::to_string(phys_bad) + " block pages not at their DMA address by pagemap");
  std::sort(starts.begin(), starts.end());
  for (std::size_t i = 1; i < starts.size(); ++i)
    if (starts[i] < starts[i - 1] + st.block_size)
      bad("blocks at " + hex(starts[i - 1]) + " and " + hex(starts[i]) + " overlap");
  std::vector<int> status(pages.size(), -1);
  if (move_pages(0, pages.size(), pages.data(), nullptr, status.data(), 0) != 0)
    return fail(std::string("move_pages: ") + std::strerror(errno)), false;
  std::size_t off_node = 0;
  for (int s : status) off_node += s != want_node;
  if (off_node)
    bad(std::to_string(off_node) + " of " + std::to_string(pages.size()) + " block pages not on node " +
        std::to_string(want_node) + " (first says " + std::to_string(status[0]) + ")");
  if (ok)
    info(dp.name() + ": " + std::to_string(count) + " x " + std::to_string(st.block_size) + " B blocks in " +
         std::to_string(st.pages) + " page(s) of " + std::to_string(st.page_bytes / 1024) + " KiB from " +
         want_area + ", all " + std::to_string(pages.size()) + " 4K pages on node " + std::to_string(want_node) +
         " (move_pages), dma = page.dma + offset = phys (pagemap), aligned" +
         (boundary ? ", none crosses " + std::to_string(boundary) : ""));
  return ok;
}

/** The edu writes through block DMA addresses: the first, the middle and the
 *  last block of the 512-byte pool's first page (the rest of that page holds
 *  a canary that must survive each write), and a whole 8 KiB block. */
bool dmapool_edu_writes(Edu& edu, const DmaBuffer& src, std::vector<numacma::DmaBlock>& small,
                        const numacma::DmaPoolStats& sst, std::vector<numacma::DmaBlock>& big,
                        const numacma::DmaPoolStats& bst) {
  const numacma::DmaPoolPage& pg = sst.page_list.front();
  const auto pc = reinterpret_cast<std::uintptr_t>(pg.cpu);
  std::map<std::size_t, numacma::DmaBlock*> by_off;  // offset in that page -> our block there
  for (auto& b : small) {
    const auto c = reinterpret_cast<std::uintptr_t>(b.cpu());
    if (c >= pc && c < pc + sst.page_bytes) by_off[c - pc] = &b;
  }
  if (by_off.size() != sst.blocks_per_page)
    return fail("the first page holds " + std::to_string(by_off.size()) + " of our blocks, want " +
                std::to_string(sst.blocks_per_page)), false;
  const std::size_t last = by_off.rbegin()->first, middle = sst.page_bytes / 2;
  if (by_off.count(middle) == 0) return fail("no block at the middle of the page"), false;
  auto* page = static_cast<std::uint8_t*>(pg.cpu);
  bool ok = true;
  unsigned seed = 11;
  for (std::size_t off : {std::size_t{0}, middle, last}) {
    numacma::DmaBlock& b = *by_off[off];
    std::memset(page, 0xa5, sst.page_bytes);
    if (!dma_block(edu, src, b.cpu(), b.dma_addr(), sst.block_size, seed++)) {
      ok = false;
      continue;
    }
    std::size_t clobbered = 0;
    for (std::size_t i = 0; i < sst.page_bytes; ++i)
      clobbered += (i < off || i >= off + sst.block_size) && page[i] != 0xa5;
    if (clobbered) {
      fail(std::to_string(clobbered) + " bytes outside the block at offset " + std::to_string(off) + " changed");
      ok = false;
      continue;
    }
    info("edu wrote the " + std::string(off == 0 ? "first" : off == last ? "last" : "middle") +
         " block of a page (offset " + std::to_string(off) + ", dma " + hex(b.dma_addr()) +
         ") through its DMA address; CPU read it back, the rest of the page untouched");
  }
  numacma::DmaBlock& b = big.front();
  if (!dma_block(edu, src, b.cpu(), b.dma_addr(), bst.block_size, seed++)) return false;
  info("edu wrote a whole " + std::to_string(bst.block_size / 1024) + " KiB block (dma " + hex(b.dma_addr()) +
       ", from " + bst.page_list.front().area + "); CPU read it back");
  return ok;
}

/** DmaPool in the guest: for a device on every node with memory and for each
 *  edu (BDF MASK pairs, the devices' real nodes and masks), a pool of 512-byte
 *  blocks (align 64, boundary 4096: pages from `pages`, A3) and one of 8 KiB
 *  blocks (pages from pernuma<N>); the 64-bit edu writes into blocks; all
 *  freed (half by handle, half by address), destroy() ok, every area unused. */
int check_dmapool(const std::vector<std::string>& edus) {
  const auto t0 = std::chrono::steady_clock::now();
  Pool pool = make_pool("cma=4M cma_pernuma=4M", "hugetlb");
  const numacma::Stats pst = pool.stats();
  const numacma::AreaReport* reserved = area(pst, "reserved");
  constexpr std::size_t kSmall = 512, kAlign = 64, kBoundary = 4096, kBig = 8192;
  struct Case {
    std::string what;
    numacma::Device dev;
    Edu* edu = nullptr;
  };
  std::vector<std::unique_ptr<Edu>> edu_keep;
  std::vector<Case> cases;
  for (int n : memory_nodes())
    cases.push_back({"node " + std::to_string(n), numacma::Device::on_node(n, "dev" + std::to_string(n))});
  for (std::size_t i = 0; i + 1 < edus.size(); i += 2) {
    edu_keep.push_back(std::make_unique<Edu>());
    std::optional<numacma::Device> dev =
        edu_device(*edu_keep.back(), edus[i], std::stoull(edus[i + 1], nullptr, 16), pool);
    if (!dev) return 1;
    cases.push_back({"edu " + edus[i] + " (node " + std::to_string(dev->node) + ", mask " +
                         hex(dev->coherent_dma_mask) + ")",
                     *dev, edu_keep.back().get()});
  }
  for (Case& c : cases) {
    const int n = c.dev.node;
    info("-- " + c.what);
    auto small = numacma::DmaPool::create(pool, c.dev, "prp" + std::to_string(n), kSmall, kAlign, kBoundary);
    auto big = numacma::DmaPool::create(pool, c.dev, "big" + std::to_string(n), kBig, kAlign);
    if (!small || !big) {
      fail("DmaPool::create: " + (small ? big.error().message : small.error().message));
      continue;
    }
    if (c.dev.coherent_dma_mask < (std::uint64_t{1} << 32)) {
      // A low-zone device (A4): only `reserved` may serve multi-page requests
      // and it lies above the mask here, as do the device node's pages (no
      // zone retry): a clear error, never a block above the mask.
      for (numacma::DmaPool* dp : {&*small, &*big}) {
        auto b = dp->alloc();
        if (b) {
          fail(dp->name() + ": got a block at dma " + hex(b->dma_addr()) + " for mask " +
               hex(c.dev.coherent_dma_mask));
          continue;
        }
        const auto code = b.error().code;
        if (code != numacma::Errc::unreachable && code != numacma::Errc::no_memory)
          fail(std::string("unexpected error code ") + numacma::errc_name(code));
        const numacma::DmaPoolStats st = dp->stats();
        if (st.alloc_failures != 1 || st.pages != 0)
          fail(dp->name() + ": alloc_failures " + std::to_string(st.alloc_failures) + ", pages " +
               std::to_string(st.pages));
        info(dp->name() + ": no memory below the mask: " + numacma::errc_name(code) + ": " + b.error().message);
      }
    } else {
      // 8 KiB blocks: pages of 8 KiB from pernuma<N>; without it (no
      // hugepages on the node) from reserved; without that either, an 8 KiB
      // page could only be two ordinary pages (A7), which a device without an
      // IOMMU cannot use unless they are contiguous: refused.
      const std::string own = "pernuma" + std::to_string(n);
      std::string big_area = own;
      int big_node = n;
      bool try_big = true;
      if (area(pst, own) == nullptr && reserved != nullptr) {
        big_area = "reserved";
        big_node = reserved->node;
        info("no " + own + ": 8 KiB pages from reserved on node " + std::to_string(big_node));
      } else if (area(pst, own) == nullptr) {
        big_area = "pages";
        auto b = big->alloc();
        if (!b) {
          try_big = false;
          const auto code = b.error().code;
          if (code != numacma::Errc::unsupported && code != numacma::Errc::not_contiguous)
            fail("8 KiB block on node " + std::to_string(n) + ": unexpected error code " + numacma::errc_name(code));
          info("no " + own + ", no reserved: " + big->name() + " refuses: " + numacma::errc_name(code) + ": " +
               b.error().message);
        }
      }
      std::vector<numacma::DmaBlock> sb, bb;
      const bool s_ok = dmapool_blocks(*small, 2 * (kPage / kSmall) + 1, "pages", n, kBoundary, sb);
      const bool b_ok = !try_big || dmapool_blocks(*big, 3, big_area, big_node, 0, bb);
      if (c.edu != nullptr && s_ok && b_ok && !bb.empty()) {
        auto src = pool.alloc_coherent(c.dev, kPage);
        if (!src) fail("source page: " + src.error().message);
        else dmapool_edu_writes(*c.edu, *src, sb, small->stats(), bb, big->stats());
      }
      // Free everything: half by address (as a C driver does), the rest by handle.
      for (std::size_t i = 0; i < sb.size(); i += 2) {
        void* cpu = sb[i].cpu();
        const std::uint64_t dma = sb[i].dma_addr();
        sb[i].detach();
        if (auto s = small->free(cpu, dma); !s) fail("free by address: " + s.error().message);
      }
      sb.clear();
      bb.clear();
      for (numacma::DmaPool* dp : {&*small, &*big}) {
        const numacma::DmaPoolStats st = dp->stats();
        if (st.blocks_live != 0 || st.bad_frees != 0)
          fail(dp->name() + ": after freeing, blocks_live " + std::to_string(st.blocks_live) + ", bad_frees " +
               std::to_string(st.bad_frees));
      }
    }
    for (numacma::DmaPool* dp : {&*small, &*big}) {
      const std::string name = dp->name();
      if (auto s = dp->destroy(); !s) fail(name + ": destroy: " + s.error().message);
    }
  }
  // Every area whole again: no page of any pool left behind.
  f3_holds(pool);
  info("guest time " + std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(
                                          std::chrono::steady_clock::now() - t0).count()) + " ms");
  return g_failures ? 1 : 0;
}

}  // namespace

int run_vfio_check(const std::vector<std::string>& a);  // vfio_checks.cpp

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
