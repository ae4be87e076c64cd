// src/shared/state.cpp — see state.hpp.
#include "shared/state.hpp"

#include <atomic>
#include <cstring>

#include "os/os.hpp"
#include "os/shared.hpp"

namespace numacma::shared {

namespace {

void (*g_hook)(int) = nullptr;

void hook(int point) {
  if (g_hook != nullptr) g_hook(point);
}

// Every word another process may read, or that must survive a kill whole, is
// written with one atomic store. A killed process's stores are not lost (the
// CPU drains what it retired), and the next owner sees them all: it takes the
// lock after the kernel's robust-futex cleanup of the dead thread, with
// acquire ordering. So what the order of an update's steps needs is only that
// the compiler keeps them in program order: a compiler fence, no CPU fence.
inline void store(std::uint64_t& w, std::uint64_t v) noexcept {
  std::atomic_ref<std::uint64_t>(w).store(v, std::memory_order_relaxed);
}
inline std::uint64_t load(std::uint64_t& w) noexcept {
  return std::atomic_ref<std::uint64_t>(w).load(std::memory_order_relaxed);
}
inline void step() noexcept { std::atomic_signal_fence(std::memory_order_seq_cst); }

std::uint64_t span_bits(std::uint64_t pages, unsigned opb) noexcept {
  return (pages + (std::uint64_t{1} << opb) - 1) >> opb;
}

void set_bits(std::uint64_t* words, std::uint64_t b, std::uint64_t n, bool on) noexcept {
  while (n > 0) {
    const std::uint64_t w = b / 64, off = b % 64, take = std::min<std::uint64_t>(64 - off, n);
    const std::uint64_t mask = (take == 64 ? ~std::uint64_t{0} : ((std::uint64_t{1} << take) - 1)) << off;
    store(words[w], on ? (load(words[w]) | mask) : (load(words[w]) & ~mask));
    b += take;
    n -= take;
  }
}

void append_log(AreaState& st, std::uint64_t bit, std::uint64_t pages, Op op) noexcept {
  const std::uint64_t seq = st.seq + 1;
  LogEntry& e = st.log[(seq - 1) % kLogEntries];
  e.bit = bit;
  e.pages = static_cast<std::uint32_t>(pages);
  e.op = static_cast<std::uint32_t>(op);
  store(e.seq, seq);
  store(st.seq, seq);
}

}  // namespace

void set_update_hook_for_testing(void (*h)(int)) { g_hook = h; }

std::string pool_dir(std::string_view name) { return run_dir() + "/pools/" + std::string(name); }
std::string state_path(std::string_view name) { return pool_dir(name) + "/state"; }

// ---- StateFile ---------------------------------------------------------------

Result<std::shared_ptr<StateFile>> StateFile::open(const std::string& path) {
  Result<os::Fd> fd = os::open_rw(path);
  if (!fd) {
    Error e = std::move(fd).error();
    if (e.code == Errc::permission) {  // say whose it is and who it admits
      const std::string dir = path.substr(0, path.rfind('/'));
      Result<os::FileInfo> i = os::path_info(path);
      if (!i) i = os::path_info(dir);
      if (i) {
        char mode[8];
        std::snprintf(mode, sizeof mode, "0%o", i->mode);
        e.message += " (the reservation belongs to uid " + std::to_string(i->uid) + ", group " +
                     std::to_string(i->gid) + ", mode " + mode + ": it admits " +
                     (i->mode & 070 ? "its owner and the members of its group)"
                                    : "its owner only; reserve it with --group GROUP to share it)");
      }
    }
    return e;
  }
  Result<os::FileInfo> info = os::file_info(fd->get());
  if (!info) return std::move(info).error();
  if (info->size < sizeof(FileHeader))
    return make_error(Errc::corrupt, "state file " + path + ": truncated: " + std::to_string(info->size) +
                                         " bytes, less than its header");
  Result<void*> m = os::map_file(fd->get(), info->size, 0);
  if (!m) return std::move(m).error();
  std::shared_ptr<StateFile> f(new StateFile());
  f->path_ = path;
  f->base_ = static_cast<unsigned char*>(*m);
  f->size_ = info->size;
  if (Status v = validate(f->base_, f->size_); !v)
    return make_error(Errc::corrupt, path + ": " + v.error().message);
  for (std::uint32_t i = 0; i < f->hdr().area_count; ++i) {
    const AreaDesc& d = area_desc(f->base_, i);
    f->views_.push_back({&d, at<AreaState>(f->base_, d.state_offset), at<std::uint64_t>(f->base_, d.recs_offset),
                         at<std::uint64_t>(f->base_, d.bitmap_offset)});
  }
  return f;
}

StateFile::~StateFile() {
  if (base_ != nullptr) (void)os::unmap(base_, size_);
}

Status init_locks(StateFile& f) {
  if (Status s = os::robust_init(f.pool().lock); !s) return s;
  for (std::uint32_t i = 0; i < f.areas(); ++i)
    if (Status s = os::robust_init(f.state(i).lock); !s) return s;
  return {};
}

// ---- locks and repair ------------------------------------------------------------

AreaLock::AreaLock(StateFile& f, std::uint32_t i) noexcept : f_(f), i_(i) {
  const int r = os::robust_lock(f.state(i).lock);
  if (r == 1) {
    repair_area(f, i);
    os::robust_consistent(f.state(i).lock);
    repaired_ = true;
  } else {
    err_ = r;
  }
}

AreaLock::~AreaLock() {
  if (err_ == 0) os::robust_unlock(f_.state(i_).lock);
}

Error AreaLock::error() const { return os::robust_error(err_); }

Result<PoolLock> PoolLock::acquire(StateFile& f) {
  const int r = os::robust_lock(f.pool().lock);
  if (r != 0 && r != 1) return os::robust_error(r);
  if (r == 1) {  // holder slots are written state-last: nothing half-made to undo
    ++f.pool().recoveries;
    os::robust_consistent(f.pool().lock);
  }
  return PoolLock(&f);
}

PoolLock::~PoolLock() {
  if (held_) os::robust_unlock(f_->pool().lock);
}

void repair_area(StateFile& f, std::uint32_t i) noexcept {
  AreaState& st = f.state(i);
  const AreaDesc& d = f.desc(i);
  std::uint64_t* recs = f.recs(i);
  Journal& j = st.journal;
  if (j.pending != 0) {  // complete the update the dead owner began
    if (j.bit < d.rec_count) store(recs[j.bit], j.rec);
    st.alloc_pages_success = j.alloc_pages_success;
    st.release_pages_success = j.release_pages_success;
    st.reaped_pages = j.reaped_pages;
  }
  // The derived parts, from the records.
  std::uint64_t* bm = f.bitmap(i);
  for (std::uint64_t w = 0; w < d.bitmap_words; ++w) store(bm[w], 0);
  std::uint64_t used = 0, live = 0;
  for (std::uint64_t b = 0; b < d.rec_count; ++b) {
    const Rec r = rec_of(load(recs[b]));
    if (r.holder == 0) continue;
    const std::uint64_t n = std::min(span_bits(r.pages, d.order_per_bit), d.rec_count - b);
    set_bits(bm, b, n, true);
    used += n << d.order_per_bit;
    ++live;
  }
  st.used_pages = used;
  st.live_buffers = live;
  ++st.epoch;  // every mirror rebuilds from the records
  ++st.recoveries;
  step();
  j.pending = 0;
}

// ---- mirrors -------------------------------------------------------------------

Status sync_slow(StateFile& f, std::uint32_t i, Mirror& m, core::Area& area) {
  AreaState& st = f.state(i);
  const unsigned opb = f.desc(i).order_per_bit;
  const std::uint64_t seq = st.seq;
  if (m.epoch == st.epoch && seq >= m.seq && seq - m.seq <= kLogEntries) {
    bool ok = true;
    for (std::uint64_t s = m.seq + 1; ok && s <= seq; ++s) {
      const LogEntry& e = st.log[(s - 1) % kLogEntries];
      if (e.seq != s) {
        ok = false;
        break;
      }
      const Status r = e.op == static_cast<std::uint32_t>(Op::alloc) ? area.restore(e.bit << opb, e.pages)
                                                                     : area.release(e.bit << opb, e.pages);
      ok = r.ok();
    }
    if (ok) {
      m.seq = seq;
      return {};
    }
  }
  if (Status s = restore_records(f.base(), i, area); !s)
    return make_error(Errc::corrupt, f.path() + ": " + s.error().message);
  m.seq = seq;
  m.epoch = st.epoch;
  return {};
}

Status verify_area(StateFile& f, std::uint32_t i) {
  const AreaDesc& d = f.desc(i);
  const AreaState& st = f.state(i);
  const auto bad = [&](const std::string& why) {
    return make_error(Errc::corrupt, "area " + field(d.name, sizeof d.name) + ": " + why);
  };
  if (st.journal.pending != 0) return bad("an update is pending");
  std::vector<std::uint64_t> bm(d.bitmap_words, 0);
  std::uint64_t used = 0, live = 0, held = 0;
  const std::uint64_t* recs = f.recs(i);
  for (std::uint64_t b = 0; b < d.rec_count; ++b) {
    const Rec r = rec_of(recs[b]);
    if (r.holder == 0) continue;
    held += r.pages;
    const std::uint64_t n = span_bits(r.pages, d.order_per_bit);
    if (r.pages == 0 || n > d.rec_count - b) return bad("record " + std::to_string(b) + " runs past the area");
    if (r.holder > f.hdr().holder_capacity ||
        f.holders()[r.holder - 1].state != static_cast<std::uint32_t>(HolderState::attached))
      return bad("record " + std::to_string(b) + " names holder slot " + std::to_string(r.holder) +
                 ", which is not attached");
    for (std::uint64_t k = b; k < b + n; ++k) {
      if (bm[k / 64] >> (k % 64) & 1) return bad("record " + std::to_string(b) + " overlaps another");
      bm[k / 64] |= std::uint64_t{1} << (k % 64);
    }
    used += n << d.order_per_bit;
    ++live;
  }
  for (std::uint64_t w = 0; w < d.bitmap_words; ++w)
    if (f.bitmap(i)[w] != bm[w]) return bad("bitmap word " + std::to_string(w) + " differs from the records");
  if (st.used_pages != used) return bad("used pages " + std::to_string(st.used_pages) + ", records say " + std::to_string(used));
  if (st.live_buffers != live)
    return bad("live buffers " + std::to_string(st.live_buffers) + ", records say " + std::to_string(live));
  if (st.alloc_pages_success - st.release_pages_success != held)
    return bad("counters: " + std::to_string(st.alloc_pages_success) + " pages allocated, " +
               std::to_string(st.release_pages_success) + " released, but " + std::to_string(held) + " held");
  return {};
}

core::AreaStats shared_stats(StateFile& f, std::uint32_t i, const core::Area& mirror) {
  core::AreaStats a = mirror.stats();
  const AreaState& st = f.state(i);
  a.alloc_pages_success = st.alloc_pages_success;
  a.alloc_pages_fail = st.alloc_pages_fail;
  a.release_pages_success = st.release_pages_success;
  return a;
}

// ---- updates ---------------------------------------------------------------------

void commit_alloc(StateFile& f, std::uint32_t i, Mirror& m, std::uint64_t first_page,
                  std::uint64_t pages, std::uint32_t holder) noexcept {
  AreaState& st = f.state(i);
  const unsigned opb = f.desc(i).order_per_bit;
  const std::uint64_t bit = first_page >> opb, word = rec_word({static_cast<std::uint32_t>(pages), holder});
  Journal& j = st.journal;
  j.op = static_cast<std::uint32_t>(Op::alloc);
  j.bit = bit;
  j.rec = word;
  j.alloc_pages_success = st.alloc_pages_success + pages;
  j.release_pages_success = st.release_pages_success;
  j.live_buffers = st.live_buffers + 1;
  j.reaped_pages = st.reaped_pages;
  step();
  j.pending = 1;
  step();
  hook(1);
  store(f.recs(i)[bit], word);
  step();
  hook(2);
  const std::uint64_t n = span_bits(pages, opb);
  set_bits(f.bitmap(i), bit, n, true);
  st.used_pages += n << opb;
  st.alloc_pages_success = j.alloc_pages_success;
  st.live_buffers = j.live_buffers;
  hook(3);
  append_log(st, bit, pages, Op::alloc);
  step();
  j.pending = 0;
  m.seq = st.seq;
}

void commit_release(StateFile& f, std::uint32_t i, Mirror* m, std::uint64_t bit, bool reaped) noexcept {
  AreaState& st = f.state(i);
  const unsigned opb = f.desc(i).order_per_bit;
  const Rec r = rec_of(load(f.recs(i)[bit]));
  Journal& j = st.journal;
  j.op = static_cast<std::uint32_t>(Op::release);
  j.bit = bit;
  j.rec = 0;
  j.alloc_pages_success = st.alloc_pages_success;
  j.release_pages_success = st.release_pages_success + r.pages;
  j.live_buffers = st.live_buffers - 1;
  j.reaped_pages = st.reaped_pages + (reaped ? r.pages : 0);
  step();
  j.pending = 1;
  step();
  hook(1);
  store(f.recs(i)[bit], 0);
  step();
  hook(2);
  const std::uint64_t n = span_bits(r.pages, opb);
  set_bits(f.bitmap(i), bit, n, false);
  st.used_pages -= n << opb;
  st.release_pages_success = j.release_pages_success;
  st.live_buffers = j.live_buffers;
  st.reaped_pages = j.reaped_pages;
  hook(3);
  append_log(st, bit, r.pages, Op::release);
  step();
  j.pending = 0;
  if (m != nullptr) m->seq = st.seq;
}

// ---- holders -----------------------------------------------------------------------

namespace {

struct Dead {
  std::uint32_t slot;
  std::int32_t pid;
  std::uint64_t start_time;
};

bool same(const Holder& h, const Dead& d) noexcept {
  return h.state == static_cast<std::uint32_t>(HolderState::attached) && h.pid == d.pid &&
         h.start_time == d.start_time;
}

/** Releases every record of the listed holders in every area. */
Status release_holders(StateFile& f, const std::vector<Dead>& who, bool reaped, ReapReport* rep) {
  if (who.empty()) return {};
  std::vector<char> mine(f.hdr().holder_capacity + 1, 0);
  for (std::uint32_t a = 0; a < f.areas(); ++a) {
    AreaLock lk(f, a);
    if (!lk) return lk.error();
    if (rep != nullptr && lk.repaired()) ++rep->recovered_locks;
    // Under the area lock, a slot still showing the dead process cannot have
    // been taken by a new one: only its records carry its number here.
    std::fill(mine.begin(), mine.end(), 0);
    for (const Dead& d : who)
      if (same(f.holders()[d.slot], d)) mine[d.slot + 1] = 1;
    std::uint64_t* recs = f.recs(a);
    for (std::uint64_t b = 0; b < f.desc(a).rec_count; ++b) {
      const Rec r = rec_of(recs[b]);
      if (r.holder == 0 || r.holder >= mine.size() || !mine[r.holder]) continue;
      if (rep != nullptr) {
        ++rep->buffers;
        rep->pages += r.pages;
      }
      commit_release(f, a, nullptr, b, reaped);
    }
  }
  Result<PoolLock> pl = PoolLock::acquire(f);
  if (!pl) return std::move(pl).error();
  for (const Dead& d : who) {
    Holder& h = f.holders()[d.slot];
    if (same(h, d)) {
      h.state = static_cast<std::uint32_t>(HolderState::free);
      if (rep != nullptr && reaped) ++rep->dead_holders;
    }
  }
  return {};
}

}  // namespace

Result<std::uint32_t> register_holder(StateFile& f) {
  const int pid = os::self_pid();
  Result<std::uint64_t> start = os::process_start_time(pid);
  if (!start) return std::move(start).error();
  for (int round = 0; round < 2; ++round) {
    {
      Result<PoolLock> pl = PoolLock::acquire(f);
      if (!pl) return std::move(pl).error();
      Holder* hs = f.holders();
      for (std::uint32_t s = 0; s < f.hdr().holder_capacity; ++s) {
        Holder& h = hs[s];
        if (h.state != static_cast<std::uint32_t>(HolderState::free)) continue;
        h.pid = pid;
        h.start_time = *start;
        const std::string comm = os::process_comm(pid);
        std::memset(h.comm, 0, sizeof h.comm);
        std::memcpy(h.comm, comm.data(), std::min(comm.size(), sizeof h.comm - 1));
        h.attached_ns = os::realtime_ns();
        step();
        h.state = static_cast<std::uint32_t>(HolderState::attached);
        ++f.pool().attaches;
        return s;
      }
    }
    if (round == 0) {
      Result<ReapReport> r = reap_dead(f);
      if (!r) return std::move(r).error();
    }
  }
  return make_error(Errc::busy, f.path() + ": every one of its " + std::to_string(f.hdr().holder_capacity) +
                                    " holder slots is taken by a live process");
}

Status unregister_holder(StateFile& f, std::uint32_t slot) {
  const Holder& h = f.holders()[slot];
  return release_holders(f, {{slot, h.pid, h.start_time}}, false, nullptr);
}

Result<ReapReport> reap_dead(StateFile& f) {
  const std::uint64_t t0 = os::monotonic_ns();
  ReapReport rep;
  std::vector<Dead> dead;
  {
    Result<PoolLock> pl = PoolLock::acquire(f);
    if (!pl) return std::move(pl).error();
    const Holder* hs = f.holders();
    for (std::uint32_t s = 0; s < f.hdr().holder_capacity; ++s) {
      const Holder& h = hs[s];
      if (h.state == static_cast<std::uint32_t>(HolderState::attached) &&
          !os::process_alive(h.pid, h.start_time))
        dead.push_back({s, h.pid, h.start_time});
    }
  }
  if (!dead.empty()) {
    if (Status s = release_holders(f, dead, true, &rep); !s) return std::move(s).error();
  } else {
    // Still repair any lock a dead process left behind.
    for (std::uint32_t a = 0; a < f.areas(); ++a) {
      AreaLock lk(f, a);
      if (!lk) return lk.error();
      if (lk.repaired()) ++rep.recovered_locks;
    }
  }
  rep.ns = os::monotonic_ns() - t0;
  return rep;
}

}  // namespace numacma::shared
