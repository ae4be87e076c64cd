// src/shared/keeper_core.cpp — see keeper_core.hpp.
#include "shared/keeper_core.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <map>

#include "sync/word_lock.hpp"

namespace numacma::shared {

namespace {

std::uint64_t now_ns() {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
          .count());
}

}  // namespace

Result<KeeperCore> KeeperCore::create(const Layout& layout, unsigned char* state) {
  KeeperCore k(layout, state);
  for (std::uint32_t i = 0; i < layout.areas(); ++i) {
    k.parts_.push_back(area_parts(layout, state, i));
    Result<core::Area> a = area_over(layout, k.parts_.back(), i, 0, false);
    if (!a) return make_error(Errc::corrupt, "area " + std::to_string(i) + ": " + a.error().message);
    k.areas_.push_back(std::move(*a));
  }
  const std::uint32_t n = layout.hdr().holder_capacity;
  k.slots_.assign(n, Slot::free);
  k.pids_.assign(n, 0);
  k.comms_.assign(n, "");
  k.uids_.assign(n, 0);
  k.since_.assign(n, 0);
  k.died_.assign(n, false);
  k.todo_.assign(n, std::vector<bool>());
  return k;
}

void KeeperCore::write_holder(std::uint32_t s) noexcept {
  auto* h = reinterpret_cast<Holder*>(state_ + layout_->hdr().holders_offset) + s;
  h->pid = pids_[s];
  h->uid = uids_[s];
  std::memset(h->comm, 0, sizeof h->comm);
  std::memcpy(h->comm, comms_[s].data(), std::min(comms_[s].size(), sizeof h->comm - 1));
  h->attached_ns = since_[s];
  const HolderState st = slots_[s] == Slot::attached ? HolderState::attached
                         : slots_[s] == Slot::gone   ? HolderState::dead
                                                     : HolderState::free;
  std::atomic_ref<std::uint32_t>(h->state).store(encode_holder_state(st), std::memory_order_release);
}

Result<std::uint32_t> KeeperCore::admit(int pid, std::uint32_t uid, const std::string& comm, std::uint64_t now) {
  for (std::uint32_t s = 0; s < slots_.size(); ++s) {
    if (slots_[s] != Slot::free) continue;
    slots_[s] = Slot::attached;
    pids_[s] = pid;
    uids_[s] = uid;
    comms_[s] = comm.substr(0, 15);
    since_[s] = now;
    write_holder(s);
    ++reinterpret_cast<PoolState*>(state_ + layout_->hdr().pool_offset)->attaches;
    return s;
  }
  return make_error(Errc::busy, "every one of the pool's " + std::to_string(slots_.size()) +
                                    " holder slots is taken by a live process");
}

bool KeeperCore::lock_area(std::uint32_t a, std::int64_t wait_ms, ReapCounts& rep) noexcept {
  AreaParts& v = parts_[a];
  std::uint32_t* w = &v.st->lock;
  const std::uint32_t o = sync::owner(w);
  // An owner that is not an attached holder is dead (its slot is gone or
  // free) or forged: nobody will unlock it, so the keeper takes it over.
  const bool orphan = o != 0 && (o == kKeeperOwner || o > slots_.size() || slots_[o - 1] != Slot::attached);
  if (orphan && sync::take_over(w, o, kKeeperOwner)) {
    core::repair(v.rec, areas_[a]);
    ++rep.recovered_locks;
    return true;
  }
  if (!sync::lock(w, kKeeperOwner, wait_ms, true)) return false;
  if (v.st->rs.journal.pending != 0) {  // only a process writing the state by hand leaves one
    core::repair(v.rec, areas_[a]);
    ++rep.recovered_locks;
  }
  return true;
}

void KeeperCore::unlock_area(std::uint32_t a) noexcept { sync::unlock(&parts_[a].st->lock, true); }

