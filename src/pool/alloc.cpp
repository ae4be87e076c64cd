// src/pool/alloc.cpp — dma_alloc_coherent / dma_free_coherent (docs/semantics.md A1-A9, F1-F2).
//
//   alloc(dev, bytes)
//     A1  bytes == 0 -> EINVAL; count = ceil(bytes / P)
//     A2  dev.area set -> that area only (exclusive): success or the error
//     A3  count == 1 -> pages on dev.node (node -1: the calling CPU's node,
//         numa_mem_id(); an unknown CPU: CPU 0's node, else the first with memory)
//     A4  node != -1 and the mask asks for no low zone (more than 32 bits:
//         dma_direct_optimal_gfp_mask; with an IOMMU the mask never makes
//         one: it limits IOVAs, not memory)
//             -> pernuma<N>, numa<N>
//         policy=nearest: the other nodes' pernuma/numa by distance
//     A5  -> reserved
//     A7  -> pages on dev.node, or on the calling CPU's node as in A3, in the
//            zone the mask asks for (ZONE_DMA32, ZONE_DMA or none); pages
//            above the mask are given back and asked again a zone lower
//            (ZONE_DMA32, then ZONE_DMA), from the zone's node when the
//            device's node has no memory in it: __dma_direct_alloc_pages
//            (physical mode: a multi-page block that is not physically
//            contiguous is refused; IOVA mode: returned, marked)
//     A8  every area's first fit at or below the device's mask is taken; a
//         first fit above it is counted as taken and released (the kernel
//         allocates, checks dma_coherent_ok, releases)
//     A9  the outcome is counted for the requesting node (-1 has its own slot)
//   then the buffer is zeroed, outside every lock, as the kernel's is.
//
// An area allocation is core::Area::find then commit under the area's lock;
// in an attached pool the commit is recorded (core/records.hpp) so that every
// process sees who holds the buffer.
#include <algorithm>
#include <bit>
#include <mutex>
#include <optional>

#include "pool/pool_impl.hpp"
#include "sync/word_lock.hpp"

