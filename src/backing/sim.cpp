// src/backing/sim.cpp — the sim backing: real CPU memory, simulated nodes and
// DMA addresses laid out from the topology.
//
//   simulated physical space, one window per online node in id order, each
//   rounded up to 1 GiB:
//   0        16M                                  MemTotal(0)   1G-aligned ...
//   | low    | reserved | pernuma0 | ...  ->   <- pages (A7) |  node 1 window ...
//            reservations bump up (2 MiB aligned)  pages carve down (4 KiB)
//
// CPU memory is MAP_NORESERVE and untouched until used, so a 64 GiB sim area
// costs nothing on a small machine. The Nth reserve() can be made to fail.
#include <algorithm>
#include <map>
#include <mutex>

#include "backing/sim.hpp"
#include "os/os.hpp"

namespace numacma::backing {

namespace {

constexpr std::uint64_t kGiB = 1ULL << 30, kMiB = 1ULL << 20, kPage = 4096;

std::uint64_t round_up(std::uint64_t v, std::uint64_t a) { return (v + a - 1) / a * a; }

class SimBacking final : public Backing {
 public:
  SimBacking(const topo::Topology& t, SimOptions o) : opts_(o) {
    std::uint64_t base = 0;
    bool first = true;
    for (const topo::NodeInfo& n : t.nodes()) {
      Window w;
      w.base = base;
      w.top = base + n.mem.total_bytes;
      w.next = base + (first && n.has_memory ? 16 * kMiB : 0);
      w.floor = w.top;
      w.has_memory = n.has_memory && n.mem.total_bytes > 0;
      w.limit = opts_.pages_limit_per_node != 0 ? opts_.pages_limit_per_node : n.mem.total_bytes;
      if (w.has_memory) first = false;
      windows_[n.id] = w;
      base = round_up(w.top, kGiB) + (n.mem.total_bytes == 0 ? kGiB : 0);
    }
    first_memory_node_ = t.first_memory_node();
  }

  std::string name() const override { return "sim"; }

  Result<Reservation> reserve(int node, std::uint64_t bytes) override {
    std::lock_guard<std::mutex> lock(mu_);
    ++reservations_;
    if (opts_.fail_nth_reservation != 0 && reservations_ == opts_.fail_nth_reservation)
      return make_error(Errc::no_memory, "sim: injected failure of reservation #" +
                                             std::to_string(reservations_));
    auto it = windows_.find(node);
    if (it == windows_.end() || !it->second.has_memory)
      return make_error(Errc::no_memory, "sim: node " + std::to_string(node) + " has no memory");
    Window& w = it->second;
    const std::uint64_t start = round_up(w.next, 2 * kMiB);
    if (bytes == 0 || bytes % kPage != 0 || start + bytes > w.floor || start + bytes < start)
      return make_error(Errc::no_memory, "sim: node " + std::to_string(node) + " cannot hold " +
                                             std::to_string(bytes >> 20) + " MiB more");
    Result<void*> cpu = os::map_anonymous(bytes, /*noreserve=*/true);
    if (!cpu) return std::move(cpu).error();
    w.next = start + bytes;
    Reservation r;
    r.kind = "sim";
    r.node = node;
    r.cpu_base = reinterpret_cast<std::uintptr_t>(*cpu);
    r.bytes = r.mapped_bytes = bytes;
    r.addr_kind = AddrKind::physical;
    r.segments = {{0, bytes / kPage, start}};
    return r;
  }

  void release(const Reservation& r) noexcept override {
    (void)os::unmap(reinterpret_cast<void*>(r.cpu_base), r.mapped_bytes);
  }

  Result<PagesBlock> alloc_pages(int node, std::uint64_t bytes, bool /*need_physical*/) override {
    if (node == -1) node = first_memory_node_;
    bytes = round_up(bytes, kPage);
    std::lock_guard<std::mutex> lock(mu_);
    auto it = windows_.find(node);
    if (it == windows_.end() || !it->second.has_memory)
      return make_error(Errc::no_memory, "sim pages: node " + std::to_string(node) + " has no memory");
    Window& w = it->second;
    if (w.live + bytes > w.limit || w.live + bytes < w.live)
      return make_error(Errc::no_memory, "sim pages: node " + std::to_string(node) + " is out of memory");
    // Reuse a freed simulated range (first fit), else carve below the floor.
    std::uint64_t dma = 0;
    bool found = false;
    for (auto f = w.free.begin(); f != w.free.end(); ++f) {
      if (f->second >= bytes) {
        dma = f->first;
        const std::uint64_t rest = f->second - bytes;
        w.free.erase(f);
        if (rest != 0) w.free.emplace(dma + bytes, rest);
        found = true;
        break;
      }
    }
    if (!found) {
      if (w.floor < w.next + bytes)
        return make_error(Errc::no_memory, "sim pages: node " + std::to_string(node) + " is out of memory");
      w.floor -= bytes;
      dma = w.floor;
    }
    Result<void*> cpu = os::map_anonymous(bytes, /*noreserve=*/true);
    if (!cpu) {
      w.free.emplace(dma, bytes);
      return std::move(cpu).error();
    }
    w.live += bytes;
    PagesBlock b;
    b.kind = "sim-pages";
    b.node = node;
    b.cpu = reinterpret_cast<std::uintptr_t>(*cpu);
    b.bytes = b.mapped_bytes = bytes;
    b.dma_addr = dma;
    b.contiguous = true;  // simulates alloc_pages_node(order): contiguous
    b.addr_kind = AddrKind::physical;
    return b;
  }

  void free_pages(const PagesBlock& b) noexcept override {
    (void)os::unmap(reinterpret_cast<void*>(b.cpu), b.mapped_bytes);
    std::lock_guard<std::mutex> lock(mu_);
    auto it = windows_.find(b.node);
    if (it == windows_.end()) return;
    it->second.live -= b.bytes;
    it->second.free.emplace(b.dma_addr, b.bytes);
  }

 private:
  struct Window {
    std::uint64_t base = 0, top = 0, next = 0, floor = 0, limit = 0, live = 0;
    bool has_memory = false;
    std::map<std::uint64_t, std::uint64_t> free;  // freed page ranges: dma -> bytes
  };
  SimOptions opts_;
  std::mutex mu_;
  std::map<int, Window> windows_;
  unsigned reservations_ = 0;
  int first_memory_node_ = -1;
};

}  // namespace

std::unique_ptr<Backing> make_sim(const topo::Topology& t, const SimOptions& o) {
  return std::make_unique<SimBacking>(t, o);
}

}  // namespace numacma::backing
