// src/shared/status.cpp — numacma::status: what a reservation holds now, read
// without taking a lock and without write access.
//
//   Request{status} -> the layout and the state, both read-only descriptors
//   the state is copied at once into this process (a snapshot: an update in
//   flight may show half done), then read as hostile input: the holder
//   table's strings bounded, each area rebuilt from its records into a
//   private core::Area (a record that does not fit is left out), every index
//   checked. Nothing in the copy is written back.
#include <cstring>
#include <map>
#include <sstream>

#include "numacma/shared.hpp"
#include "os/memfd.hpp"
#include "os/os.hpp"
#include "pool/pool_impl.hpp"
#include "shared/client.hpp"
#include "shared/layout.hpp"
#include "shared/memory.hpp"
#include "shared/status.hpp"
#include "topology/topology.hpp"

namespace numacma {

namespace shared {
namespace {

/** The mapped file, copied. */
Result<std::vector<unsigned char>> copy_of(int fd, std::uint64_t bytes) {
  Result<void*> m = os::map_shared(fd, static_cast<std::size_t>(bytes), false);
  if (!m) return std::move(m).error();
  const auto* p = static_cast<const unsigned char*>(*m);
  std::vector<unsigned char> out(p, p + bytes);
  (void)os::unmap(*m, static_cast<std::size_t>(bytes));
  return out;
}

void node_facts(const std::string& root, SharedNodeStatus& n) {
  const std::string nd = root + "/devices/system/node/node" + std::to_string(n.alloc.node);
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

}  // namespace

Result<PoolStatus> read_status(std::string_view name, const Layout& l, std::vector<unsigned char> state) {
  const LayoutHeader& h = l.hdr();
  if (state.size() != h.state_bytes) return make_error(Errc::corrupt, "the pool's state has the wrong size");
  PoolStatus ps;
  ps.name = std::string(name);
  ps.dir = run_dir() + "/pools/" + ps.name;
  ps.params = field(h.params, sizeof h.params);
  ps.backing = field(h.backing, sizeof h.backing);
  ps.policy = decode_policy(h.policy) == Policy::nearest ? "nearest" : "kernel";
  ps.sysfs_root = field(h.sysfs_root, sizeof h.sysfs_root);
  ps.uid = h.owner_uid;
  ps.gid = h.group_gid >= 0 ? static_cast<std::uint32_t>(h.group_gid) : 0;
  ps.mode = h.group_gid >= 0 ? 0660 : 0600;
  unsigned char* st = state.data();
  PoolState pst;
  std::memcpy(&pst, st + h.pool_offset, sizeof pst);
  ps.keeper_pid = static_cast<int>(pst.keeper_pid);
  ps.attaches = pst.attaches;
  ps.reaped_holders = pst.reaped_holders;
  ps.last_reap_ns = pst.last_reap_ns;
  // Holders first, so that runs can point at them.
  std::map<std::uint32_t, int> index;  // slot + 1 -> holders[]
  for (std::uint32_t s = 0; s < h.holder_capacity; ++s) {
    Holder hd;
    std::memcpy(&hd, st + h.holders_offset + s * sizeof(Holder), sizeof hd);
    const std::optional<HolderState> hstate = decode_holder_state(hd.state);  // hostile: unknown = free
    if (hstate != HolderState::attached && hstate != HolderState::dead) continue;
    HolderStatus hs;
    hs.pid = hd.pid;
    hs.comm = field(hd.comm, sizeof hd.comm);
    hs.alive = hstate == HolderState::attached;
    hs.attached_ns = hd.attached_ns;
    index[s + 1] = static_cast<int>(ps.holders.size());
    ps.holders.push_back(std::move(hs));
  }
  for (std::uint32_t a = 0; a < l.areas(); ++a) {
    const AreaDesc& d = l.desc(a);
    AreaParts parts = area_parts(l, st, a);
    const core::AreaCounters counted = parts.st->ctr;
    Result<core::Area> area = area_over(l, parts, a, 0, true);  // over the copy: rebuilt from the records
    if (!area) return make_error(Errc::corrupt, area.error().message);
    core::rebuild(parts.rec, *area);
    area->counters().alloc_pages_success = counted.alloc_pages_success;
    area->counters().alloc_pages_fail = counted.alloc_pages_fail;
    area->counters().release_pages_success = counted.release_pages_success;
    SharedAreaStatus s;
    const bool iova = decode_flag(d.addr_iova).value_or(false);  // validated layout: decodes
    s.area = detail::area_report(*area, area->stats(), decode_area_kind(d.kind).value_or(config::AreaKind::numa),
                                 field(d.kind_name, sizeof d.kind_name), iova, field(d.note, sizeof d.note));
    s.area.device_usable = !iova && s.area.backing != "sim";  // a reservation has no VFIO container
    s.longest_segment = s.area.longest_segment;
    s.recoveries = parts.st->rs.recoveries;
    s.reaped_pages = parts.st->rs.reaped_pages;
    for (std::uint64_t b = 0; b < parts.rec.count; ++b) {
      const core::Rec rc = core::rec_of(parts.rec.words[b]);
      if (rc.holder == 0) continue;
      auto it = index.find(rc.holder);
      s.runs.push_back({b << d.order_per_bit, rc.pages, it == index.end() ? -1 : it->second});
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
  const std::string& root = ps.sysfs_root;  // the reservation's tree, not the caller's
  for (std::uint32_t slot = 0; slot < h.node_slots; ++slot) {
    const NodeCtr c = node_counters(st, h, slot);
    SharedNodeStatus n;
    n.alloc.node = static_cast<int>(slot) - 1;
    n.alloc.local = c.local;
    n.alloc.other_node = c.other_node;
    n.alloc.default_area = c.default_area;
    n.alloc.pages = c.pages;
    n.alloc.failed = c.failed;
    if (n.alloc.node < 0) {
      if (c.local + c.other_node + c.default_area + c.pages + c.failed == 0) continue;
    } else if (!os::exists(root + "/devices/system/node/node" + std::to_string(n.alloc.node))) {
      continue;
    } else {
      node_facts(root, n);
    }
    ps.nodes.push_back(n);
  }
  return ps;
}

}  // namespace shared

Result<PoolStatus> status(std::string_view name) {
  using namespace shared;
  const int timeout = timeout_ms();
  Result<KeeperLink> k = connect_keeper(name, timeout);
  if (!k) return std::move(k).error();
  Result<Answer> a = ask(*k, name, ReqOp::status, false, timeout);
  if (!a) return std::move(a).error();
  if (a->fds.size() != 2) return make_error(Errc::corrupt, "the pool's keeper sent no state");
  Result<std::uint64_t> lsize = os::fd_size(a->fds[0].get());
  if (!lsize) return std::move(lsize).error();
  if (Status s = check_sealed(a->fds[0].get(), sizeof(LayoutHeader), true, "the pool's layout"); !s)
    return std::move(s).error();
  if (*lsize > (64ULL << 20)) return make_error(Errc::corrupt, "the pool's layout is larger than 64 MiB");
  Result<std::vector<unsigned char>> lbytes = copy_of(a->fds[0].get(), *lsize);
  if (!lbytes) return std::move(lbytes).error();
  Result<Layout> l = Layout::from(lbytes->data(), lbytes->size());
  if (!l) return make_error(l.error().code, "pool '" + std::string(name) + "': " + l.error().message);
  if (Status s = check_sealed(a->fds[1].get(), l->hdr().state_bytes, false, "the pool's state"); !s)
    return std::move(s).error();
  Result<std::vector<unsigned char>> state = copy_of(a->fds[1].get(), l->hdr().state_bytes);
  if (!state) return std::move(state).error();
  return read_status(name, *l, std::move(*state));
}

}  // namespace numacma
