// src/shared/keeper.cpp — the keeper's process: its socket loop (keeper.hpp).
//
//   poll(listener, clients)       wakes for a connection, a request, a hang-up,
//                                 or a tick (20 ms while reaps wait, else 1 s)
//   a hang-up of an attached one  -> KeeperCore::gone: its buffers go back
//   a request                     -> answered at once (protocol.hpp); only
//                                    attached connections stay open
//   each tick                     -> pending reaps retried; the keeper leaves
//                                    quietly when its socket or directory is
//                                    no longer there (removed by hand)
#include "shared/keeper.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "numacma/shared.hpp"
#include "os/daemon.hpp"
#include "os/dirs.hpp"
#include "os/ipc.hpp"
#include "os/memfd.hpp"
#include "os/os.hpp"
#include "os/shared.hpp"
#include "shared/keeper_core.hpp"
#include "shared/protocol.hpp"

namespace numacma::shared {

namespace {

constexpr int kAwaitMs = 2000;        ///< a connection must ask within this
constexpr std::size_t kMaxWaiting = 256;
constexpr std::int64_t kLockTryMs = 5;
constexpr std::int64_t kAskLockMs = 100;  ///< detach and reap requests wait this long per area

struct Client {
  os::Fd fd;
  bool attached = false;
  std::uint32_t slot = 0;
  std::uint64_t since_ms = 0;
};

std::uint64_t now_ms() { return os::monotonic_ns() / 1000000; }

bool admitted(const os::PeerCred& c, std::uint32_t owner, long gid) {
  if (c.uid == 0 || c.uid == owner) return true;
  if (gid < 0) return false;
  const auto g = static_cast<std::uint32_t>(gid);
  return c.gid == g || std::find(c.groups.begin(), c.groups.end(), g) != c.groups.end();
}

class Keeper {
 public:
  Keeper(KeeperFiles& f, KeeperCore core) : f_(f), core_(std::move(core)) {}

  int run(os::Fd listener, std::uint64_t sock_ino) {
    listener_ = std::move(listener);
    sock_ino_ = sock_ino;
    std::uint64_t last_check = now_ms();
    while (!done_) {
      // The listener is left out for a moment after accept failed for want
      // of descriptors: it would stay readable and the loop would spin.
      const bool listen = now_ms() >= accept_paused_until_;
      std::vector<os::PollItem> items{{listen ? listener_.get() : -1, 0}};
      for (const Client& c : clients_) items.push_back({c.fd.get(), 0});
      if (!os::poll_in(items, core_.pending() || !listen ? 20 : 1000)) return 1;
      // Hang-ups and requests first, so a reap request sees every process that is gone.
      for (std::size_t i = items.size(); i-- > 1;)
        if (items[i].revents != 0) serve(i - 1);
      std::erase_if(clients_, [](const Client& c) { return !c.fd; });
      if (items[0].revents != 0) accept_all();
      if (core_.pending()) (void)core_.reap(kLockTryMs);
      const std::uint64_t now = now_ms();
      std::erase_if(clients_, [&](const Client& c) { return !c.attached && now - c.since_ms > kAwaitMs; });
      if (os::stop_requested()) {
        shut_down();
        break;
      }
      if (now - last_check >= 1000) {
        last_check = now;
        Result<os::EntryInfo> e = os::stat_at(f_.pool_dir.get(), "sock");
        if (!e || e->ino != sock_ino_ || os::link_count(f_.pool_dir.get()) == 0) break;  // removed by hand
      }
    }
    return 0;
  }

 private:
  void accept_all() {
    for (int k = 0; k < 64; ++k) {
      Result<os::Fd> c = os::accept_peer(listener_.get());
      if (!c) {
        if (c.error().code != Errc::not_found) accept_paused_until_ = now_ms() + 100;  // EMFILE and the like
        return;
      }
      if (std::count_if(clients_.begin(), clients_.end(), [](const Client& x) { return !x.attached; }) >=
          static_cast<long>(kMaxWaiting))
        continue;  // dropped: too many connections that have not asked yet
      Client cl;
      cl.fd = std::move(*c);
      cl.since_ms = now_ms();
      clients_.push_back(std::move(cl));
    }
  }

