// src/shared/reserve.cpp — reserve, release and reap a reservation.
//
//   reserve NAME:  <run dir>/pools (checked) -> flock pools/.lock ->
//                  plan (R1-R6, as Pool::create) -> each area's memory, a
//                  sealed memfd -> the layout (a memfd sealed read-only) ->
//                  the state (a memfd sealed against resizing) -> mkdir
//                  pools/NAME -> the keeper starts and listens in it
//   release NAME:  asks the keeper (refused while a live holder has buffers,
//                  unless force); it removes the directory and exits. With
//                  force and no keeper answering, the directory is removed
//                  here (a keeper that wakes later sees it gone and leaves).
//   reap NAME:     asks the keeper.
#include <algorithm>

#include "backing/hugetlb_file.hpp"
#include "backing/sim.hpp"
#include "numacma/shared.hpp"
#include "os/dirs.hpp"
#include "os/memfd.hpp"
#include "os/os.hpp"
#include "os/shared.hpp"
#include "pool/pool_impl.hpp"
#include "shared/client.hpp"
#include "shared/keeper.hpp"
#include "shared/layout.hpp"
#include "shared/memory.hpp"
#include "topology/topology.hpp"

namespace numacma {

std::string run_dir() { return os::env_or("NUMACMA_RUN_DIR", "/run/numacma"); }

namespace shared {
namespace {

std::uint64_t free_hugepages(const std::string& root, int node, std::uint64_t hp) {
  Result<std::string> t = os::read_file(root + "/devices/system/node/node" + std::to_string(node) +
                                        "/hugepages/hugepages-" + std::to_string(hp >> 10) + "kB/free_hugepages");
  if (!t) return 0;
  Result<std::uint64_t> v = topo::parse_u64(*t);
  return v ? *v : 0;
}

/** The kind of memory an area gets: the backing asked for, auto decided per area. */
std::string area_kind(const std::string& backing, const std::string& root, int node, std::uint64_t bytes) {
  if (backing == "hugetlb" || backing == "hugetlb-2M") return "hugetlb-2M";
  if (backing != "auto") return backing;
  const std::uint64_t hp = 2ULL << 20;
  return free_hugepages(root, node, hp) >= (bytes + hp - 1) / hp ? "hugetlb-2M" : "anon";
}

/** The layout as a sealed, read-only memfd. */
Result<os::Fd> layout_file(const std::vector<unsigned char>& img) {
  Result<os::Fd> fd = os::memfd_sealable("numacma-layout");
  if (!fd) return std::move(fd).error();
  if (Status s = os::write_at(fd->get(), img.data(), img.size(), 0); !s) return std::move(s).error();
  if (Status s = os::add_seals(fd->get(), os::kSealWrite | os::kSealShrink | os::kSealGrow | os::kSealSeal); !s)
    return std::move(s).error();
  return fd;
}

/** The state, all zero but each area's core::Area made fresh over it; sealed
 *  against resizing. */
Result<os::Fd> state_file(const Layout& l) {
  const std::uint64_t bytes = l.hdr().state_bytes;
  Result<os::Fd> fd = os::memfd_sealable("numacma-state");
  if (!fd) return std::move(fd).error();
  if (Status s = os::truncate_file(fd->get(), bytes); !s) return std::move(s).error();
  Result<void*> m = os::map_shared(fd->get(), bytes, true);
  if (!m) return std::move(m).error();
  Status made;
  for (std::uint32_t i = 0; i < l.areas() && made; ++i)
    if (Result<core::Area> a = area_over(l, area_parts(l, static_cast<unsigned char*>(*m), i), i, 0, true); !a)
      made = std::move(a).error();
  (void)os::unmap(*m, bytes);
  if (!made) return std::move(made).error();
  if (Status s = os::add_seals(fd->get(), os::kSealShrink | os::kSealGrow | os::kSealSeal); !s)
    return std::move(s).error();
  return fd;
}

}  // namespace
}  // namespace shared

Result<std::vector<ReservationNote>> reserve(std::string_view name, const ReserveOptions& asked) {
  using namespace shared;
  if (Status s = check_pool_name(name); !s) return std::move(s).error();
  const std::string n(name);
  if (asked.backing != "auto" && asked.backing != "hugetlb" && asked.backing != "hugetlb-2M" &&
      asked.backing != "hugetlb-1G" && asked.backing != "anon" && asked.backing != "sim")
    return make_error(Errc::invalid_argument, "unknown backing '" + asked.backing +
                                                  "' (valid: auto, hugetlb, hugetlb-1G, anon, sim)");
  // A fixture is a fixture (backing::backing_for_root): auto means sim there,
  // and the reservation records the backing it really has.
  Result<std::string> kind = backing::backing_for_root(asked.backing, asked.sysfs_root);
  if (!kind) return std::move(kind).error();
  ReserveOptions o = asked;
  o.backing = *kind;
  long gid = -1;
  if (!o.group.empty()) {
    Result<std::uint32_t> g = os::group_id(o.group);
    if (!g) return std::move(g).error();
    gid = static_cast<long>(*g);
  }
  Result<topo::Topology> topology = topo::Topology::from_sysfs(o.sysfs_root);
  if (!topology) return std::move(topology).error();
  PoolOptions po;
  po.params = o.params;
  po.backing = o.backing;
  po.policy = o.policy;
  po.arch = o.arch;
  po.kernel = o.kernel;
  po.cma_size_pernuma = o.cma_size_pernuma;
  po.sysfs_root = o.sysfs_root;
  po.order_per_bit = o.order_per_bit;
  po.device_areas = o.device_areas;
  std::vector<ReservationNote> notes;
  Result<config::ReservationPlan> plan = detail::plan_areas(po, *topology, notes);
  if (!plan) return std::move(plan).error();
  std::unique_ptr<backing::Backing> sim;
  if (o.backing == "sim") sim = backing::make_sim(*topology, {});
  else if (Status s = backing::check_base_page(os::page_size()); !s) return std::move(s).error();

  Result<os::Fd> pools = open_pools_dir(true);
  if (!pools) return std::move(pools).error();
  Result<os::Fd> lock = os::lock_at(pools->get(), ".lock");
  if (!lock) return make_error(lock.error().code, run_dir() + "/pools/.lock: " + lock.error().message);
  if (Result<os::EntryInfo> e = os::stat_at(pools->get(), n); e) {
    const bool keeper = connect_keeper(n, timeout_ms()).ok();
    return make_error(Errc::busy, "a reservation named '" + n + "' exists (" + run_dir() + "/pools/" + n + ")" +
                                      (keeper ? "; numacma release " + n + " first"
                                              : ", but its keeper is not running; numacma release " + n +
                                                    " --force removes it"));
  }

  PoolSpec spec;
  spec.name = n;
  spec.params = o.params;
  spec.backing = o.backing;
  spec.sysfs_root = o.sysfs_root;
  spec.policy = encode_policy(o.policy);
  spec.arch = encode_arch(o.arch);
  spec.order_per_bit = o.order_per_bit;
  spec.created_ns = os::realtime_ns();
  spec.owner_uid = os::self_uid();
  spec.group_gid = static_cast<std::int32_t>(gid);
  spec.node_slots = static_cast<std::uint32_t>(std::max(topology->max_node_id(), 0)) + 2;
  KeeperFiles files;
  std::vector<int> compacted;
  for (const config::PlannedArea& pa : plan->areas) {
    const std::string kind = area_kind(o.backing, o.sysfs_root, pa.node, pa.bytes);
    if (o.compact && kind.rfind("hugetlb", 0) == 0 &&
        std::find(compacted.begin(), compacted.end(), pa.node) == compacted.end()) {
      compacted.push_back(pa.node);
      if (std::string note = backing::compact_node(o.sysfs_root, pa.node); !note.empty())
        notes.push_back({pa.name, pa.node, note});
    }
    const NewArea na{pa.name, pa.node, pa.bytes, pa.phys_base, static_cast<std::uint32_t>(spec.areas.size())};
    Result<AreaMemory> m = create_area_memory(kind, na, sim.get());
    if (!m) {  // R4: the reservation stands without it, as a pool would start
      notes.push_back({pa.name, pa.node, "not reserved: " + m.error().message});
      continue;
    }
    m->spec.kind = encode_area_kind(pa.kind);
    if (!m->spec.note.empty()) notes.push_back({pa.name, pa.node, m->spec.note});
    spec.iova_mode = spec.iova_mode || m->spec.iova;
    spec.areas.push_back(std::move(m->spec));
    files.area_fds.push_back(std::move(m->fd));
  }
  // Nothing reserved is a failure, also when the parameters plan no area at
  // all (cma=0): a reservation without memory would only mislead.
  if (spec.areas.empty() && plan->areas.empty())
    return make_error(Errc::no_memory, "'" + o.params + "' plans no area, so there is nothing to reserve" +
                                           (notes.empty() ? std::string(" (a size of 0 reserves nothing)")
                                                          : ": " + notes.back().message));
  if (spec.areas.empty())
    return make_error(Errc::no_memory, "no area of '" + o.params + "' could be reserved: " +
                                           (notes.empty() ? "" : notes.back().message));
  Result<std::vector<unsigned char>> img = make_layout(spec);
  if (!img) return std::move(img).error();
  Result<Layout> layout = Layout::from(img->data(), img->size());
  if (!layout) return std::move(layout).error();
  Result<os::Fd> lfd = layout_file(*img);
  if (!lfd) return std::move(lfd).error();
  Result<os::Fd> sfd = state_file(*layout);
  if (!sfd) return std::move(sfd).error();

  // The directory last: nothing of a failed reservation is left behind.
  Result<os::Fd> dir = os::open_dir_at(pools->get(), n, true, 0755, gid);
  if (!dir) return make_error(dir.error().code, run_dir() + "/pools/" + n + ": " + dir.error().message);
  files.layout = std::move(*layout);
  files.layout_fd = std::move(*lfd);
  files.state_fd = std::move(*sfd);
  files.pools_dir = std::move(*pools);
  files.pool_dir = std::move(*dir);
  files.name = n;
  files.owner_uid = spec.owner_uid;
  files.group_gid = gid;
  Result<os::Fd> keep_pools = open_pools_dir(false);  // to clean up should the keeper not start
  Result<int> pid = start_keeper(std::move(files), 10000);
  if (!pid) {
    if (keep_pools) (void)os::unlink_at(keep_pools->get(), n, true);
    return make_error(pid.error().code, "reservation '" + n + "': " + pid.error().message);
  }
  return notes;
}

Status release(std::string_view name, bool force) {
  using namespace shared;
  if (Status s = check_pool_name(name); !s) return s;
  const std::string n(name);
  const int timeout = timeout_ms();
  Result<KeeperLink> k = connect_keeper(name, timeout);
  if (k) {
    Result<Answer> a = ask(*k, name, ReqOp::release, force, timeout);
    if (a) {
      await_close(*k, timeout);
      return {};
    }
    if (!force || a.error().code != Errc::busy) return std::move(a).error();
  } else if (!force || k.error().code != Errc::not_found) {
    return std::move(k).error();
  }
  // --force, and no keeper answered (none running, or it is stopped): the
  // pool's directory goes from here; exactly its own entries, nothing else.
  Result<os::Fd> pools = open_pools_dir(false);
  if (!pools) return std::move(pools).error();
  if (!os::stat_at(pools->get(), n))
    return make_error(Errc::not_found, "no reservation named '" + n + "' under " + run_dir() + "/pools");
  Result<os::Fd> dir = os::open_dir_at(pools->get(), n, false);
  if (!dir) return std::move(dir).error();
  if (Status s = os::unlink_at(dir->get(), "sock"); !s) return s;
  if (Status s = os::unlink_at(pools->get(), n, true); !s)
    return make_error(s.error().code, s.error().message + " (entries that numacma did not make are left alone)");
  return {};
}

Result<ReapReport> reap(std::string_view name) {
  using namespace shared;
  const int timeout = timeout_ms();
  Result<KeeperLink> k = connect_keeper(name, timeout);
  if (!k) return std::move(k).error();
  Result<Answer> a = ask(*k, name, ReqOp::reap, false, timeout);
  if (!a) return std::move(a).error();
  const ReapCounts& c = a->reply.reap;
  ReapReport r;
  r.dead_holders = c.dead_holders;
  r.buffers = c.buffers;
  r.pages = c.pages;
  r.recovered_locks = c.recovered_locks;
  r.ns = c.ns;
  return r;
}

Result<std::vector<std::string>> reserved_pools() {
  Result<os::Fd> pools = shared::open_pools_dir(false);
  if (!pools) {
    if (pools.error().code == Errc::not_found) return std::vector<std::string>{};
    return std::move(pools).error();
  }
  Result<std::vector<std::string>> names = os::list_at(pools->get());
  if (!names) return names;
  std::vector<std::string> out;
  for (const std::string& e : *names) {
    Result<os::EntryInfo> i = os::stat_at(pools->get(), e);
    if (shared::check_pool_name(e) && i && i->is_dir) out.push_back(e);
  }
  return out;
}

}  // namespace numacma
