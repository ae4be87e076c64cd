// src/shared/reserve.cpp — reserve, release, reap, status of a reservation.
//
//   reserve NAME:  flock <run dir>/pools/.lock -> mkdir pools/NAME (0700/0750)
//                  -> plan (R1-R6, as Pool::create) -> each area's file
//                  -> state file written as state.tmp, locks set up, renamed
//                  to state (an attach never sees half a reservation)
//   release NAME:  flock -> refuse while a live holder has buffers (unless
//                  force) -> remove the area files, the state file, the dir
#include <algorithm>
#include <map>
#include <sstream>

#include "backing/hugetlb_file.hpp"
#include "backing/sim.hpp"
#include "os/os.hpp"
#include "os/shared.hpp"
#include "pool/pool_impl.hpp"
#include "shared/memory.hpp"
#include "shared/state.hpp"
#include "topology/topology.hpp"

namespace numacma {

std::string run_dir() { return os::env_or("NUMACMA_RUN_DIR", "/run/numacma"); }

namespace shared {
namespace {

std::string pools_dir() { return run_dir() + "/pools"; }

Result<os::Fd> lock_pools() {
  if (Status s = os::make_dirs(pools_dir()); !s) return std::move(s).error();
  return os::lock_path(pools_dir() + "/.lock", true);
}

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
  if (free_hugepages(root, node, hp) >= (bytes + hp - 1) / hp && os::hugetlbfs_mount(hp)) return "hugetlb-2M";
  return "anon";
}

/** Removes what a reservation made: area files, state, directory. */
void remove_all(const std::string& dir, const std::vector<std::string>& files) {
  for (const std::string& p : files) (void)os::remove_file(p);
  (void)os::remove_file(dir + "/state.tmp");
  (void)os::remove_file(dir + "/state");
  (void)os::remove_dir(dir);
}

std::vector<std::pair<std::uint32_t, std::uint64_t>> pages_by_holder(StateFile& f, std::uint32_t a) {
  std::map<std::uint32_t, std::uint64_t> m;
  const std::uint64_t* recs = f.recs(a);
  for (std::uint64_t b = 0; b < f.desc(a).rec_count; ++b) {
    const Rec r = rec_of(recs[b]);
    if (r.holder != 0) m[r.holder] += r.pages;
  }
  return {m.begin(), m.end()};
}

}  // namespace
}  // namespace shared

