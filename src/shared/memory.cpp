// src/shared/memory.cpp — see memory.hpp.
#include "shared/memory.hpp"

#include "backing/hugetlb_file.hpp"
#include "core/limits.hpp"
#include "os/memfd.hpp"
#include "os/os.hpp"

namespace numacma::shared {

namespace {

using core::kPageBytes;
constexpr unsigned kResizeSeals = os::kSealShrink | os::kSealGrow | os::kSealSeal;

std::uint64_t round_up(std::uint64_t v, std::uint64_t a) { return (v + a - 1) / a * a; }

Result<AreaMemory> create_hugetlb(std::uint64_t hp, const NewArea& a) {
  Result<os::Fd> fd = os::memfd_sealable("numacma-" + a.name, hp);
  if (!fd) return std::move(fd).error();
  AreaMemory m;
  m.spec.kind_name = hp == (1ULL << 30) ? "hugetlb-1G" : "hugetlb-2M";
  m.spec.mapped_bytes = round_up(a.bytes, hp);
  m.spec.huge_page_bytes = hp;
  Result<backing::HugeMapping> h = backing::populate_sorted(fd->get(), m.spec.mapped_bytes, hp, a.node, false);
  if (!h) return std::move(h).error();
  m.spec.hpmap = h->order;
  if (h->phys.empty()) {
    m.spec.iova = true;
    m.spec.segments = {{0, a.bytes / kPageBytes, (std::uint64_t{a.index} + 1) << 40}};
    m.spec.note = "hugetlb: physical addresses unreadable: IOVA mode only";
  } else {
    m.spec.segments = backing::segments_from_phys(h->phys, hp, a.bytes);
  }
  backing::unmap_huge(h->cpu_base, h->mapped_bytes);  // the memfd keeps the pages
  m.fd = std::move(*fd);
  return m;
}

Result<AreaMemory> create_shmem(bool sim, const NewArea& a, backing::Backing* sim_backing) {
  Result<os::Fd> fd = os::memfd_sealable("numacma-" + a.name);
  if (!fd) return std::move(fd).error();
  AreaMemory m;
  m.spec.kind_name = sim ? "sim" : "anon";
  m.spec.mapped_bytes = a.bytes;
  if (sim) {  // the DMA layout Pool::create would give it
    Result<backing::Reservation> r = sim_backing->reserve_at(a.node, a.bytes, a.phys_base);
    if (!r) return std::move(r).error();
    m.spec.segments = r->segments;
    sim_backing->release(*r);
  } else {
    m.spec.iova = true;
    m.spec.segments = {{0, a.bytes / kPageBytes, (std::uint64_t{a.index} + 1) << 40}};
    m.spec.note = "anon: shmem pages bound to node " + std::to_string(a.node) +
                  ", physically contiguous only per 4 KiB page: multi-page DMA addresses are IOVAs";
  }
  if (Status s = os::truncate_file(fd->get(), a.bytes); !s) return std::move(s).error();
  if (!sim) {
    Result<void*> p = os::map_shared(fd->get(), a.bytes, true);
    if (!p) return std::move(p).error();
    Status st = os::bind_to_node(*p, a.bytes, a.node);
    if (st) st = os::populate(*p, a.bytes, kPageBytes);
    if (st) st = backing::verify_node(*p, a.bytes, kPageBytes, a.node);
    (void)os::unmap(*p, a.bytes);
    if (!st) return std::move(st).error();
  }
  m.fd = std::move(*fd);
  return m;
}

}  // namespace

Result<AreaMemory> create_area_memory(const std::string& kind, const NewArea& a, backing::Backing* sim) {
  Result<AreaMemory> m = make_error(Errc::invalid_argument, "unknown area kind '" + kind + "'");
  if (kind == "hugetlb-2M") m = create_hugetlb(2ULL << 20, a);
  else if (kind == "hugetlb-1G") m = create_hugetlb(1ULL << 30, a);
  else if (kind == "anon") m = create_shmem(false, a, nullptr);
  else if (kind == "sim") m = create_shmem(true, a, sim);
  if (!m) return m;
  if (Status s = os::add_seals(m->fd.get(), kResizeSeals); !s) return std::move(s).error();
  m->spec.name = a.name;
  m->spec.node = a.node;
  m->spec.pages = a.bytes / kPageBytes;
  return m;
}

Status check_sealed(int fd, std::uint64_t bytes, bool write_sealed, const std::string& what) {
  Result<unsigned> seals = os::seals_of(fd);
  const unsigned want = kResizeSeals | (write_sealed ? os::kSealWrite : 0u);
  if (!seals || (*seals & want) != want)
    return make_error(Errc::corrupt, what + " is not a memory file sealed against " +
                                         (write_sealed ? "writes and " : "") + "resizing: refused");
  Result<std::uint64_t> size = os::fd_size(fd);
  if (!size) return std::move(size).error();
  if (*size < bytes)
    return make_error(Errc::corrupt, what + " holds " + std::to_string(*size) + " bytes, less than the " +
                                         std::to_string(bytes) + " it must");
  return {};
}

Result<std::uintptr_t> map_area_memory(int fd, const AreaDesc& d, const std::vector<std::uint32_t>& hpmap) {
  if (d.huge_page_bytes != 0) return backing::map_in_order(fd, hpmap, d.huge_page_bytes, false);
  Result<void*> m = os::map_shared(fd, d.mapped_bytes, true);
  if (!m) return std::move(m).error();
  if (field(d.kind_name, sizeof d.kind_name) == "anon")
    (void)os::lock(*m, d.mapped_bytes);  // best effort: shmem pages stay while mapped and locked
  return reinterpret_cast<std::uintptr_t>(*m);
}

void unmap_area_memory(const AreaDesc& d, std::uintptr_t cpu_base) noexcept {
  if (d.huge_page_bytes != 0) {
    backing::unmap_huge(cpu_base, d.mapped_bytes);
    return;
  }
  (void)os::unlock(reinterpret_cast<void*>(cpu_base), d.mapped_bytes);
  (void)os::unmap(reinterpret_cast<void*>(cpu_base), d.mapped_bytes);
}

}  // namespace numacma::shared
