// numacma-vmcheck's shared helpers (vmcheck.hpp): failure reporting, the
// independent witnesses, QEMU's edu device, helpers over the library.
#include "vmcheck.hpp"

#include <fcntl.h>
#include <numaif.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

using numacma::DmaBuffer;
using numacma::Pool;
using numacma::PoolOptions;
using numacma::Result;

namespace vmcheck {

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

bool Edu::open(const std::string& bdf) {
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

bool Edu::transfer(std::uint64_t dma, std::uint32_t count, bool to_ram) {
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

Pool make_pool(const std::string& params, const std::string& backing, numacma::Policy policy) {
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

/** Opens the edu device at `bdf` and makes its Device on `pool`, with the DMA
 *  mask QEMU gave the edu (the kernel would read it from the driver). */
std::optional<numacma::Device> edu_device(Edu& edu, const std::string& bdf, std::uint64_t mask, const Pool& pool) {
  if (!edu.open(bdf)) return std::nullopt;
  Result<numacma::Device> dev = numacma::Device::from_pci(bdf, pool);
  if (!dev) return fail(dev.error().message), std::nullopt;
  dev->coherent_dma_mask = mask;
  return *dev;
}

}  // namespace vmcheck
