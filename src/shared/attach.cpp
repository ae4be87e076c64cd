// src/shared/attach.cpp — Pool::attach: a Pool over a reservation's memory.
//
//   connect to the keeper (client.hpp) -> Request{attach} -> layout, state and
//   one memory file per area, each checked for its seals and size
//   layout: copied into this process and validated (the only geometry used)
//   state: mapped read-write; each area's core::Area runs over its bitmap and
//          counters there, its lock is the word there, its records are there
//   areas' memory: mapped (hugetlb: in the reservation's physical order)
//   the PoolImpl is built as Pool::create builds one (builder.cpp)
//
// The connection stays open for the Pool's life: when this process goes,
// however it goes, the kernel closes it and the keeper gives its buffers back.
// A child forked afterwards gets its copy of the descriptor closed at once
// (os::close_at_fork), so a child that lives on never keeps a dead parent's
// buffers held.
#include <algorithm>
#include <cstring>

#include "numacma/shared.hpp"
#include "os/memfd.hpp"
#include "os/os.hpp"
#include "os/shared.hpp"
#include "pool/pool_impl.hpp"
#include "shared/client.hpp"
#include "shared/layout.hpp"
#include "shared/memory.hpp"
#include "shared/testing.hpp"

namespace numacma {

namespace shared {
namespace {

class SharedAttachment final : public detail::Attachment {
 public:
  SharedAttachment(std::string name, KeeperLink link, Layout layout, int timeout)
      : name_(std::move(name)), link_(std::move(link)), layout_(std::move(layout)), timeout_(timeout),
        forks_(os::fork_generation()) {
    os::close_at_fork(link_.sock.get());
  }

  ~SharedAttachment() override {
    for (std::size_t i = 0; i < cpu_.size(); ++i) unmap_area_memory(layout_.desc(static_cast<std::uint32_t>(i)), cpu_[i]);
    if (state_ != nullptr) (void)os::unmap(state_, layout_.hdr().state_bytes);
    if (forked()) (void)link_.sock.release();  // closed in the child at fork: the number may be another file's now
    else os::keep_at_fork(link_.sock.get());
  }

  bool forked() const noexcept override { return os::fork_generation() != forks_; }

  bool reap() noexcept override {
    Result<KeeperLink> k = connect_keeper(name_, timeout_);
    if (!k) return false;
    // The keeper answers once it has handled every process it saw go before
    // this request (whose buffers may be what was missing): worth a retry
    // whatever this reap itself found.
    return ask(*k, name_, ReqOp::reap, false, timeout_).ok();
  }

  std::string describe(std::uint32_t id) const override {
    if (id == kKeeperOwner) return "the pool's keeper";
    if (id == 0 || id > layout_.hdr().holder_capacity) return "an unknown owner (id " + std::to_string(id) + ")";
    Holder h;  // a copy: another process may be writing it
    std::memcpy(&h, state_ + layout_.hdr().holders_offset + (id - 1) * sizeof(Holder), sizeof h);
    return "pid " + std::to_string(h.pid) + " (" + field(h.comm, sizeof h.comm) + ")";
  }

  void detach() noexcept override {
    if (forked()) return;  // the parent's attachment: left alone
    (void)ask(link_, name_, ReqOp::detach, false, timeout_);
  }

  /** Maps the state and the areas' memory handed over with the reply. */
  Status map(std::vector<os::Fd>& fds) {
    const LayoutHeader& h = layout_.hdr();
    if (fds.size() != 2 + std::size_t{h.area_count})
      return make_error(Errc::corrupt, "the keeper sent " + std::to_string(fds.size()) + " memory files for " +
                                           std::to_string(h.area_count) + " areas");
    if (Status s = check_sealed(fds[1].get(), h.state_bytes, false, "the pool's state"); !s) return s;
    Result<void*> st = os::map_shared(fds[1].get(), h.state_bytes, true);
    if (!st) return std::move(st).error();
    state_ = static_cast<unsigned char*>(*st);
    for (std::uint32_t i = 0; i < h.area_count; ++i) {
      const AreaDesc& d = layout_.desc(i);
      const std::string what = "area " + field(d.name, sizeof d.name) + "'s memory";
      if (Status s = check_sealed(fds[2 + i].get(), d.mapped_bytes, false, what); !s) return s;
      Result<std::uintptr_t> cpu = map_area_memory(fds[2 + i].get(), d, layout_.hpmap(i));
      if (!cpu) return make_error(cpu.error().code, what + ": " + cpu.error().message);
      cpu_.push_back(*cpu);
    }
    return {};
  }