Result<std::vector<ReservationNote>> reserve(std::string_view name, const ReserveOptions& o) {
  using namespace shared;
  if (Status s = check_pool_name(name); !s) return std::move(s).error();
  const std::string n(name);
  if (o.backing != "auto" && o.backing != "hugetlb" && o.backing != "hugetlb-2M" && o.backing != "hugetlb-1G" &&
      o.backing != "anon" && o.backing != "sim")
    return make_error(Errc::invalid_argument, "unknown backing '" + o.backing +
                                                  "' (valid: auto, hugetlb, hugetlb-1G, anon, sim)");
  FileAccess access;
  if (!o.group.empty()) {
    Result<std::uint32_t> gid = os::group_id(o.group);
    if (!gid) return std::move(gid).error();
    access.gid = *gid;
    access.mode = 0660;
  }
  Result<topo::Topology> topology = topo::Topology::from_sysfs(o.sysfs_root);
  if (!topology) return std::move(topology).error();
  PoolOptions po;
  po.params = o.params;
  po.backing = o.backing;
  po.policy = o.policy;
  po.arch = o.arch;
  po.sysfs_root = o.sysfs_root;
  po.order_per_bit = o.order_per_bit;
  po.device_areas = o.device_areas;
  std::vector<ReservationNote> notes;
  Result<config::ReservationPlan> plan = detail::plan_areas(po, *topology, notes);
  if (!plan) return std::move(plan).error();
  std::unique_ptr<backing::Backing> sim;
  if (o.backing == "sim") sim = backing::make_sim(*topology, {});
  else if (Status s = backing::check_base_page(os::page_size()); !s) return std::move(s).error();

  Result<os::Fd> lock = lock_pools();
  if (!lock) return std::move(lock).error();
  const std::string dir = pool_dir(n);
  if (os::exists(dir))
    return make_error(Errc::busy, "a reservation named '" + n + "' exists (" + dir + "); numacma release " + n +
                                      " first");
  if (Status s = os::make_dir(dir, access.gid >= 0 ? 0750 : 0700, access.gid); !s) return std::move(s).error();

  PoolSpec spec;
  spec.name = n;
  spec.params = o.params;
  spec.backing = o.backing;
  spec.sysfs_root = o.sysfs_root;
  spec.policy = o.policy == Policy::nearest ? 1 : 0;
  spec.arch = static_cast<std::uint32_t>(o.arch);
  spec.order_per_bit = o.order_per_bit;
  spec.created_ns = os::realtime_ns();
  spec.node_slots = static_cast<std::uint32_t>(std::max(topology->max_node_id(), 0)) + 2;
  std::vector<std::string> files;
  std::vector<int> compacted;
  for (const config::PlannedArea& pa : plan->areas) {
    const std::string kind = area_kind(o.backing, o.sysfs_root, pa.node, pa.bytes);
    if (o.compact && kind.rfind("hugetlb", 0) == 0 &&
        std::find(compacted.begin(), compacted.end(), pa.node) == compacted.end()) {
      compacted.push_back(pa.node);
      if (std::string note = backing::compact_node(o.sysfs_root, pa.node); !note.empty())
        notes.push_back({pa.name, pa.node, note});
    }
    NewArea na{pa.name, pa.node, pa.bytes, pa.phys_base, static_cast<std::uint32_t>(spec.areas.size())};
    Result<AreaSpec> a = create_area_memory(kind, na, n, dir, access, sim.get());
    if (!a) {  // R4: the reservation stands without it, as a pool would start
      notes.push_back({pa.name, pa.node, "not reserved: " + a.error().message});
      continue;
    }
    a->kind = static_cast<std::uint32_t>(pa.kind);
    files.push_back(a->path);
    if (!a->note.empty()) notes.push_back({pa.name, pa.node, a->note});
    spec.iova_mode = spec.iova_mode || a->iova;
    spec.areas.push_back(std::move(*a));
  }
  const auto fail = [&](Error e) -> Result<std::vector<ReservationNote>> {
    remove_all(dir, files);
    return e;
  };
  if (spec.areas.empty() && !plan->areas.empty())
    return fail(make_error(Errc::no_memory, "no area of '" + o.params + "' could be reserved: " +
                                                (notes.empty() ? "" : notes.back().message)));
  Result<std::vector<unsigned char>> img = make_image(spec);
  if (!img) return fail(std::move(img).error());
  {
    Result<os::Fd> fd = os::create_exclusive(dir + "/state.tmp", access.mode, access.gid);
    if (!fd) return fail(std::move(fd).error());
    if (Status s = os::write_at(fd->get(), img->data(), img->size(), 0); !s) return fail(std::move(s).error());
    if (Status s = os::sync_fd(fd->get()); !s) return fail(std::move(s).error());
  }
  {
    Result<std::shared_ptr<StateFile>> f = StateFile::open(dir + "/state.tmp");
    if (!f) return fail(std::move(f).error());
    if (Status s = init_locks(**f); !s) return fail(std::move(s).error());
  }
  if (Status s = os::rename_path(dir + "/state.tmp", dir + "/state"); !s) return fail(std::move(s).error());
  return notes;
}