  void serve(std::size_t i) {
    Client& c = clients_[i];
    Request req;
    Result<os::Message> m = os::recv_msg(c.fd.get(), &req, sizeof req, true);
    if (!m && m.error().code == Errc::busy) return;  // nothing after all
    if (!m || m->bytes == 0) {  // the process is gone, or closed its connection
      if (c.attached) (void)core_.gone(c.slot, true, kLockTryMs);
      c.fd = os::Fd();
      return;
    }
    if (m->bytes != sizeof req || req.magic != kProtoMagic || req.version != kProtoVersion) {
      reply(c, Errc::invalid_argument, "not a request of this numacma (protocol version " +
                                           std::to_string(kProtoVersion) + ")");
      return close(c);
    }
    Result<os::PeerCred> who = os::peer_cred(c.fd.get());
    if (!who) return close(c);
    const bool member = admitted(*who, f_.owner_uid, f_.group_gid);
    const auto op = static_cast<ReqOp>(req.op);
    if (c.attached) {  // an attached connection says only one thing: detach
      if (op != ReqOp::detach) return;
      Reply r;
      r.reap = core_.gone(c.slot, false, kAskLockMs);
      send(c, r, {});
      return close(c);
    }
    switch (op) {
      case ReqOp::attach: return attach(c, *who, req, member);
      case ReqOp::status: return status(c);
      case ReqOp::reap: {
        if (!member) return refuse(c, *who, "reap");
        Reply r;
        r.reap = core_.reap(kAskLockMs);
        send(c, r, {});
        return close(c);
      }
      case ReqOp::release: return release(c, *who, req.force != 0);
      default: reply(c, Errc::invalid_argument, "unknown request " + std::to_string(req.op)); return close(c);
    }
  }

  void attach(Client& c, const os::PeerCred& who, const Request& req, bool member) {
    if (!member) return refuse(c, who, "attach to");
    Result<std::uint32_t> slot = core_.admit(who.pid, who.uid, field(req.comm, sizeof req.comm), os::realtime_ns());
    if (!slot) {
      reply(c, slot.error().code, slot.error().message);
      return close(c);
    }
    std::vector<int> fds{f_.layout_fd.get(), f_.state_fd.get()};
    for (const os::Fd& a : f_.area_fds) fds.push_back(a.get());
    Reply r;
    r.slot = *slot;
    if (!send(c, r, fds)) {
      (void)core_.gone(*slot, false, kLockTryMs);
      return close(c);
    }
    c.attached = true;
    c.slot = *slot;
  }

  void status(Client& c) {
    Result<os::Fd> l = os::reopen_read_only(f_.layout_fd.get());
    Result<os::Fd> s = os::reopen_read_only(f_.state_fd.get());
    if (!l || !s) {
      reply(c, Errc::io_error, (!l ? l.error() : s.error()).message);
      return close(c);
    }
    Reply r;
    send(c, r, {l->get(), s->get()});
    close(c);
  }

  void release(Client& c, const os::PeerCred& who, bool force) {
    if (who.uid != 0 && who.uid != f_.owner_uid) return refuse(c, who, "release");
    if (!force) {
      std::string live;
      for (const KeeperCore::Holding& h : core_.holders_with_buffers())
        live += (live.empty() ? "" : ", ") + std::string("pid ") + std::to_string(h.pid) + " (" + h.comm + ", " +
                std::to_string(h.pages) + " pages)";
      if (!live.empty()) {
        reply(c, Errc::busy, "reservation '" + f_.name + "' is in use: " + live +
                                 " hold buffers; stop them or use --force");
        return close(c);
      }
    }
    // Exactly the pool's own entries go: anything else in its directory
    // (the owner's, by hand) stays, and so does the pool until it is moved.
    if (Result<std::vector<std::string>> names = os::list_at(f_.pool_dir.get()); names) {
      std::string foreign;
      for (const std::string& n : *names)
        if (n != "sock") foreign += (foreign.empty() ? "" : ", ") + n;
      if (!foreign.empty()) {
        reply(c, Errc::io_error, run_dir_of(f_.name) + " holds " + foreign +
                                     ", which numacma did not make: move it away, then release again");
        return close(c);
      }
    }
    shut_down();
    send(c, Reply{}, {});
    close(c);
  }

  static std::string run_dir_of(const std::string& name) { return numacma::run_dir() + "/pools/" + name; }

  void refuse(Client& c, const os::PeerCred& who, const char* what) {
    reply(c, Errc::permission,
          "uid " + std::to_string(who.uid) + " may not " + what + " pool '" + f_.name + "': it admits uid " +
              std::to_string(f_.owner_uid) + ", root" +
              (f_.group_gid >= 0 ? " and the members of group " + std::to_string(f_.group_gid) : std::string()) +
              (f_.group_gid >= 0 ? "" : " (reserve it with --group GROUP to share it)"));
    close(c);
  }

  /** Removes the socket and the pool's directory; the loop ends. */
  void shut_down() {
    (void)os::unlink_at(f_.pool_dir.get(), "sock");
    (void)os::unlink_at(f_.pools_dir.get(), f_.name, true);
    done_ = true;
  }

