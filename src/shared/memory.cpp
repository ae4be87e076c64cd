// src/shared/memory.cpp — see memory.hpp.
#include "shared/memory.hpp"

#include "backing/hugetlb_file.hpp"
#include "os/os.hpp"
#include "os/shared.hpp"

namespace numacma::shared {

namespace {

constexpr std::uint64_t kPage = 4096;

/** numacma.NAME.AREA.PID: the reserving process's pid keeps two reservations
 *  of one name under different run directories (tests) apart. */
std::string file_name(const std::string& pool, const std::string& area) {
  return "numacma." + pool + "." + area + "." + std::to_string(os::self_pid());
}

std::uint64_t round_up(std::uint64_t v, std::uint64_t a) { return (v + a - 1) / a * a; }

Result<AreaSpec> create_hugetlb(std::uint64_t hp, const NewArea& a, const std::string& pool_name,
                                const FileAccess& access) {
  Result<std::string> mount = os::hugetlbfs_mount(hp);
  if (!mount) return std::move(mount).error();
  AreaSpec s;
  s.path = *mount + "/" + file_name(pool_name, a.name);
  s.kind_name = hp == (1ULL << 30) ? "hugetlb-1G" : "hugetlb-2M";
  s.mapped_bytes = round_up(a.bytes, hp);
  s.huge_page_bytes = hp;
  Result<os::Fd> fd = os::create_exclusive(s.path, access.mode, access.gid);
  if (!fd) return std::move(fd).error();
  Result<backing::HugeMapping> m = backing::populate_sorted(fd->get(), s.mapped_bytes, hp, a.node, false);
  if (!m) {
    (void)os::remove_file(s.path);
    return std::move(m).error();
  }
  s.hpmap = m->order;
  if (m->phys.empty()) {
    s.iova = true;
    s.segments = {{0, a.bytes / kPage, (std::uint64_t{a.index} + 1) << 40}};
    s.note = "hugetlb: physical addresses unreadable: IOVA mode only";
  } else {
    s.segments = backing::segments_from_phys(m->phys, hp, a.bytes);
  }
  backing::unmap_huge(m->cpu_base, m->mapped_bytes);  // the file keeps the pages
  return s;
}

Result<AreaSpec> create_file_area(bool sim, const NewArea& a, const std::string& pool_name, const std::string& dir,
                              const FileAccess& access, backing::Backing* sim_backing) {
  AreaSpec s;
  // anon: POSIX shared memory's tmpfs, whatever the run directory is on (a
  // file on a disk would be page cache written back, not memory bound to a node).
  s.path = sim ? dir + "/" + a.name + ".mem" : std::string(kShmDir) + "/" + file_name(pool_name, a.name);
  s.kind_name = sim ? "sim" : "anon";
  s.mapped_bytes = a.bytes;
  if (sim) {  // the DMA layout Pool::create would give it
    Result<backing::Reservation> r = sim_backing->reserve_at(a.node, a.bytes, a.phys_base);
    if (!r) return std::move(r).error();
    s.segments = r->segments;
    sim_backing->release(*r);
  } else {
    s.iova = true;
    s.segments = {{0, a.bytes / kPage, (std::uint64_t{a.index} + 1) << 40}};
    s.note = "anon: tmpfs pages bound to node " + std::to_string(a.node) +
             ", physically contiguous only per 4 KiB page: multi-page DMA addresses are IOVAs";
  }
  Result<os::Fd> fd = os::create_exclusive(s.path, access.mode, access.gid);
  if (!fd) return std::move(fd).error();
  const auto fail = [&](Error e) -> Result<AreaSpec> {
    (void)os::remove_file(s.path);
    return e;
  };
  if (Status r = os::truncate_file(fd->get(), a.bytes); !r) return fail(std::move(r).error());
  if (sim) return s;
  Result<void*> m = os::map_file(fd->get(), a.bytes, 0);
  if (!m) return fail(std::move(m).error());
  Status st = os::bind_to_node(*m, a.bytes, a.node);
  if (st) st = os::populate(*m, a.bytes, kPage);
  if (st) st = backing::verify_node(*m, a.bytes, kPage, a.node);
  (void)os::unmap(*m, a.bytes);
  if (!st) return fail(std::move(st).error());
  return s;
}

}  // namespace

Result<AreaSpec> create_area_memory(const std::string& kind, const NewArea& a, const std::string& pool_name,
                                    const std::string& dir, const FileAccess& access,
                                    backing::Backing* sim) {
  Result<AreaSpec> s = make_error(Errc::invalid_argument, "unknown area kind '" + kind + "'");
  if (kind == "hugetlb-2M") s = create_hugetlb(2ULL << 20, a, pool_name, access);
  else if (kind == "hugetlb-1G") s = create_hugetlb(1ULL << 30, a, pool_name, access);
  else if (kind == "anon") s = create_file_area(false, a, pool_name, dir, access, nullptr);
  else if (kind == "sim") s = create_file_area(true, a, pool_name, dir, access, sim);
  if (!s) return s;
  s->name = a.name;
  s->node = a.node;
  s->pages = a.bytes / kPage;
  return s;
}

Result<std::uintptr_t> map_area_memory(const AreaDesc& d, const std::vector<std::uint32_t>& hpmap) {
  const std::string path = field(d.path, sizeof d.path);
  Result<os::Fd> fd = os::open_rw(path);
  if (!fd) return std::move(fd).error();
  Result<os::FileInfo> info = os::file_info(fd->get());
  if (!info) return std::move(info).error();
  if (info->size < d.mapped_bytes)
    return make_error(Errc::corrupt, path + ": " + std::to_string(info->size) + " bytes, the area needs " +
                                         std::to_string(d.mapped_bytes));
  if (d.huge_page_bytes != 0) {
    Result<std::uintptr_t> m = backing::map_in_order(fd->get(), hpmap, d.huge_page_bytes, false);
    if (!m) return std::move(m).error();
    return *m;
  }
  Result<void*> m = os::map_file(fd->get(), d.mapped_bytes, 0);
  if (!m) return std::move(m).error();
  if (d.addr_iova != 0 && field(d.kind_name, sizeof d.kind_name) == "anon")
    (void)os::lock(*m, d.mapped_bytes);  // best effort: tmpfs pages stay while mapped and locked
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

Status remove_area_memory(const AreaDesc& d) { return os::remove_file(field(d.path, sizeof d.path)); }

}  // namespace numacma::shared
