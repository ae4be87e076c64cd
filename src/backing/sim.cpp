// src/backing/sim.cpp — the sim backing: real CPU memory, simulated nodes and
// DMA addresses laid out as the kernel would lay them out.
//
//   simulated physical memory = config::physical_layout(topology): each node's
//   memory blocks when the sysfs tree has them, else a window per node (node i
//   at the next 1 GiB boundary, MemTotal long); the first 1 MiB taken out (the
//   kernel keeps it), areas never below 16 MiB (config::Memblock's model).
//   reserve_at(node, bytes, base)   exactly where the plan put the area
//                                   (config::make_plan, the kernel's placement)
//   reserve(node, bytes)            the same rule, placed here
//   alloc_pages (A7)                a block of 2^order pages, naturally aligned,
//                                   top-down from the node's free memory below
//                                   `below` (the zone dma-direct asks for: on
//                                   x86-64 ZONE_DMA is [1 MiB, 16 MiB) here), at
//                                   most order 10 (4 MiB), as the kernel's page
//                                   allocator; freed blocks are reused
//
// CPU memory is MAP_NORESERVE and untouched until used, so a 64 GiB sim area
// costs nothing on a small machine. The Nth reserve() can be made to fail.
#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>

#include "backing/sim.hpp"
#include "config/memblock.hpp"
#include "core/limits.hpp"
#include "os/memfd.hpp"
#include "os/os.hpp"

namespace numacma::backing {

namespace {

using core::kPageBytes;
/** The page allocator's largest block: MAX_PAGE_ORDER 10, 4 MiB with 4 KiB pages. */
constexpr std::uint64_t kMaxPagesBlock = kPageBytes << 10;
/** x86 keeps the first 1 MiB for itself; pages may come from above it. */
constexpr std::uint64_t kPagesFrom = 1ULL << 20;
/** No area is placed below this (what config::Memblock leaves out by default). */
constexpr std::uint64_t kAreasFrom = 16ULL << 20;

std::uint64_t round_up(std::uint64_t v, std::uint64_t a) { return (v + a - 1) / a * a; }

std::string hex(std::uint64_t v) {
  char b[24];
  std::snprintf(b, sizeof b, "0x%" PRIx64, v);
  return b;
}

/** The bytes of the buddy block that serves `bytes`: 2^order pages
 *  (get_order), which dma-direct takes and frees whole. */
std::uint64_t block_of(std::uint64_t bytes) {
  std::uint64_t b = kPageBytes;
  while (b < bytes) b <<= 1;
  return b;
}

class SimBacking final : public Backing {
 public:
  SimBacking(const topo::Topology& t, SimOptions o) : opts_(o), mem_(config::physical_layout(t), kPagesFrom) {
    for (const topo::NodeInfo& n : t.nodes()) {
      Node& w = nodes_[n.id];
      w.has_memory = n.has_memory && mem_.free_bytes(n.id) > 0;
      w.limit = opts_.pages_limit_per_node != 0 ? opts_.pages_limit_per_node : n.mem.total_bytes;
    }
    first_memory_node_ = t.first_memory_node();
  }

  std::string name() const override { return "sim"; }

  Result<Reservation> reserve(int node, std::uint64_t bytes) override {
    return place(node, bytes, std::nullopt);
  }

  Result<Reservation> reserve_at(int node, std::uint64_t bytes, std::uint64_t phys_base) override {
    return place(node, bytes, phys_base);
  }

  Result<Reservation> place(int node, std::uint64_t bytes, std::optional<std::uint64_t> at) {
    std::lock_guard<std::mutex> lock(mu_);
    ++reservations_;
    if (opts_.fail_nth_reservation != 0 && reservations_ == opts_.fail_nth_reservation)
      return make_error(Errc::no_memory, "sim: injected failure of reservation #" +
                                             std::to_string(reservations_));
    auto it = nodes_.find(node);
    if (it == nodes_.end() || !it->second.has_memory)
      return make_error(Errc::no_memory, "sim: node " + std::to_string(node) + " has no memory");
    if (bytes == 0 || bytes % kPageBytes != 0)
      return make_error(Errc::invalid_argument, "sim: " + std::to_string(bytes) + " bytes is not whole pages");
    Result<std::uint64_t> base = std::uint64_t{0};
    if (at) {
      if (Status s = mem_.take(*at, bytes, node); !s) base = std::move(s).error();
      else base = *at;
    } else {
      base = mem_.alloc_top_down(round_up(bytes, config::kCmaMinAlignment), config::kCmaMinAlignment, kAreasFrom,
                                 mem_.end(), node);
      if (base && round_up(bytes, config::kCmaMinAlignment) != bytes)  // keep only what was asked
        mem_.give_back(*base + bytes, round_up(bytes, config::kCmaMinAlignment) - bytes, node);
    }
    if (!base)
      return make_error(Errc::no_memory, "sim: node " + std::to_string(node) + " cannot hold " +
                                             std::to_string(bytes >> 20) + " MiB more: " + base.error().message);
    Result<void*> cpu = os::map_anonymous(bytes, /*noreserve=*/true);
    if (!cpu) {
      mem_.give_back(*base, bytes, node);
      return std::move(cpu).error();
    }
    Reservation r;
    r.kind = "sim";
    r.node = node;
    r.cpu_base = reinterpret_cast<std::uintptr_t>(*cpu);
    r.bytes = r.mapped_bytes = bytes;
    r.addr_kind = AddrKind::physical;
    r.segments = {{0, bytes / kPageBytes, *base}};
    return r;
  }

