// src/pool/alloc.cpp — dma_alloc_coherent / dma_free_coherent (SEMANTICS A1-A9, F1-F2).
//
//   alloc(dev, bytes)
//     A1  bytes == 0 -> EINVAL; count = ceil(bytes / P)
//     A2  dev.area set -> that area only (exclusive): success or the error
//     A3  count == 1 -> pages on dev.node (node -1: the calling CPU's node,
//         numa_mem_id(); an unknown CPU: CPU 0's node, else the first with memory)
//     A4  node != -1 and mask > 32 bits (not a low-zone request; in vfio mode
//         the mask never makes one: it limits IOVAs, not memory)
//             -> pernuma<N>, numa<N>
//         policy=nearest: the other nodes' pernuma/numa by distance
//     A5  -> reserved
//     A7  -> pages on dev.node, or on the calling CPU's node as in A3
//            (physical mode: a multi-page block that is not physically
//            contiguous is refused; IOVA mode: returned, marked)
//     A8  every candidate is searched only below the device's mask; an area
//         entirely above it is skipped
//     A9  the outcome is counted for the requesting node (-1 has its own slot)
#include <algorithm>
#include <bit>
#include <mutex>

#include "pool/pool_impl.hpp"

namespace numacma::detail {

namespace {

/** The kernel's get_order for a page count: ceil(log2(count)). */
unsigned order_of(std::uint64_t count) noexcept {
  return count <= 1 ? 0u : static_cast<unsigned>(std::bit_width(count - 1));
}

/** DMA_BIT_MASK(32): a mask at or below it makes the kernel ask for
 *  GFP_DMA/GFP_DMA32, i.e. a low-zone request that skips per-node areas (A4). */
constexpr std::uint64_t kLowZoneMask = 0xffffffffULL;

constexpr std::uint64_t kMaxRequest = std::uint64_t{1} << 46;  // 64 TiB: beyond any area

}  // namespace

NodeCounters& PoolImpl::counters_for(int node) noexcept {
  const std::size_t i = static_cast<std::size_t>(node + 1);
  return i < counters.size() ? counters[i] : counters[0];
}

Result<RawBuffer> PoolImpl::from_area(int idx, std::uint64_t count, std::uint64_t limit,
                                      Served served) {
  AreaSlot& slot = *areas[static_cast<std::size_t>(idx)];
  const unsigned align = std::min(order_of(count), kCmaAlignment);
  Result<core::Block> b = slot.shared ? slot.shared->alloc(slot.area, count, align, limit) : [&] {
    std::lock_guard<std::mutex> lock(slot.mu);
    return slot.area.alloc(count, align, limit);
  }();
  if (!b) return std::move(b).error();
  RawBuffer r;
  r.cpu = reinterpret_cast<void*>(b->cpu);
  r.dma = b->dma_addr;
  r.node = slot.area.node();
  r.area = idx;
  r.iova = slot.iova();
  r.contiguous = vfio != nullptr || !slot.iova() || count == 1;  // vfio: contiguous IOVAs
  r.served = served;
  return r;
}

PageShelf& PoolImpl::shelf_for(int node) noexcept {
  const std::size_t i = static_cast<std::size_t>(node + 1);
  return i < shelves.size() ? shelves[i] : shelves[0];
}

std::uint32_t PageShelf::store(backing::PagesBlock&& pb) {
  if (vacant.empty()) {
    slots.push_back(std::move(pb));
    return static_cast<std::uint32_t>(slots.size() - 1);
  }
  const std::uint32_t s = vacant.back();
  vacant.pop_back();
  slots[s] = std::move(pb);
  return s;
}

backing::PagesBlock PageShelf::take(std::uint32_t s) {
  backing::PagesBlock pb = std::move(slots[s]);
  vacant.push_back(s);
  return pb;
}

Result<RawBuffer> PoolImpl::from_pages(const Device& dev, int node, std::uint64_t bytes) {
  const auto to_raw = [](const backing::PagesBlock& pb) {
    RawBuffer r;
    r.cpu = reinterpret_cast<void*>(pb.cpu);
    r.dma = pb.dma_addr;
    r.node = pb.node;
    r.area = -1;
    r.iova = pb.addr_kind == backing::AddrKind::iova;
    r.contiguous = pb.contiguous;
    r.served = Served::pages;
    return r;
  };
  // A3's common case: reuse a page this node freed before (not in vfio mode:
  // a freed page is unmapped at once, so the device can no longer reach it).
  if (bytes == kPageSize && !vfio) {
    PageShelf& sh = shelf_for(node);
    std::lock_guard<std::mutex> lock(sh.mu);  // one lock: cache pop + live insert
    if (!sh.cached.empty()) {
      const std::uint32_t slot = sh.cached.back();
      const backing::PagesBlock& pb = sh.slots[slot];
      if (pb.dma_addr + (kPageSize - 1) <= dev.coherent_dma_mask) {
        sh.live.emplace(pb.cpu, slot);
        sh.cached.pop_back();
        return to_raw(pb);
      }
    }
  }
  Result<backing::PagesBlock> pb = backing->alloc_pages(node, bytes, !iova_mode);
  if (!pb) return std::move(pb).error();
  if (vfio) {  // A8 in IOVA space: mapped below the device's own mask
    if (Status s = map_pages_vfio(*this, *pb, dev.coherent_dma_mask); !s) {
      backing->free_pages(*pb);
      return std::move(s).error();
    }
  }
  const std::uint64_t last = pb->dma_addr + (bytes - 1);
  if (last < pb->dma_addr || last > dev.coherent_dma_mask) {
    (void)release_block(*pb);  // unmapped first in vfio mode
    return make_error(Errc::unreachable, "pages on node " + std::to_string(pb->node) + " at " +
                                             fmt_hex(pb->dma_addr) + " are above the DMA mask " +
                                             fmt_hex(dev.coherent_dma_mask));
  }
  const RawBuffer r = to_raw(*pb);
  PageShelf& sh = shelf_for(pb->node);
  std::lock_guard<std::mutex> lock(sh.mu);
  const std::uintptr_t cpu = pb->cpu;
  sh.live.emplace(cpu, sh.store(std::move(*pb)));
  return r;
}

Result<RawBuffer> PoolImpl::alloc(const Device& dev, std::size_t bytes, int cpu) {
  if (!shared_pool) return alloc_once(dev, bytes, cpu, true);
  if (shared_pool->forked()) return forked_error();
  // An attached pool: when nothing could serve the request, the buffers of
  // processes that died go back to their areas first, and it is tried again.
  Result<RawBuffer> r = alloc_once(dev, bytes, cpu, false);
  if (!r && (r.error().code == Errc::no_memory || r.error().code == Errc::not_contiguous) &&
      shared_pool->reap_dead())
    r = alloc_once(dev, bytes, cpu, false);
  if (!r) this->count(dev.node, kFailed);
  return r;
}

Result<RawBuffer> PoolImpl::alloc_once(const Device& dev, std::size_t bytes, int cpu,
                                       bool count_failure) {
  auto fail = [&](Errc code, std::string msg) -> Result<RawBuffer> {
    if (count_failure) this->count(dev.node, kFailed);
    return make_error(code, std::move(msg));
  };
  // Built only on an error path: the success path allocates no string.
  const auto who = [&dev] { return "'" + dev.name + "'"; };
  if (bytes == 0) return fail(Errc::invalid_argument, "size 0 requested by " + who() + " (A1)");
  if (bytes > kMaxRequest)
    return fail(Errc::invalid_argument, "size " + std::to_string(bytes) + " requested by " + who() +
                                            " is larger than any area can be");
  if (dev.node != kNoNode && !topology.is_online(dev.node))
    return fail(Errc::invalid_argument,
                "device " + who() + " is on node " + std::to_string(dev.node) +
                    ", which is not an online node of this machine");
  if (dev.coherent_dma_mask == 0)
    return fail(Errc::invalid_argument, "device " + who() + " has a coherent DMA mask of 0");

  const std::uint64_t count = (bytes + kPageSize - 1) / kPageSize;
  const std::uint64_t limit = dev.coherent_dma_mask;

  // A2: a device area is exclusive.
  if (!dev.area.empty()) {
    auto it = device_.find(dev.area);
    if (it == device_.end())
      return fail(Errc::not_found, "device " + who() + " names area '" + dev.area +
                                       "', which this pool does not have");
    Result<RawBuffer> r = from_area(it->second, count, limit, Served::local);
    if (!r) return fail(r.error().code, r.error().message + " (device area is exclusive, A2)");
    this->count(dev.node, kLocal);
    return r;
  }

  std::string tried;
  bool any_reachable = false;
  auto note = [&](const Error& e) {
    if (e.code != Errc::unreachable) any_reachable = true;
    tried += (tried.empty() ? "" : "; ") + e.message;
  };
  auto attempt = [&](int idx, Served served) -> Result<RawBuffer> {
    if (idx < 0) return make_error(Errc::not_found, "");
    const AreaSlot& slot = *areas[static_cast<std::size_t>(idx)];
    if (slot.iova() && !iova_mode) {
      note(make_error(Errc::not_contiguous, slot.area.name() + ": IOVA-only area in phys mode"));
      return make_error(Errc::not_contiguous, "");
    }
    Result<RawBuffer> r = from_area(idx, count, limit, served);
    if (!r) note(r.error());
    return r;
  };
  auto done = [&](Result<RawBuffer> r, Bucket bucket) {
    this->count(dev.node, bucket);
    return r;
  };

  if (count > 1) {  // A3: a single page never uses CMA areas
    // With an IOMMU the mask limits the IOVA, not the memory: the kernel's
    // dma-iommu path asks for no low zone, so per-node areas stay in play
    // (vfio mode: A4 regardless of the mask; A8 holds in IOVA space).
    const bool low_zone = !vfio && limit <= kLowZoneMask;
    const auto node_slot = [](const std::vector<int>& v, int n) {
      return n >= 0 && static_cast<std::size_t>(n) < v.size() ? v[static_cast<std::size_t>(n)] : -1;
    };
    if (dev.node != kNoNode && !low_zone) {  // A4
      for (int idx : {node_slot(pernuma_, dev.node), node_slot(numa_, dev.node)}) {
        if (auto r = attempt(idx, Served::local)) return done(std::move(r), kLocal);
      }
      if (opts.policy == Policy::nearest) {  // A5, policy=nearest
        for (int other : topology.nodes_by_distance(dev.node)) {
          for (int idx : {node_slot(pernuma_, other), node_slot(numa_, other)}) {
            if (auto r = attempt(idx, Served::other_node)) return done(std::move(r), kOtherNode);
          }
        }
      }
    }
    if (auto r = attempt(default_, Served::default_area)) return done(std::move(r), kDefault);
  }

  // A7 (and A3): ordinary pages on the device's node; for a device with no
  // node, on the calling CPU's (the kernel's alloc_pages_node(NUMA_NO_NODE)
  // takes numa_mem_id()).
  const int page_node = dev.node != kNoNode ? dev.node : node_of_cpu(cpu);
  Result<RawBuffer> p = from_pages(dev, page_node, count * kPageSize);
  if (p) return done(std::move(p), kPages);
  note(p.error());
  Errc code = p.error().code;
  if (code == Errc::unreachable && any_reachable) code = Errc::no_memory;
  std::string what = errc_name(code);
  std::replace(what.begin(), what.end(), '_', ' ');
  return fail(code, what + ": " + fmt_bytes(bytes) + " for " + who() + " on node " +
                        std::to_string(dev.node) + ": " + tried);
}

int PoolImpl::area_by_cpu(std::uintptr_t cpu) const noexcept {
  // by_cpu_ is sorted by cpu_base: the candidate is the last area starting at or below cpu.
  auto it = std::upper_bound(by_cpu_.begin(), by_cpu_.end(), cpu, [&](std::uintptr_t c, int idx) {
    return c < areas[static_cast<std::size_t>(idx)]->area.config().cpu_base;
  });
  if (it == by_cpu_.begin()) return -1;
  const int idx = *std::prev(it);
  return areas[static_cast<std::size_t>(idx)]->area.contains_cpu(cpu) ? idx : -1;
}

Status PoolImpl::reject_free(std::string msg) {  // F2: counted, never fatal
  bad_frees.fetch_add(1, std::memory_order_relaxed);
  return make_error(Errc::bad_free, std::move(msg));
}

Error PoolImpl::forked_error() const {
  return make_error(Errc::invalid_argument,
                    "the attachment to shared pool '" + shared_name +
                        "' belongs to the process that attached before fork(); a child attaches itself "
                        "(Pool::attach)");
}

Status PoolImpl::free(std::size_t bytes, void* cpu_ptr, std::uint64_t dma, int area_hint,
                      int node_hint) {
  if (shared_pool && shared_pool->forked()) return forked_error();
  const auto bad = [this](std::string msg) { return reject_free(std::move(msg)); };
  const auto cpu = reinterpret_cast<std::uintptr_t>(cpu_ptr);
  if (cpu_ptr == nullptr) return bad("free of a NULL address");
  if (bytes == 0) return bad("free with size 0");
  const std::uint64_t count = (bytes + kPageSize - 1) / kPageSize;

  // A DmaBuffer knows its area, or that it came from pages; an address from
  // the caller is looked up (F1).
  if (area_hint == kPagesBuffer) return free_pages(bytes, cpu, dma, node_hint);
  const int idx = area_hint >= 0 ? area_hint : area_by_cpu(cpu);
  if (idx >= 0) {  // F1: the area whose span contains the address
    AreaSlot& slot = *areas[static_cast<std::size_t>(idx)];
    const core::Area& a = slot.area;
    if ((cpu - a.config().cpu_base) % kPageSize != 0)
      return bad("free of an address inside area " + a.name() + " that is not a buffer start");
    const std::uint64_t page = a.page_of_cpu(cpu);
    if (a.dma_of_page(page) != dma)
      return bad("free in area " + a.name() + ": DMA address does not match the CPU address");
    Status s = slot.shared ? slot.shared->release(slot.area, page, count) : [&] {
      std::lock_guard<std::mutex> lock(slot.mu);
      return slot.area.release(page, count);
    }();
    if (!s) return bad(s.error().message);
    return {};
  }

  return free_pages(bytes, cpu, dma, node_hint);
}

Status PoolImpl::free_pages(std::size_t bytes, std::uintptr_t cpu, std::uint64_t dma, int node_hint) {
  const auto bad = [this](std::string msg) { return reject_free(std::move(msg)); };
  const std::uint64_t count = (bytes + kPageSize - 1) / kPageSize;
  // The block is in the shelf of its node: the hinted one first, then the rest.
  PageShelf* first = &shelf_for(node_hint);
  for (std::size_t i = 0; i <= shelves.size(); ++i) {
    PageShelf& sh = i == 0 ? *first : shelves[i - 1];
    if (i > 0 && &sh == first) continue;
    backing::PagesBlock block;
    {
      std::lock_guard<std::mutex> lock(sh.mu);
      auto it = sh.live.find(cpu);
      if (it == sh.live.end()) continue;
      const std::uint32_t slot = it->second;
      const backing::PagesBlock& b = sh.slots[slot];
      if ((b.bytes + kPageSize - 1) / kPageSize != count)
        return bad("free of a pages buffer with the wrong size: allocated " + fmt_bytes(b.bytes) +
                   ", freed " + fmt_bytes(bytes));
      if (b.dma_addr != dma) return bad("free of a pages buffer with the wrong DMA address");
      sh.live.erase(it);
      if (b.bytes == kPageSize && sh.cached.size() < PageShelf::kMax && !vfio) {  // same lock: kept
        sh.cached.push_back(slot);
        return {};
      }
      block = sh.take(slot);
    }
    Status s = release_block(block);  // the OS calls, outside the lock
    if (!s) {  // still mapped: kept, and freed when the pool goes (after its container)
      std::lock_guard<std::mutex> lock(sh.mu);
      sh.stuck.push_back(block);
    }
    return s;
  }
  return bad("free of an address that is not a live buffer of this pool "
             "(double free or foreign pointer)");
}

}  // namespace numacma::detail