Status release(std::string_view name, bool force) {
  using namespace shared;
  if (Status s = check_pool_name(name); !s) return s;
  const std::string n(name), dir = pool_dir(name);
  Result<os::Fd> lock = lock_pools();
  if (!lock) return std::move(lock).error();
  if (!os::exists(dir))
    return make_error(Errc::not_found, "no reservation named '" + n + "' under " + run_dir() + "/pools");
  Result<std::shared_ptr<StateFile>> f = StateFile::open(dir + "/state");
  std::vector<std::string> files;
  if (f) {
    StateFile& sf = **f;
    // Who holds buffers: every live holder with a record in some area.
    std::map<std::uint32_t, std::uint64_t> held;
    for (std::uint32_t a = 0; a < sf.areas(); ++a) {
      AreaLock lk(sf, a);
      if (!lk && !force) return lk.error();
      for (const auto& [h, pages] : pages_by_holder(sf, a)) held[h] += pages;
    }
    std::string live;
    for (const auto& [h, pages] : held) {
      const Holder& hd = sf.holders()[h - 1];
      if (os::process_alive(hd.pid, hd.start_time))
        live += (live.empty() ? "" : ", ") + std::string("pid ") + std::to_string(hd.pid) + " (" +
                field(hd.comm, sizeof hd.comm) + ", " + std::to_string(pages) + " pages)";
    }
    if (!live.empty() && !force)
      return make_error(Errc::busy, "reservation '" + n + "' is in use: " + live +
                                        " hold buffers; stop them or use --force");
    for (std::uint32_t a = 0; a < sf.areas(); ++a) files.push_back(field(sf.desc(a).path, sizeof sf.desc(a).path));
  } else if (!force) {
    return make_error(f.error().code, f.error().message + " (numacma release " + n +
                                          " --force removes what is there)");
  } else if (Result<std::vector<std::string>> names = os::list_dir(dir); names) {
    for (const std::string& e : *names) files.push_back(dir + "/" + e);
    // A damaged state file cannot say where its hugetlb and anon files are:
    // numacma.NAME.* on the hugetlbfs mounts and in /dev/shm go too.
    std::vector<std::string> dirs = {kShmDir};
    for (std::uint64_t hp : {2ULL << 20, 1ULL << 30})
      if (Result<std::string> m = os::hugetlbfs_mount(hp); m) dirs.push_back(*m);
    for (const std::string& d : dirs)
      if (Result<std::vector<std::string>> hs = os::list_dir(d); hs)
        for (const std::string& e : *hs)
          if (e.rfind("numacma." + n + ".", 0) == 0) files.push_back(d + "/" + e);
  }
  remove_all(dir, files);
  if (os::exists(dir)) return make_error(Errc::io_error, "could not remove " + dir);
  return {};
}

Result<ReapReport> reap(std::string_view name) {
  Result<std::shared_ptr<shared::StateFile>> f = shared::open_reservation(name);
  if (!f) return std::move(f).error();
  return shared::reap_dead(**f);
}

Result<std::vector<std::string>> reserved_pools() {
  const std::string dir = run_dir() + "/pools";
  if (!os::exists(dir)) return std::vector<std::string>{};
  Result<std::vector<std::string>> names = os::list_dir(dir);
  if (!names) return names;
  std::vector<std::string> out;
  for (const std::string& e : *names)
    if (shared::check_pool_name(e) && os::exists(dir + "/" + e + "/state")) out.push_back(e);
  return out;
}