  const Layout& layout() const noexcept { return layout_; }
  unsigned char* state() const noexcept { return state_; }
  std::uintptr_t cpu(std::uint32_t i) const noexcept { return cpu_[i]; }
  std::uint32_t holder_id() const noexcept { return slot_ + 1; }
  void set_slot(std::uint32_t s) noexcept { slot_ = s; }

 private:
  std::string name_;
  KeeperLink link_;
  Layout layout_;
  int timeout_;
  unsigned forks_;
  std::uint32_t slot_ = 0;
  unsigned char* state_ = nullptr;
  std::vector<std::uintptr_t> cpu_;
};

/** The layout the keeper handed over: sealed against writes, copied, validated. */
Result<Layout> read_layout(int fd) {
  if (Status s = check_sealed(fd, sizeof(LayoutHeader), true, "the pool's layout"); !s) return std::move(s).error();
  Result<std::uint64_t> size = os::fd_size(fd);
  if (!size) return std::move(size).error();
  if (*size > (64ULL << 20)) return make_error(Errc::corrupt, "the pool's layout is larger than 64 MiB");
  Result<void*> m = os::map_shared(fd, static_cast<std::size_t>(*size), false);
  if (!m) return std::move(m).error();
  Result<Layout> l = Layout::from(static_cast<const unsigned char*>(*m), static_cast<std::size_t>(*size));
  (void)os::unmap(*m, static_cast<std::size_t>(*size));
  return l;
}

}  // namespace
const SharedAttachment* attachment_of(const Pool& p) {
  const detail::PoolImpl* impl = detail::impl_of(p);
  return impl == nullptr ? nullptr : dynamic_cast<const SharedAttachment*>(impl->attachment.get());
}

std::pair<unsigned char*, std::size_t> state_for_testing(const Pool& p) {
  const SharedAttachment* a = attachment_of(p);
  if (a == nullptr) return {nullptr, 0};
  return {a->state(), static_cast<std::size_t>(a->layout().hdr().state_bytes)};
}

std::uint32_t* lock_word_for_testing(const Pool& p, std::uint32_t area) {
  const SharedAttachment* a = attachment_of(p);
  if (a == nullptr || area >= a->layout().areas()) return nullptr;
  return &area_parts(a->layout(), a->state(), area).st->lock;
}

core::Records records_for_testing(const Pool& p, std::uint32_t area) {
  const SharedAttachment* a = attachment_of(p);
  if (a == nullptr || area >= a->layout().areas()) return {};
  return area_parts(a->layout(), a->state(), area).rec;
}

int keeper_pid_for_testing(const Pool& p) {
  const SharedAttachment* a = attachment_of(p);
  if (a == nullptr) return 0;
  return static_cast<int>(reinterpret_cast<const PoolState*>(a->state() + a->layout().hdr().pool_offset)->keeper_pid);
}

Status verify_for_testing(const Pool& p) {
  const SharedAttachment* a = attachment_of(p);
  detail::PoolImpl* impl = detail::impl_of(p);
  if (a == nullptr) return make_error(Errc::invalid_argument, "not an attached pool");
  const LayoutHeader& h = a->layout().hdr();
  std::vector<bool> attached(h.holder_capacity);
  for (std::uint32_t s = 0; s < h.holder_capacity; ++s) {
    const auto* hd = reinterpret_cast<const Holder*>(a->state() + h.holders_offset) + s;
    const std::optional<HolderState> st = decode_holder_state(hd->state);  // hostile: unknown = free
    attached[s] = st == HolderState::attached || st == HolderState::dead;
  }
  for (const auto& slot : impl->areas.slots()) {
    if (!impl->lock_area(*slot)) return impl->lock_error(*slot);
    Status s = core::verify(*slot->records, slot->area, attached);
    impl->unlock_area(*slot);
    if (!s) return s;
  }
  return {};
}

}  // namespace shared

Result<Pool> Pool::attach(std::string_view name, const AttachOptions& options) {
  using namespace shared;
  const int timeout = options.timeout_ms >= 0 ? options.timeout_ms : timeout_ms();
  os::watch_forks();
  Result<KeeperLink> link = connect_keeper(name, timeout);
  if (!link) return std::move(link).error();
  Result<Answer> a = ask(*link, name, ReqOp::attach, false, timeout);
  if (!a) return std::move(a).error();
  if (a->fds.size() < 2) return make_error(Errc::corrupt, "the pool's keeper sent no memory files");
  Result<Layout> layout = read_layout(a->fds[0].get());
  if (!layout) return make_error(layout.error().code, "pool '" + std::string(name) + "': " + layout.error().message);
  auto att = std::make_unique<SharedAttachment>(std::string(name), std::move(*link), std::move(*layout), timeout);
  att->set_slot(a->reply.slot);
  if (Status s = att->map(a->fds); !s) return make_error(s.error().code, "pool '" + std::string(name) + "': " + s.error().message);
  a->fds.clear();  // mapped: the mappings keep the files

  SharedAttachment& at = *att;
  const Layout& l = at.layout();
  const LayoutHeader& h = l.hdr();
  auto impl = std::make_shared<detail::PoolImpl>();
  impl->attachment = std::move(att);  // from here on, ~PoolImpl detaches and unmaps
  impl->opts.params = field(h.params, sizeof h.params);
  impl->opts.backing = field(h.backing, sizeof h.backing);
  // The layout was validated (Layout::from): every code below decodes.
  impl->opts.policy = decode_policy(h.policy).value_or(Policy::kernel);
  impl->opts.arch = decode_arch(h.arch).value_or(Arch::host);
  impl->opts.sysfs_root = field(h.sysfs_root, sizeof h.sysfs_root);
  impl->opts.order_per_bit = h.order_per_bit;
  Result<topo::Topology> topology = topo::Topology::from_sysfs(impl->opts.sysfs_root);
  if (!topology) return std::move(topology).error();
  impl->set_topology(std::move(*topology));
  const topo::Topology& t = impl->topology;
  // A3/A7 pages: this process's own, from the backing the pool was reserved with.
  Result<std::unique_ptr<backing::Backing>> b = backing::make_backing(impl->opts.backing, t);
  if (!b) return std::move(b).error();
  impl->backing = std::move(*b);
  unsigned char* state = at.state();
  impl->counters.over(reinterpret_cast<std::uint64_t*>(state + h.nodes_offset), h.node_slots, kCounterStripes,
                      counter_stripe_bytes(h.node_slots) / sizeof(std::uint64_t), at.holder_id() % kCounterStripes);
  impl->holder = at.holder_id();
  impl->lock_timeout_ms = timeout;
  impl->shared_name = std::string(name);
  impl->iova_mode = decode_flag(h.iova_mode).value_or(false);

  for (std::uint32_t i = 0; i < h.area_count; ++i) {
    const AreaDesc& d = l.desc(i);
    const std::string an = field(d.name, sizeof d.name);
    if (d.node > t.max_node_id() || !t.is_online(d.node))
      return make_error(Errc::corrupt, "pool '" + std::string(name) + "': area " + an + " is on node " +
                                           std::to_string(d.node) + ", which this machine does not have online");
    const AreaParts parts = area_parts(l, state, i);
    Result<core::Area> area = area_over(l, parts, i, at.cpu(i), false);
    if (!area) return make_error(Errc::corrupt, "pool '" + std::string(name) + "': " + area.error().message);
    backing::Reservation res;
    res.kind = field(d.kind_name, sizeof d.kind_name);
    res.node = d.node;
    res.cpu_base = at.cpu(i);
    res.bytes = d.pages * d.page_size;
    res.mapped_bytes = d.mapped_bytes;
    res.addr_kind =
        decode_flag(d.addr_iova).value_or(false) ? backing::AddrKind::iova : backing::AddrKind::physical;
    res.segments = area->config().segments;
    res.note = field(d.note, sizeof d.note);
    if (!res.note.empty()) impl->notes.push_back({an, d.node, res.note});
    detail::AreaSlot& slot = impl->add_area(
        std::make_unique<detail::AreaSlot>(std::move(*area), decode_area_kind(d.kind).value_or(config::AreaKind::numa),
                                          std::move(res)));
    slot.lock = &parts.st->lock;
    slot.shared = true;
    slot.records = parts.rec;
  }
  impl->finish();
  return Pool(std::move(impl));
}

}  // namespace numacma
