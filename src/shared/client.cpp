// src/shared/client.cpp — see client.hpp.
#include "shared/client.hpp"

#include <cstdlib>

#include "numacma/shared.hpp"
#include "os/dirs.hpp"
#include "os/ipc.hpp"
#include "os/os.hpp"
#include "os/shared.hpp"
#include "shared/layout.hpp"

namespace numacma::shared {

int timeout_ms() {
  const std::string v = os::env_or("NUMACMA_TIMEOUT_MS", "");
  if (!v.empty() && v.find_first_not_of("0123456789") == std::string::npos && v.size() < 9)
    return std::atoi(v.c_str());
  return 2000;
}

Result<os::Fd> open_pools_dir(bool create) {
  const std::string run = run_dir();
  Result<os::Fd> r = os::open_trusted_dir(run, create);
  if (!r) {
    if (r.error().code == Errc::not_found)
      return make_error(Errc::not_found, "no reservations: the run directory " + run + " does not exist");
    return make_error(r.error().code, "run directory: " + r.error().message);
  }
  Result<os::Fd> p = os::open_dir_at(r->get(), "pools", create, 0755);
  if (!p) {
    if (p.error().code == Errc::not_found)
      return make_error(Errc::not_found, "no reservations under " + run + "/pools");
    return make_error(p.error().code, run + "/pools: " + p.error().message);
  }
  return p;
}

Result<KeeperLink> connect_keeper(std::string_view name, int timeout) {
  if (Status s = check_pool_name(name); !s) return std::move(s).error();
  const std::string n(name), where = run_dir() + "/pools/" + n;
  Result<os::Fd> pools = open_pools_dir(false);
  if (!pools) {
    if (pools.error().code == Errc::not_found)
      return make_error(Errc::not_found, "no reservation named '" + n + "' under " + run_dir() + "/pools (numacma reserve " +
                                             n + " PARAMS...)");
    return std::move(pools).error();
  }
  Result<os::Fd> dir = os::open_dir_at(pools->get(), n, false);
  if (!dir) {
    if (dir.error().code == Errc::not_found)
      return make_error(Errc::not_found, "no reservation named '" + n + "' under " + run_dir() + "/pools (numacma reserve " +
                                             n + " PARAMS...)");
    return make_error(dir.error().code, where + ": " + dir.error().message);
  }
  Result<os::DirInfo> owner = os::fd_owner(dir->get());
  if (!owner) return std::move(owner).error();
  Result<os::Fd> sock = os::connect_at(dir->get(), "sock", timeout);
  if (!sock) {
    if (sock.error().code == Errc::not_found)
      return make_error(Errc::not_found, "reservation '" + n + "' has no keeper running (" + where +
                                             "/sock: nobody listens); numacma release " + n +
                                             " --force removes what is left, then reserve it again");
    return make_error(sock.error().code, "reservation '" + n + "': " + sock.error().message);
  }
  Result<os::PeerCred> who = os::peer_cred(sock->get());
  if (!who) return std::move(who).error();
  if (who->uid != owner->uid && who->uid != 0)
    return make_error(Errc::permission, where + "/sock is served by uid " + std::to_string(who->uid) +
                                            ", neither the pool's owner (uid " + std::to_string(owner->uid) +
                                            ") nor root: refused");
  return KeeperLink{std::move(*sock), std::move(*dir), owner->uid};
}

Result<Answer> ask(const KeeperLink& k, std::string_view name, ReqOp op, bool force, int timeout) {
  Request req;
  req.op = static_cast<std::uint32_t>(op);
  req.force = force ? 1 : 0;
  const std::string comm = os::process_comm(os::self_pid());
  set_text(req.comm, sizeof req.comm, comm.data(), comm.size());
  const std::string who = "the keeper of pool '" + std::string(name) + "'";
  const auto late = [&](const Error& e) {
    if (e.code == Errc::busy)
      return make_error(Errc::busy, who + " did not answer within " + std::to_string(timeout) +
                                        " ms (stopped? $NUMACMA_TIMEOUT_MS sets the wait)");
    return make_error(e.code, who + ": " + e.message);
  };
  if (Status s = os::send_msg(k.sock.get(), &req, sizeof req, {}); !s) return late(s.error());
  Answer a;
  Result<os::Message> m = os::recv_msg(k.sock.get(), &a.reply, sizeof a.reply);
  if (!m) return late(m.error());
  if (m->bytes == 0) return make_error(Errc::io_error, who + " hung up without an answer");
  if (m->bytes != sizeof(Reply) || a.reply.magic != kProtoMagic || a.reply.version != kProtoVersion)
    return make_error(Errc::io_error, who + " answered in a protocol this numacma does not speak");
  for (os::Fd& fd : m->fds) a.fds.push_back(std::move(fd));
  a.reply.message[sizeof a.reply.message - 1] = '\0';
  if (a.reply.code != 0) {
    const auto code = static_cast<Errc>(a.reply.code);
    return make_error(code >= Errc::invalid_argument && code <= Errc::corrupt ? code : Errc::io_error,
                      a.reply.message);
  }
  if (a.reply.nfds > 2 + kMaxAreas) return make_error(Errc::io_error, who + " sent too many descriptors");
  while (a.fds.size() < a.reply.nfds) {
    FdBatch b;
    Result<os::Message> more = os::recv_msg(k.sock.get(), &b, sizeof b);
    if (!more) return late(more.error());
    if (more->bytes != sizeof b || b.magic != kProtoMagic || b.first != a.fds.size() || more->fds.empty())
      return make_error(Errc::io_error, who + " sent its descriptors out of order");
    for (os::Fd& fd : more->fds) a.fds.push_back(std::move(fd));
  }
  if (a.fds.size() != a.reply.nfds) return make_error(Errc::io_error, who + " sent more descriptors than it said");
  return a;
}

void await_close(const KeeperLink& k, int timeout) {
  char c;
  (void)os::read_some(k.sock.get(), &c, 1, timeout);
}

}  // namespace numacma::shared