  void release(const Reservation& r) noexcept override {
    (void)os::unmap(reinterpret_cast<void*>(r.cpu_base), r.mapped_bytes);
    std::lock_guard<std::mutex> lock(mu_);
    if (!r.segments.empty()) mem_.give_back(r.segments.front().dma_base, r.bytes, r.node);
  }

  Result<PagesBlock> alloc_pages(int node, std::uint64_t bytes, bool /*need_physical*/,
                                 std::uint64_t below) override {
    if (node == -1) node = first_memory_node_;
    bytes = round_up(bytes, kPageBytes);
    if (bytes > kMaxPagesBlock)
      return make_error(Errc::no_memory,
                        "sim pages: " + std::to_string(bytes / kPageBytes) +
                            " pages is beyond the page allocator's largest block (order 10: 4 MiB), "
                            "which the kernel's alloc_pages_node refuses");
    // An order-n block, naturally aligned and taken whole, as the buddy
    // allocator's are (dma-direct frees it whole too).
    const std::uint64_t block = block_of(bytes);
    std::lock_guard<std::mutex> lock(mu_);
    auto it = nodes_.find(node);
    if (it == nodes_.end() || !it->second.has_memory)
      return make_error(Errc::no_memory, "sim pages: node " + std::to_string(node) + " has no memory");
    Node& w = it->second;
    if (w.live + block > w.limit || w.live + block < w.live)
      return make_error(Errc::no_memory, "sim pages: node " + std::to_string(node) + " is out of memory");
    // Top-down: the highest zone the request allows first, as the zonelist
    // tries them (ZONE_DMA32 before ZONE_DMA).
    Result<std::uint64_t> dma = mem_.alloc_top_down(block, block, 0, std::min(below, mem_.end()), node);
    if (!dma)
      return make_error(Errc::no_memory, "sim pages: node " + std::to_string(node) + " is out of memory" +
                                             (below < mem_.end() ? " below " + hex(below) : std::string()));
    Result<void*> cpu = os::map_anonymous(bytes, /*noreserve=*/true);
    if (!cpu) {
      mem_.give_back(*dma, block, node);
      return std::move(cpu).error();
    }
    w.live += block;
    PagesBlock b;
    b.kind = "sim-pages";
    b.node = node;
    b.cpu = reinterpret_cast<std::uintptr_t>(*cpu);
    b.bytes = b.mapped_bytes = bytes;
    b.dma_addr = *dma;
    b.contiguous = true;  // simulates alloc_pages_node(order): contiguous
    b.addr_kind = AddrKind::physical;
    return b;
  }

  bool takes_zones() const noexcept override { return true; }

  /** Large ranges (2 MiB and more) are handed back to the kernel, which
   *  gives zero pages on the next touch: a simulated 1 GiB buffer costs no
   *  gigabyte of writes (nor of memory). Smaller ones are written, as a real
   *  backing's are, so that the cost of zeroing is the same in a private
   *  pool (private memory) and an attached one (a memory file, whose pages
   *  are dearer to hand back). */
  void zero(void* cpu, std::size_t bytes, bool shared) noexcept override {
    constexpr std::size_t kDiscardFrom = 2 << 20;
    const auto a = reinterpret_cast<std::uintptr_t>(cpu);
    if (bytes >= kDiscardFrom && a % kPageBytes == 0 && bytes % kPageBytes == 0 &&
        os::discard(cpu, bytes, shared))
      return;
    Backing::zero(cpu, bytes, shared);
  }

  void free_pages(const PagesBlock& b) noexcept override {
    (void)os::unmap(reinterpret_cast<void*>(b.cpu), b.mapped_bytes);
    std::lock_guard<std::mutex> lock(mu_);
    auto it = nodes_.find(b.node);
    if (it == nodes_.end()) return;
    it->second.live -= block_of(b.bytes);
    mem_.give_back(b.dma_addr, block_of(b.bytes), b.node);
  }

 private:
  struct Node {
    std::uint64_t limit = 0, live = 0;
    bool has_memory = false;
  };
  SimOptions opts_;
  std::mutex mu_;
  config::Memblock mem_;  // the simulated physical memory still free
  std::map<int, Node> nodes_;
  unsigned reservations_ = 0;
  int first_memory_node_ = -1;
};

}  // namespace

std::unique_ptr<Backing> make_sim(const topo::Topology& t, const SimOptions& o) {
  return std::make_unique<SimBacking>(t, o);
}

}  // namespace numacma::backing
