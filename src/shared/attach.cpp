// src/shared/attach.cpp — Pool::attach: a Pool over a reservation's areas.
//
//   state file --validate--> holder slot (pid, start time) --> each area:
//     map its file (hugetlb: in the reservation's physical order)
//     core::Area over this mapping = the mirror; SharedArea routes alloc and
//     release through the area's robust lock and the records
//   page fallback (A3, A7) stays this process's own, as in a private pool.
#include <algorithm>
#include <atomic>

#include "backing/sim.hpp"
#include "os/os.hpp"
#include "os/shared.hpp"
#include "pool/pool_impl.hpp"
#include "shared/memory.hpp"
#include "shared/state.hpp"

namespace numacma {

namespace shared {
namespace {

class SharedArea final : public detail::SharedAreaOps {
 public:
  SharedArea(std::shared_ptr<StateFile> f, std::uint32_t i, std::uint32_t holder, std::uintptr_t cpu)
      : f_(std::move(f)), i_(i), holder_(holder), cpu_(cpu) {}
  ~SharedArea() override { unmap_area_memory(f_->desc(i_), cpu_); }

  Result<core::Block> alloc(core::Area& mirror, std::uint64_t count, unsigned align,
                            std::uint64_t limit) override {
    AreaLock lk(*f_, i_);
    if (!lk) return lk.error();
    if (Status s = sync(*f_, i_, m_, mirror); !s) return std::move(s).error();
    const std::uint64_t failed = mirror.alloc_pages_fail();
    Result<core::Block> b = mirror.alloc(count, align, limit);
    if (!b) {
      if (mirror.alloc_pages_fail() != failed) f_->state(i_).alloc_pages_fail += count;
      return b;
    }
    commit_alloc(*f_, i_, m_, b->first_page, count, holder_);
    return b;
  }

  Status release(core::Area& mirror, std::uint64_t first_page, std::uint64_t count) override {
    AreaLock lk(*f_, i_);
    if (!lk) return lk.error();
    if (Status s = sync(*f_, i_, m_, mirror); !s) return s;
    const AreaDesc& d = f_->desc(i_);
    // Built only on an error path: the success path allocates no string.
    const auto where = [&] { return "area '" + mirror.name() + "': page " + std::to_string(first_page); };
    const unsigned opb = d.order_per_bit;
    const std::uint64_t bit = first_page >> opb;
    const Rec r = (bit << opb) == first_page && first_page < d.pages ? rec_of(f_->recs(i_)[bit]) : Rec{0, 0};
    if (r.holder == 0)
      return make_error(Errc::bad_free, where() + ": no live buffer starts there (double free or foreign address)");
    if (r.holder != holder_) {
      const Holder& h = f_->holders()[r.holder - 1];
      return make_error(Errc::bad_free, where() + ": the buffer is held by pid " + std::to_string(h.pid) + " (" +
                                            field(h.comm, sizeof h.comm) +
                                            "), not by this attachment; only its holder frees it");
    }
    if (r.pages != count)
      return make_error(Errc::bad_free, where() + ": size mismatch: allocated " + std::to_string(r.pages) +
                                            " pages, freed " + std::to_string(count));
    if (Status s = mirror.release(first_page, count); !s) return s;
    commit_release(*f_, i_, &m_, bit, false);
    return {};
  }

  Result<core::AreaStats> stats(core::Area& mirror) override {
    AreaLock lk(*f_, i_);
    if (!lk) return lk.error();
    if (Status s = sync(*f_, i_, m_, mirror); !s) return std::move(s).error();
    return shared_stats(*f_, i_, mirror);
  }

  Result<std::string> dump_bitmap(core::Area& mirror) override {
    AreaLock lk(*f_, i_);
    if (!lk) return lk.error();
    if (Status s = sync(*f_, i_, m_, mirror); !s) return std::move(s).error();
    return mirror.dump_bitmap();
  }

 private:
  std::shared_ptr<StateFile> f_;
  std::uint32_t i_;
  std::uint32_t holder_;  ///< slot + 1, as records name it
  std::uintptr_t cpu_;
  Mirror m_;
};

class SharedPool final : public detail::SharedPoolOps {
 public:
  SharedPool(std::shared_ptr<StateFile> f, std::uint32_t slot)
      : f_(std::move(f)), slot_(slot), forks_(os::fork_generation()) {}

  bool reap_dead() noexcept override {
    Result<ReapReport> r = shared::reap_dead(*f_);
    return r && r->buffers > 0;
  }

  bool forked() const noexcept override { return os::fork_generation() != forks_; }

  /** In a forked child the slot is the parent's: left alone. */
  void detach() noexcept override {
    if (!forked()) (void)unregister_holder(*f_, slot_);
  }