void KeeperCore::give_back(std::uint32_t s, std::int64_t wait_ms, ReapCounts& rep) {
  bool done = true;
  for (std::uint32_t a = 0; a < areas_.size(); ++a) {
    if (!todo_[s][a]) continue;
    if (!lock_area(a, wait_ms, rep)) {
      done = false;
      continue;
    }
    const core::Released r = core::release_holder(parts_[a].rec, areas_[a], s + 1);
    unlock_area(a);
    rep.buffers += r.buffers;
    rep.pages += r.pages;
    todo_[s][a] = false;
  }
  if (!done) return;
  if (died_[s]) {
    ++rep.dead_holders;
    ++reinterpret_cast<PoolState*>(state_ + layout_->hdr().pool_offset)->reaped_holders;
  }
  slots_[s] = Slot::free;
  pids_[s] = 0;
  comms_[s].clear();
  write_holder(s);
}

ReapCounts KeeperCore::gone(std::uint32_t s, bool died, std::int64_t wait_ms) {
  ReapCounts rep;
  if (s >= slots_.size() || slots_[s] != Slot::attached) return rep;
  const std::uint64_t t0 = now_ns();
  slots_[s] = Slot::gone;
  died_[s] = died;
  todo_[s].assign(areas_.size(), true);
  write_holder(s);
  give_back(s, wait_ms, rep);
  rep.ns = now_ns() - t0;
  if (slots_[s] == Slot::free)
    reinterpret_cast<PoolState*>(state_ + layout_->hdr().pool_offset)->last_reap_ns = rep.ns;
  return rep;
}

ReapCounts KeeperCore::reap(std::int64_t wait_ms) {
  ReapCounts rep;
  const std::uint64_t t0 = now_ns();
  for (std::uint32_t s = 0; s < slots_.size(); ++s)
    if (slots_[s] == Slot::gone) give_back(s, wait_ms, rep);
  // Locks whose owner is no attached holder, and updates left pending.
  for (std::uint32_t a = 0; a < areas_.size(); ++a) {
    const std::uint32_t o = sync::owner(&parts_[a].st->lock);
    const bool orphan = o != 0 && (o == kKeeperOwner || o > slots_.size() || slots_[o - 1] != Slot::attached);
    if (!orphan && (o != 0 || parts_[a].st->rs.journal.pending == 0)) continue;
    if (lock_area(a, 0, rep)) unlock_area(a);
  }
  rep.ns = now_ns() - t0;
  return rep;
}

bool KeeperCore::pending() const noexcept {
  return std::any_of(slots_.begin(), slots_.end(), [](Slot s) { return s == Slot::gone; });
}

std::vector<KeeperCore::Holding> KeeperCore::holders_with_buffers() const {
  std::map<std::uint32_t, std::uint64_t> pages;
  for (const AreaParts& v : parts_)
    for (std::uint64_t b = 0; b < v.rec.count; ++b) {
      const Rec r = rec_of(std::atomic_ref<std::uint64_t>(v.rec.words[b]).load(std::memory_order_relaxed));
      if (r.holder != 0 && r.holder <= slots_.size() && slots_[r.holder - 1] == Slot::attached)
        pages[r.holder - 1] += r.pages;
    }
  std::vector<Holding> out;
  for (const auto& [s, p] : pages) out.push_back({s, pids_[s], comms_[s], p});
  return out;
}

Status KeeperCore::verify(std::int64_t wait_ms) {
  std::vector<bool> attached(slots_.size());
  for (std::size_t s = 0; s < slots_.size(); ++s) attached[s] = slots_[s] == Slot::attached;
  for (std::uint32_t a = 0; a < areas_.size(); ++a) {
    ReapCounts ignored;
    if (!lock_area(a, wait_ms, ignored))
      return make_error(Errc::busy, "area " + areas_[a].name() + ": its lock could not be had");
    Status s = core::verify(parts_[a].rec, areas_[a], attached);
    unlock_area(a);
    if (!s) return s;
  }
  return {};
}

}  // namespace numacma::shared