Result<PoolStatus> status(std::string_view name) {
  using namespace shared;
  Result<std::shared_ptr<StateFile>> opened = open_reservation(name);
  if (!opened) return std::move(opened).error();
  StateFile& f = **opened;
  const FileHeader& h = f.hdr();
  PoolStatus ps;
  ps.name = std::string(name);
  ps.dir = pool_dir(name);
  ps.params = field(h.params, sizeof h.params);
  ps.backing = field(h.backing, sizeof h.backing);
  ps.policy = h.policy == 1 ? "nearest" : "kernel";
  if (Result<os::FileInfo> fi = os::path_info(f.path()); fi) {
    ps.uid = fi->uid;
    ps.gid = fi->gid;
    ps.mode = fi->mode;
  }
  // Holders first (a snapshot), so that runs can point at them.
  std::map<std::uint32_t, int> index;  // slot + 1 -> holders[]
  {
    Result<PoolLock> pl = PoolLock::acquire(f);
    if (!pl) return std::move(pl).error();
    for (std::uint32_t s = 0; s < h.holder_capacity; ++s) {
      const Holder& hd = f.holders()[s];
      if (hd.state != static_cast<std::uint32_t>(HolderState::attached)) continue;
      HolderStatus hs;
      hs.pid = hd.pid;
      hs.start_time = hd.start_time;
      hs.comm = field(hd.comm, sizeof hd.comm);
      hs.alive = os::process_alive(hd.pid, hd.start_time);
      index[s + 1] = static_cast<int>(ps.holders.size());
      ps.holders.push_back(std::move(hs));
    }
  }
  for (std::uint32_t a = 0; a < f.areas(); ++a) {
    const AreaDesc& d = f.desc(a);
    Result<core::Area> mirror = core::Area::create(area_config(f.base(), a));
    if (!mirror) return make_error(Errc::corrupt, f.path() + ": " + mirror.error().message);
    SharedAreaStatus s;
    {
      AreaLock lk(f, a);
      if (!lk) return lk.error();
      Mirror m;
      if (Status st = sync(f, a, m, *mirror); !st) return std::move(st).error();
      const AreaState& st = f.state(a);
      s.area = detail::area_report(*mirror, shared_stats(f, a, *mirror), static_cast<config::AreaKind>(d.kind),
                                   field(d.kind_name, sizeof d.kind_name), d.addr_iova != 0,
                                   field(d.note, sizeof d.note));
      s.longest_segment = s.area.longest_segment;
      s.recoveries = st.recoveries;
      s.reaped_pages = st.reaped_pages;
      const std::uint64_t* recs = f.recs(a);
      for (std::uint64_t b = 0; b < d.rec_count; ++b) {
        const Rec rc = rec_of(recs[b]);
        if (rc.holder == 0) continue;
        auto it = index.find(rc.holder);
        s.runs.push_back({b << d.order_per_bit, rc.pages, it == index.end() ? -1 : it->second});
      }
    }
    for (const SharedRun& run : s.runs) {
      if (run.holder < 0) continue;
      HolderStatus& hs = ps.holders[static_cast<std::size_t>(run.holder)];
      ++hs.buffers;
      if (hs.pages.empty() || hs.pages.back().first != s.area.name) hs.pages.push_back({s.area.name, 0});
      hs.pages.back().second += run.pages;
    }
    ps.areas.push_back(std::move(s));
  }
  const std::string root = field(h.sysfs_root, sizeof h.sysfs_root);
  for (std::uint32_t slot = 0; slot < h.node_slots; ++slot) {
    const NodeCtr& c = f.nodes()[slot];
    SharedNodeStatus n;
    n.alloc.node = static_cast<int>(slot) - 1;
    n.alloc.local = c.local;
    n.alloc.other_node = c.other_node;
    n.alloc.default_area = c.default_area;
    n.alloc.pages = c.pages;
    n.alloc.failed = c.failed;
    const std::string nd = root + "/devices/system/node/node" + std::to_string(n.alloc.node);
    if (n.alloc.node < 0) {
      if (c.local + c.other_node + c.default_area + c.pages + c.failed == 0) continue;
    } else if (!os::exists(nd)) {
      continue;
    }
    if (n.alloc.node >= 0) {
      if (Result<std::string> t = os::read_file(nd + "/numastat"); t) {
        std::istringstream in(*t);
        std::string key;
        std::int64_t v;
        while (in >> key >> v) {
          if (key == "numa_hit") n.numa_hit = v;
          else if (key == "numa_miss") n.numa_miss = v;
          else if (key == "numa_foreign") n.numa_foreign = v;
          else if (key == "local_node") n.local_node = v;
          else if (key == "other_node") n.other_node = v;
        }
      }
      const std::string hp = nd + "/hugepages/hugepages-2048kB/";
      if (Result<std::string> t = os::read_file(hp + "nr_hugepages"); t)
        if (Result<std::uint64_t> v = topo::parse_u64(*t); v) n.hugepages_total = static_cast<std::int64_t>(*v);
      if (Result<std::string> t = os::read_file(hp + "free_hugepages"); t)
        if (Result<std::uint64_t> v = topo::parse_u64(*t); v) n.hugepages_free = static_cast<std::int64_t>(*v);
    }
    ps.nodes.push_back(n);
  }
  return ps;
}

}  // namespace numacma