 private:
  std::shared_ptr<StateFile> f_;
  std::uint32_t slot_;
  unsigned forks_;
};

}  // namespace

Result<std::shared_ptr<StateFile>> open_reservation(std::string_view name) {
  if (Status s = check_pool_name(name); !s) return std::move(s).error();
  Result<std::shared_ptr<StateFile>> f = StateFile::open(state_path(name));
  if (!f && f.error().code == Errc::not_found)
    return make_error(Errc::not_found, "no reservation named '" + std::string(name) + "' under " + run_dir() +
                                           "/pools (numacma reserve " + std::string(name) + " PARAMS...)");
  return f;
}

}  // namespace shared

Result<Pool> Pool::attach(std::string_view name) {
  using namespace shared;
  Result<std::shared_ptr<StateFile>> opened = open_reservation(name);
  if (!opened) return std::move(opened).error();
  std::shared_ptr<StateFile> f = std::move(*opened);
  const FileHeader& h = f->hdr();

  auto impl = std::make_shared<detail::PoolImpl>();
  impl->opts.params = field(h.params, sizeof h.params);
  impl->opts.backing = field(h.backing, sizeof h.backing);
  impl->opts.policy = h.policy == 1 ? Policy::nearest : Policy::kernel;
  impl->opts.arch = static_cast<Arch>(h.arch);
  impl->opts.sysfs_root = field(h.sysfs_root, sizeof h.sysfs_root);
  impl->opts.order_per_bit = h.order_per_bit;
  Result<topo::Topology> topology = topo::Topology::from_sysfs(impl->opts.sysfs_root);
  if (!topology) return std::move(topology).error();
  impl->topology = std::move(*topology);
  const topo::Topology& t = impl->topology;
  impl->map_cpus();
  // A3/A7 pages: this process's own, from the backing the pool was reserved with.
  const std::string& kind = impl->opts.backing;
  Result<std::unique_ptr<backing::Backing>> b = backing::make_backing(kind == "sim" ? "sim" : kind, t);
  if (!b) return std::move(b).error();
  impl->backing = std::move(*b);

  impl->size_node_tables();

  os::watch_forks();
  Result<std::uint32_t> slot = register_holder(*f);
  if (!slot) return std::move(slot).error();
  impl->shared_name = std::string(name);
  impl->shared_pool = std::make_unique<SharedPool>(f, *slot);  // from here, ~PoolImpl detaches
  static_assert(sizeof(NodeCtr) == 5 * sizeof(std::uint64_t));
  impl->shared_counts = reinterpret_cast<std::uint64_t*>(f->nodes());
  impl->shared_count_slots = h.node_slots;

  for (std::uint32_t i = 0; i < f->areas(); ++i) {
    const AreaDesc& d = f->desc(i);
    const std::string an = field(d.name, sizeof d.name);
    if (d.node < 0 || d.node > t.max_node_id() || !t.is_online(d.node))
      return make_error(Errc::corrupt, f->path() + ": area " + an + " is on node " + std::to_string(d.node) +
                                           ", which this machine does not have online");
    const auto* map = at<std::uint32_t>(f->base(), d.hpmap_offset);
    Result<std::uintptr_t> cpu =
        map_area_memory(d, std::vector<std::uint32_t>(map, map + d.hpmap_count));
    if (!cpu) return make_error(cpu.error().code, "area " + an + ": " + cpu.error().message);
    core::AreaConfig cfg = area_config(f->base(), i);
    cfg.cpu_base = *cpu;
    cfg.max_align_order = detail::kCmaAlignment;
    Result<core::Area> area = core::Area::create(cfg);
    if (!area) {
      unmap_area_memory(d, *cpu);
      return make_error(Errc::corrupt, f->path() + ": " + area.error().message);
    }
    backing::Reservation res;
    res.kind = field(d.kind_name, sizeof d.kind_name);
    res.node = d.node;
    res.cpu_base = *cpu;
    res.bytes = d.pages * d.page_size;
    res.mapped_bytes = d.mapped_bytes;
    res.addr_kind = d.addr_iova ? backing::AddrKind::iova : backing::AddrKind::physical;
    res.segments = cfg.segments;
    res.note = field(d.note, sizeof d.note);
    if (!res.note.empty()) impl->notes.push_back({an, d.node, res.note});
    detail::AreaSlot& added = impl->add_area(
        std::make_unique<detail::AreaSlot>(std::move(*area), static_cast<config::AreaKind>(d.kind), std::move(res)));
    added.shared = std::make_unique<SharedArea>(f, i, *slot + 1, *cpu);
  }
  impl->index_by_cpu();
  impl->iova_mode = h.iova_mode != 0;

  // Buffers of processes that died go back now (an attach is one of the times).
  if (Result<ReapReport> r = reap_dead(*f); !r) return std::move(r).error();
  return Pool(std::move(impl));
}

}  // namespace numacma