namespace numacma::detail {

namespace {

/** The kernel's get_order for a page count: ceil(log2(count)). */
unsigned order_of(std::uint64_t count) noexcept {
  return count <= 1 ? 0u : static_cast<unsigned>(std::bit_width(count - 1));
}

/** A page block as the RawBuffer it serves. */
RawBuffer to_raw(const backing::PagesBlock& pb) noexcept {
  RawBuffer r;
  r.cpu = reinterpret_cast<void*>(pb.cpu);
  r.dma = pb.dma_addr;
  r.node = pb.node;
  r.area = -1;
  r.iova = pb.addr_kind == backing::AddrKind::iova;
  r.contiguous = pb.contiguous;
  r.served = Served::pages;
  return r;
}

/** A kept single page that a request may take: below the device's mask and
 *  in [from, below), the zone its pages come from first. */
bool kept_page_fits(const backing::PagesBlock& pb, std::uint64_t mask, std::uint64_t from,
                    std::uint64_t below) noexcept {
  return pb.dma_addr + (kPageBytes - 1) <= mask && pb.dma_addr >= from && pb.dma_addr + (kPageBytes - 1) < below;
}

/** A3's kept page: the node's last freed page, taken from its shelf when it
 *  fits the request (kept_page_fits); it becomes live, owned by a handle or
 *  not. False, and nothing taken, when the shelf is empty or its page does
 *  not fit. Used before: the caller zeroes it. */
bool take_kept_page(PageShelf& sh, std::uint64_t mask, std::uint64_t from, std::uint64_t below, bool handle,
                    RawBuffer& out) noexcept {
  std::lock_guard<ShelfLock> lock(sh.mu);  // one lock: cache pop + live insert
  if (sh.cached.empty()) return false;
  const std::uint32_t slot = sh.cached.back();
  const backing::PagesBlock& pb = sh.slots[slot];
  if (!kept_page_fits(pb, mask, from, below)) return false;
  sh.live.emplace(pb.cpu, slot);
  sh.owned[slot] = handle ? 1 : 0;
  sh.cached.pop_back();
  out = to_raw(pb);
  return true;
}

}  // namespace

bool PoolImpl::lock_area(const AreaSlot& slot) const noexcept {
  if (!sync::lock(slot.lock, holder, lock_timeout_ms, slot.shared)) return false;
  // A journal left pending under a free lock is no update in flight (the
  // keeper completes those of owners that died): complete it before use.
  if (slot.records && slot.records->st->journal.pending != 0)
    core::repair(*slot.records, const_cast<core::Area&>(slot.area));
  return true;
}

void PoolImpl::unlock_area(const AreaSlot& slot) const noexcept { sync::unlock(slot.lock, slot.shared); }

Error PoolImpl::lock_error(const AreaSlot& slot) const {
  const std::uint32_t o = sync::owner(slot.lock);
  const std::string who = attachment && o != 0 ? attachment->describe(o) : "another thread";
  return make_error(Errc::busy, "area " + slot.area.name() + " of pool '" + shared_name + "': its lock is held by " +
                                    who + " for more than " + std::to_string(lock_timeout_ms) +
                                    " ms (a stopped process?); $NUMACMA_TIMEOUT_MS sets the wait");
}

Result<RawBuffer> PoolImpl::from_area(int idx, std::uint64_t count, std::uint64_t limit, Served served,
                                      bool handle) {
  AreaSlot& slot = areas.at(idx);
  const unsigned align = std::min(order_of(count), kCmaAlignmentOrder);
  if (slot.records && count > 0xffffffffULL)
    return make_error(Errc::no_memory, slot.area.name() + ": " + std::to_string(count) +
                                           " pages is more than a shared area records for one buffer");
  if (!lock_area(slot)) return lock_error(slot);
  core::Block above{0, 0, 0, 0};
  Result<core::Block> b = slot.area.find(count, align, limit, &above);
  if (b) {
    if (slot.records) core::record_alloc(*slot.records, slot.area, *b, holder);
    else slot.area.commit(*b);
    if (handle) slot.handles.set(slot.bit_of(b->first_page));
  } else if (above.pages != 0) {  // the first fit is above the mask: taken, checked, released (A8)
    if (slot.records) core::record_taken_and_released(*slot.records, slot.area, above.pages);
    else slot.area.count_taken_and_released(above.pages);
  }
  unlock_area(slot);
  if (!b) return std::move(b).error();
  RawBuffer r;
  r.cpu = reinterpret_cast<void*>(b->cpu);
  r.dma = b->dma_addr;
  r.node = slot.area.node();
  r.area = idx;
  r.iova = slot.iova();
  r.contiguous = iova_space != nullptr || !slot.iova() || count == 1;  // contiguous IOVAs
  r.served = served;
  return r;
}

Result<RawBuffer> PoolImpl::from_pages(const Device& dev, int node, std::uint64_t bytes, bool handle,
                                       std::uint64_t from, std::uint64_t below) {
  // A3's common case: reuse a page this node freed before (not with IOVAs:
  // a freed page is unmapped at once, so the device can no longer reach it),
  // when it lies in the zone the request takes its pages from first.
  if (bytes == kPageBytes && !iova_space) {
    RawBuffer kept;
    if (take_kept_page(pages.of(node), dev.coherent_dma_mask, from, below, handle, kept))
      return kept;  // used before: zero() zeroes it
  }
  Result<backing::PagesBlock> pb = backing->alloc_pages(node, bytes, !iova_mode, below);
  if (!pb) return std::move(pb).error();
  if (iova_space) {  // A8 in IOVA space: mapped below the device's own mask
    if (Status s = map_pages_iova(*this, *pb, dev.coherent_dma_mask); !s) {
      backing->free_pages(*pb);
      return std::move(s).error();
    }
  }
  const std::uint64_t last = pb->dma_addr + (bytes - 1);
  if (last < pb->dma_addr || last > dev.coherent_dma_mask) {
    (void)release_block(*pb);  // unmapped first with IOVAs
    return make_error(Errc::unreachable, "pages on node " + std::to_string(pb->node) + " at " +
                                             fmt_hex(pb->dma_addr) + " are above the DMA mask " +
                                             fmt_hex(dev.coherent_dma_mask));
  }
  RawBuffer r = to_raw(*pb);
  r.fresh = pb->fresh;
  PageShelf& sh = pages.of(pb->node);
  std::lock_guard<ShelfLock> lock(sh.mu);
  const std::uintptr_t cpu = pb->cpu;
  const std::uint32_t slot = sh.store(std::move(*pb));
  sh.owned[slot] = handle ? 1 : 0;
  sh.live.emplace(cpu, slot);
  return r;
}

Result<RawBuffer> PoolImpl::page_fallback(const Device& dev, int node, std::uint64_t bytes, bool handle) {
  // A backing that cannot choose where its pages lie (pages of the OS bound
  // to a node), and an IOMMU (dma-iommu: the mask limits the IOVA, no zone
  // is asked for), take the node's pages and stop at the mask check.
  if (iova_space || !backing->takes_zones()) return from_pages(dev, node, bytes, handle, 0, backing::Backing::kAnywhere);
  const std::uint64_t mask = dev.coherent_dma_mask;
  config::Zone zone = zones.for_mask(mask);
  std::string tried;
  for (;;) {
    // The zone's node: the asked node when it has memory in the zone (or
    // below it), else the nearest that has (the zonelist's fallback).
    const int at = node_for_zone(node, zone);
    Result<RawBuffer> r = at < 0 ? Result<RawBuffer>(make_error(Errc::no_memory, std::string("no node has memory in ") +
                                                                                     config::zone_name(zone)))
                                 : from_pages(dev, at, bytes, handle, zone_floor(at, zone), zones.end(zone));
    if (r) return r;
    const std::optional<config::Zone> lower = zones.retry(zone, mask);
    const bool again = r.error().code == Errc::unreachable && lower;
    if (!again && tried.empty() && zone == config::Zone::normal) return r;
    tried += (tried.empty() ? "" : "; then ") + r.error().message + " (" + config::zone_name(zone) + ")";
    if (!again) return make_error(r.error().code, tried);
    zone = *lower;
  }
}

void PoolImpl::zero(const RawBuffer& r, std::uint64_t bytes) noexcept {
  if (!opts.zero && !attachment) return;  // opted out (never for memory other processes used)
  if (r.area >= 0) {
    const AreaSlot& slot = areas.at(r.area);
    backing->zero(r.cpu, bytes, slot.shared);
    return;
  }
  if (!r.fresh) backing->zero(r.cpu, bytes, false);  // new pages from the OS are zero already
}

bool PoolImpl::kept_page(const Device& dev, std::size_t bytes, int cpu, RawBuffer& out) noexcept {
  // The path alloc() takes for such a request, step by step: alloc_once's
  // checks (A1, the node, the mask), no device area (A2), one page (A3: no
  // area), page_fallback's first zone and its node, from_pages' kept page;
  // anything else, and an empty shelf, is left to alloc(). An attached
  // pool's kept pages are this process's own, as a private pool's (a forked
  // child's attachment is refused by alloc()).
  if (bytes == 0 || bytes > kPageBytes || iova_space || !dev.area.empty() || dev.coherent_dma_mask == 0)
    return false;
  if (attachment && attachment->forked()) return false;
  if (dev.node != kNoNode && !node_online(dev.node)) return false;
  int node = dev.node != kNoNode ? dev.node : node_of_cpu(cpu);
  std::uint64_t from = 0;
  std::uint64_t below = backing::Backing::kAnywhere;
  if (takes_zones_) {
    const config::Zone zone = zones.for_mask(dev.coherent_dma_mask);
    node = node_for_zone(node, zone);
    if (node < 0) return false;
    from = zone_floor(node, zone);
    below = zones.end(zone);
  }
  if (!take_kept_page(pages.of(node), dev.coherent_dma_mask, from, below, true, out))  // a DmaBuffer owns it
    return false;
  counters.add(dev.node, kPages);
  zero(out, kPageBytes);  // used before: zeroed
  return true;
}

Result<RawBuffer> PoolImpl::alloc(const Device& dev, std::size_t bytes, int cpu, bool handle) {
  Result<RawBuffer> r = make_error(Errc::invalid_argument, "");
  if (!attachment) {
    r = alloc_once(dev, bytes, cpu, true, handle);
  } else {
    if (attachment->forked()) return forked_error();
    // An attached pool: when nothing could serve the request, the keeper is
    // asked to give back the buffers of processes that are gone, and it is
    // tried again.
    r = alloc_once(dev, bytes, cpu, false, handle);
    if (!r && (r.error().code == Errc::no_memory || r.error().code == Errc::not_contiguous) && attachment->reap())
      r = alloc_once(dev, bytes, cpu, false, handle);
    if (!r) counters.add(dev.node, kFailed);
  }
  if (r) zero(*r, pages_of(bytes) * kPageBytes);
  return r;
}

Result<RawBuffer> PoolImpl::alloc_once(const Device& dev, std::size_t bytes, int cpu, bool count_failure,
                                       bool handle) {
  auto fail = [&](Errc code, std::string msg) -> Result<RawBuffer> {
    if (count_failure) counters.add(dev.node, kFailed);
    return make_error(code, std::move(msg));
  };
  // Built only on an error path: the success path allocates no string.
  const auto who = [&dev] { return "'" + dev.name + "'"; };
  if (bytes == 0) return fail(Errc::invalid_argument, "size 0 requested by " + who() + " (A1)");
  if (bytes > kMaxRequestBytes)
    return fail(Errc::invalid_argument, "size " + std::to_string(bytes) + " requested by " + who() +
                                            " is larger than any area can be");
  if (dev.node != kNoNode && !topology.is_online(dev.node))
    return fail(Errc::invalid_argument,
                "device " + who() + " is on node " + std::to_string(dev.node) +
                    ", which is not an online node of this machine");
  if (dev.coherent_dma_mask == 0)
    return fail(Errc::invalid_argument, "device " + who() + " has a coherent DMA mask of 0");

  const std::uint64_t count = pages_of(bytes);
  const std::uint64_t limit = dev.coherent_dma_mask;

  // A2: a device area is exclusive.
  if (!dev.area.empty()) {
    const int idx = areas.device(dev.area);
    if (idx < 0)
      return fail(Errc::not_found, "device " + who() + " names area '" + dev.area +
                                       "', which this pool does not have");
    Result<RawBuffer> r = from_area(idx, count, limit, Served::local, handle);
    if (!r) return fail(r.error().code, r.error().message + " (device area is exclusive, A2)");
    counters.add(dev.node, kLocal);
    return r;
  }

  std::string tried;
  bool any_reachable = false;
  std::string busy;  // an area whose lock could not be had in time: the request fails with busy
  auto note = [&](const Error& e) {
    if (e.code != Errc::unreachable) any_reachable = true;
    if (e.code == Errc::busy && busy.empty()) busy = e.message;
    tried += (tried.empty() ? "" : "; ") + e.message;
  };
  auto attempt = [&](int idx, Served served) -> Result<RawBuffer> {
    if (idx < 0 || !busy.empty()) return make_error(Errc::not_found, "");
    const AreaSlot& slot = areas.at(idx);
    if (slot.iova() && !iova_mode) {
      note(make_error(Errc::not_contiguous, slot.area.name() + ": IOVA-only area in phys mode"));
      return make_error(Errc::not_contiguous, "");
    }
    Result<RawBuffer> r = from_area(idx, count, limit, served, handle);
    if (!r) note(r.error());
    return r;
  };
  auto done = [&](Result<RawBuffer> r, Bucket bucket) {
    counters.add(dev.node, bucket);
    return r;
  };

  if (count > 1) {  // A3: a single page never uses CMA areas
    // With an IOMMU the mask limits the IOVA, not the memory: the kernel's
    // dma-iommu path asks for no low zone, so per-node areas stay in play
    // (vfio or external IOMMU: A4 regardless of the mask; A8 in IOVA space).
    const bool low_zone = !iova_space && zones.for_mask(limit) != config::Zone::normal;
    if (dev.node != kNoNode && !low_zone) {  // A4
      for (int idx : {areas.pernuma(dev.node), areas.numa(dev.node)}) {
        if (auto r = attempt(idx, Served::local)) return done(std::move(r), kLocal);
      }
      if (opts.policy == Policy::nearest) {  // A5, policy=nearest
        for (int other : topology.nodes_by_distance(dev.node)) {
          for (int idx : {areas.pernuma(other), areas.numa(other)}) {
            if (auto r = attempt(idx, Served::other_node)) return done(std::move(r), kOtherNode);
          }
        }
      }
    }
    if (auto r = attempt(areas.default_area(), Served::default_area)) return done(std::move(r), kDefault);
  }
  // A lock held past the timeout (a stopped process): what the rules would
  // decide cannot be known, so nothing further down the order is tried.
  if (!busy.empty()) return fail(Errc::busy, "busy: " + fmt_bytes(bytes) + " for " + who() + ": " + busy);

  // A7 (and A3): ordinary pages on the device's node; for a device with no
  // node, on the calling CPU's (the kernel's alloc_pages_node(NUMA_NO_NODE)
  // takes numa_mem_id()); in the zones the mask asks for.
  const int page_node = dev.node != kNoNode ? dev.node : node_of_cpu(cpu);
  Result<RawBuffer> p = page_fallback(dev, page_node, count * kPageBytes, handle);
  if (p) return done(std::move(p), kPages);
  note(p.error());
  Errc code = p.error().code;
  if (code == Errc::unreachable && any_reachable) code = Errc::no_memory;
  std::string what = errc_name(code);
  std::replace(what.begin(), what.end(), '_', ' ');
  return fail(code, what + ": " + fmt_bytes(bytes) + " for " + who() + " on node " + std::to_string(dev.node) +
                        ": " + tried);
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

Status PoolImpl::free(std::size_t bytes, void* cpu_ptr, std::uint64_t dma, int area_hint, int node_hint) {
  if (attachment && attachment->forked()) return forked_error();
  const auto cpu = reinterpret_cast<std::uintptr_t>(cpu_ptr);
  if (cpu_ptr == nullptr) return reject_free("free of a NULL address");
  if (bytes == 0) return reject_free("free with size 0");
  if (bytes > kMaxRequestBytes)
    return reject_free("free with size " + std::to_string(bytes) + ", larger than any buffer can be");
  const std::uint64_t count = pages_of(bytes);
  const bool by_handle = area_hint != kUnknownArea;
  // A DmaBuffer knows its area, or that it came from pages; an address from
  // the caller is looked up (F1).
  if (area_hint == kPagesBuffer) return free_pages(bytes, cpu, dma, node_hint, true);
  const int idx = area_hint >= 0 ? area_hint : areas.by_cpu(cpu);
  if (idx >= 0) return free_area(idx, count, cpu, dma, by_handle);
  return free_pages(bytes, cpu, dma, node_hint, false);
}

Status PoolImpl::free_area(int idx, std::uint64_t count, std::uintptr_t cpu, std::uint64_t dma, bool by_handle) {
  AreaSlot& slot = areas.at(idx);
  const core::Area& a = slot.area;
  if ((cpu - a.config().cpu_base) % kPageBytes != 0)
    return reject_free("free of an address inside area " + a.name() + " that is not a buffer start");
  const std::uint64_t page = a.page_of_cpu(cpu);
  if (a.dma_of_page(page) != dma)
    return reject_free("free in area " + a.name() + ": DMA address does not match the CPU address");
  const std::uint64_t bit = slot.bit_of(page);
  if (!lock_area(slot)) return lock_error(slot);
  if (!by_handle && slot.handles.test(bit)) {
    unlock_area(slot);
    return reject_free("free by address of a buffer in area " + a.name() +
                       " that a DmaBuffer owns: release() the DmaBuffer (or detach() it first)");
  }
  Status s;
  if (slot.records) {
    std::uint32_t owner = 0;
    s = core::check_release(*slot.records, page, count, holder, &owner);
    if (s) {
      core::record_release(*slot.records, slot.area, page, count, false);
      slot.handles.clear(bit);
    }
    unlock_area(slot);
    if (!s && owner != 0 && attachment)
      s = make_error(Errc::bad_free, "area '" + a.name() + "': page " + std::to_string(page) +
                                         ": the buffer is held by " + attachment->describe(owner) +
                                         ", not by this attachment; only its holder frees it");
  } else {
    s = slot.area.release(page, count);
    if (s) slot.handles.clear(bit);
    unlock_area(slot);
  }
  if (!s) return reject_free(s.error().message);
  return {};
}

Status PoolImpl::free_pages(std::size_t bytes, std::uintptr_t cpu, std::uint64_t dma, int node_hint,
                            bool by_handle) {
  const std::uint64_t count = pages_of(bytes);
  // The block is in the shelf of its node: the hinted one first, then the rest.
  PageShelf* first = &pages.of(node_hint);
  std::vector<PageShelf>& all = pages.all();
  for (std::size_t i = 0; i <= all.size(); ++i) {
    PageShelf& sh = i == 0 ? *first : all[i - 1];
    if (i > 0 && &sh == first) continue;
    backing::PagesBlock block;
    {
      std::lock_guard<ShelfLock> lock(sh.mu);
      auto it = sh.live.find(cpu);
      if (it == sh.live.end()) continue;
      const std::uint32_t slot = it->second;
      const backing::PagesBlock& b = sh.slots[slot];
      if (pages_of(b.bytes) != count)
        return reject_free("free of a pages buffer with the wrong size: allocated " + fmt_bytes(b.bytes) +
                           ", freed " + fmt_bytes(bytes));
      if (b.dma_addr != dma) return reject_free("free of a pages buffer with the wrong DMA address");
      if (!by_handle && sh.owned[slot] != 0)
        return reject_free("free by address of a pages buffer that a DmaBuffer owns: release() the DmaBuffer "
                           "(or detach() it first)");
      sh.live.erase(it);
      sh.owned[slot] = 0;
      if (b.bytes == kPageBytes && sh.cached.size() < PageShelf::kMax && !iova_space) {  // same lock: kept
        sh.cached.push_back(slot);
        return {};
      }
      block = sh.take(slot);
    }
    Status s = release_block(block);  // the OS calls, outside the lock
    if (!s) {  // still mapped: kept, and freed when the pool goes (after its container)
      std::lock_guard<ShelfLock> lock(sh.mu);
      sh.stuck.push_back(block);
    }
    return s;
  }
  return reject_free("free of an address that is not a live buffer of this pool "
                     "(double free or foreign pointer)");
}

void PoolImpl::forget_handle(int area, void* cpu_ptr, int node) noexcept {
  const auto cpu = reinterpret_cast<std::uintptr_t>(cpu_ptr);
  if (area >= 0) {
    AreaSlot& slot = areas.at(area);
    if (!lock_area(slot)) return;  // the mark stays: a free by address is refused, no harm done
    slot.handles.clear(slot.bit_of(slot.area.page_of_cpu(cpu)));
    unlock_area(slot);
    return;
  }
  PageShelf& sh = pages.of(node);
  std::lock_guard<ShelfLock> lock(sh.mu);
  if (auto it = sh.live.find(cpu); it != sh.live.end()) sh.owned[it->second] = 0;
}

}  // namespace numacma::detail
