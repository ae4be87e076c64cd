// src/pool/external.cpp — Pool::use_external_iommu: a private pool's DMA
// addresses moved into an IOMMU another framework owns (DPDK's VFIO
// container: src/dpdk/).
//
//   checks   a private pool, not vfio mode, not sim, no space yet, nothing live
//   kept     A3's kept pages freed (they carry the old kind of address)
//   areas    each mapped once at an IOVA of the space (map_area_iova), its
//            core::Area rebuilt over the one IOVA-contiguous segment, the
//            kernel's counters carried over
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

/** The area rebuilt over `segments`, with the kernel's counters kept. */
Result<core::Area> rebased(const core::Area& old, std::vector<core::Segment> segments) {
  core::AreaConfig cfg = old.config();
  cfg.segments = std::move(segments);
  Result<core::Area> a = core::Area::create(std::move(cfg));
  if (!a) return a;
  core::AreaCounters& c = a->counters();
  c.alloc_pages_success = old.counters().alloc_pages_success;
  c.alloc_pages_fail = old.counters().alloc_pages_fail;
  c.release_pages_success = old.counters().release_pages_success;
  return a;
}

}  // namespace

Status Pool::use_external_iommu(ExternalIommuSpec spec) {
  if (!impl_) return refused(Errc::invalid_argument, "empty (moved-from) Pool");
  detail::PoolImpl& p = *impl_;
  if (p.attachment)
    return refused(Errc::unsupported,
                   "pool " + p.shared_name + " is attached to a reservation: its DMA addresses are "
                   "the reservation's, shared by every attached process; create a private pool");
  if (p.vfio)
    return refused(Errc::unsupported,
                   "the pool is in vfio mode: its own VFIO container maps its memory; create it "
                   "without PoolOptions::vfio");
  if (p.iova_space) return refused(Errc::busy, "the pool uses an external IOMMU already");
  if (p.address_kind() == AddressKind::simulated)
    return refused(Errc::unsupported, "the sim backing's memory is simulated: no IOMMU can map it");
  for (const auto& slot : p.areas.slots())
    if (slot->area.live_allocations() > 0)
      return refused(Errc::busy, "area " + slot->area.name() + " has " +
                                     std::to_string(slot->area.live_allocations()) +
                                     " live buffer(s): call it before the first allocation");
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
    Result<core::Area> a = rebased(slot->area, slot->res.segments);
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
