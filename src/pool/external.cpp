// src/pool/external.cpp — Pool::use_external_iommu: a pool's DMA addresses
// moved into an IOMMU another framework owns (DPDK's VFIO container:
// src/dpdk/), in this process.
//
//   checks   not vfio mode, not sim, no space yet, nothing of this process
//            live (an attached pool: its own records; other processes'
//            buffers stay where they are, in their own IOMMUs)
//   kept     A3's kept pages freed (they carry the old kind of address)
//   areas    each mapped once at an IOVA of the space (map_area_iova), its
//            core::Area moved there (Area::with_segments): a private area
//            over one IOVA-contiguous segment, the kernel's counters carried
//            over; a shared area over the same state, its reservation's
//            segment boundaries kept
//   after    iova mode: page-fallback buffers mapped and unmapped one by one
// A failure undoes every area mapped before it: the pool is as it was.
#include <mutex>
#include <utility>
#include <vector>

#include "pool/pool_impl.hpp"

namespace numacma {

namespace {

Error refused(Errc code, const std::string& why) {
  return make_error(code, "use_external_iommu: " + why);
}

/** This attachment's own live buffers in a shared area (its records):
 *  other processes' buffers do not stop the move, since each process maps
 *  the area in its own IOMMU. */
Result<std::uint64_t> own_live(detail::PoolImpl& p, const detail::AreaSlot& slot) {
  if (!p.lock_area(slot)) return p.lock_error(slot);
  const std::uint64_t n = core::records_of(*slot.records, p.holder);
  p.unlock_area(slot);
  return n;
}

/** A shared area's segments at its new IOVA: the reservation's boundaries
 *  kept (no buffer of this process may span one, or the keeper and the other
 *  processes would take its record for a forged one), each at its offset
 *  from the one IOVA the whole area is mapped at. */
std::vector<core::Segment> at_iova(const std::vector<core::Segment>& reserved, std::uint64_t iova) {
  std::vector<core::Segment> out = reserved;
  for (core::Segment& s : out) s.dma_base = iova + s.first_page * core::kPageBytes;
  return out;
}

}  // namespace

Status Pool::use_external_iommu(ExternalIommuSpec spec) {
  if (!impl_) return refused(Errc::invalid_argument, "empty (moved-from) Pool");
  detail::PoolImpl& p = *impl_;
  if (p.attachment && p.attachment->forked()) return refused(Errc::invalid_argument, p.forked_error().message);
  if (p.vfio)
    return refused(Errc::unsupported,
                   "the pool is in vfio mode: its own VFIO container maps its memory; create it "
                   "without PoolOptions::vfio");
  if (p.iova_space) return refused(Errc::busy, "the pool uses an external IOMMU already");
  if (p.address_kind() == AddressKind::simulated)
    return refused(Errc::unsupported, "the sim backing's memory is simulated: no IOMMU can map it");
  for (const auto& slot : p.areas.slots()) {
    const Result<std::uint64_t> live =
        slot->records ? own_live(p, *slot) : Result<std::uint64_t>(slot->area.live_allocations());
    if (!live) return refused(live.error().code, live.error().message);
    if (*live > 0)
      return refused(Errc::busy, "area " + slot->area.name() + " has " + std::to_string(*live) +
                                     " live buffer(s)" + (slot->records ? " of this process" : "") +
                                     ": call it before the first allocation");
  }
  for (const detail::PageShelf& sh : p.pages.all())
    if (!sh.live.empty())
      return refused(Errc::busy, std::to_string(sh.live.size()) +
                                     " page buffer(s) are live: call it before the first allocation");

  Result<std::unique_ptr<detail::IovaSpace>> space = detail::external_space(std::move(spec));
  if (!space) return refused(space.error().code, space.error().message);
  // A3's kept pages carry the old kind of address: back to the OS.
  for (detail::PageShelf& sh : p.pages.all()) {
    std::lock_guard<detail::ShelfLock> lock(sh.mu);
    for (std::uint32_t slot : sh.cached) p.backing->free_pages(sh.take(slot));
    sh.cached.clear();
  }

  p.iova_space = std::move(*space);
  std::vector<backing::Reservation> before;
  auto undo = [&p, &before]() {
    for (std::size_t i = 0; i < before.size(); ++i) {
      backing::Reservation& r = p.areas.at(static_cast<int>(i)).res;
      (void)p.iova_space->unmap(r.segments.front().dma_base, detail::pages_of(r.mapped_bytes) * core::kPageBytes);
      r = std::move(before[i]);
    }
    p.iova_space.reset();
  };
  std::vector<core::Area> areas;
  for (const auto& slot : p.areas.slots()) {
    before.push_back(slot->res);
    if (Status s = detail::map_area_iova(p, slot->area.name(), slot->res); !s) {
      before.pop_back();  // this one was not mapped
      undo();
      return refused(s.error().code, "area " + slot->area.name() + ": " + s.error().message);
    }
    if (slot->records)  // a shared area: its partition stays the reservation's
      slot->res.segments = at_iova(slot->area.config().segments, slot->res.segments.front().dma_base);
    Result<core::Area> a = slot->area.with_segments(slot->res.segments);
    if (!a) {
      undo();
      return refused(a.error().code, "area " + slot->area.name() + ": " + a.error().message);
    }
    areas.push_back(std::move(*a));
  }
  for (std::size_t i = 0; i < areas.size(); ++i) {
    detail::AreaSlot& slot = p.areas.at(static_cast<int>(i));
    slot.area = std::move(areas[i]);
    p.notes.push_back({slot.area.name(), slot.area.node(), slot.res.note});
  }
  p.iova_mode = true;
  return {};
}

}  // namespace numacma