  void reply(Client& c, Errc code, const std::string& msg) {
    Reply r;
    r.code = static_cast<std::int32_t>(code);
    set_text(r.message, sizeof r.message, msg.data(), msg.size());
    send(c, r, {});
  }

  bool send(Client& c, Reply r, const std::vector<int>& fds) {
    r.nfds = static_cast<std::uint32_t>(fds.size());
    r.keeper_pid = static_cast<std::uint32_t>(os::self_pid());
    const std::size_t first = std::min<std::size_t>(fds.size(), kFdsPerMessage);
    if (!os::send_msg(c.fd.get(), &r, sizeof r, {fds.begin(), fds.begin() + static_cast<long>(first)}, true))
      return false;
    for (std::size_t k = first; k < fds.size(); k += kFdsPerMessage) {
      FdBatch b;
      b.first = static_cast<std::uint32_t>(k);
      const std::size_t end = std::min(fds.size(), k + kFdsPerMessage);
      if (!os::send_msg(c.fd.get(), &b, sizeof b, {fds.begin() + static_cast<long>(k), fds.begin() + static_cast<long>(end)},
                        true))
        return false;
    }
    return true;
  }

  void close(Client& c) { c.fd = os::Fd(); }

  KeeperFiles& f_;
  KeeperCore core_;
  os::Fd listener_;
  std::uint64_t sock_ino_ = 0;
  std::uint64_t accept_paused_until_ = 0;
  std::vector<Client> clients_;
  bool done_ = false;
};

/** The keeper's whole life, in its own process. */
int keeper_main(KeeperFiles& f, int ready) {
  const auto fail = [&](const std::string& why) {
    (void)os::write_some(ready, why.data(), std::min<std::size_t>(why.size(), 900));
    return 1;
  };
  os::catch_stop_signals();
  os::raise_fd_limit();  // a descriptor per attached process, 1,024 of them and more
  const LayoutHeader& h = f.layout.hdr();
  Result<void*> m = os::map_shared(f.state_fd.get(), h.state_bytes, true);
  if (!m) return fail("the keeper could not map the state: " + m.error().message);
  auto* state = static_cast<unsigned char*>(*m);
  Result<KeeperCore> core = KeeperCore::create(f.layout, state);
  if (!core) return fail("the keeper: " + core.error().message);
  auto* ps = reinterpret_cast<PoolState*>(state + h.pool_offset);
  ps->keeper_pid = static_cast<std::uint64_t>(os::self_pid());
  ps->keeper_started_ns = os::realtime_ns();
  // Anyone who can reach the directory may connect (status is public, as
  // /sys/kernel/mm/cma is); what each may do is the keeper's decision.
  Result<os::Fd> listener = os::listen_at(f.pool_dir.get(), "sock", 0666, -1);
  if (!listener) return fail("the keeper could not listen: " + listener.error().message);
  Result<os::EntryInfo> e = os::stat_at(f.pool_dir.get(), "sock");
  if (!e) return fail("the keeper's socket: " + e.error().message);
  Keeper k(f, std::move(*core));
  const std::string ok = "ok " + std::to_string(os::self_pid());
  (void)os::write_some(ready, ok.data(), ok.size());
  (void)os::close_fd(ready);
  return k.run(std::move(*listener), e->ino);
}

}  // namespace

Result<int> start_keeper(KeeperFiles files, int ready_timeout_ms) {
  Result<std::pair<os::Fd, os::Fd>> pipe = os::make_pipe();
  if (!pipe) return std::move(pipe).error();
  std::vector<int> keep{pipe->second.get(), files.layout_fd.get(), files.state_fd.get(), files.pools_dir.get(),
                        files.pool_dir.get()};
  for (const os::Fd& a : files.area_fds) keep.push_back(a.get());
  const int ready = pipe->second.get();
  if (Status s = os::spawn_daemon(keep, "numacma-keep", [&] { return keeper_main(files, ready); }); !s)
    return std::move(s).error();
  pipe->second = os::Fd();  // the keeper has its own copy: an end of file now means it died
  char buf[1024];
  Result<std::size_t> n = os::read_some(pipe->first.get(), buf, sizeof buf - 1, ready_timeout_ms);
  if (!n) return make_error(Errc::io_error, "the pool's keeper did not start: " + n.error().message);
  const std::string said(buf, *n);
  if (said.rfind("ok ", 0) != 0)
    return make_error(Errc::io_error, said.empty() ? "the pool's keeper died as it started" : said);
  return std::atoi(said.c_str() + 3);
}

}  // namespace numacma::shared
