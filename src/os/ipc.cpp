// src/os/ipc.cpp — see ipc.hpp.
#include "os/ipc.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "os/dirs.hpp"
#include "os/errno_error.hpp"

#ifndef SO_PEERGROUPS
#define SO_PEERGROUPS 59
#endif

namespace numacma::os {

namespace {

constexpr std::size_t kMaxFds = 250;

Result<sockaddr_un> address(int dir, const std::string& name) {
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  const std::string p = path_of(dir, name);
  if (p.size() >= sizeof a.sun_path) return make_error(Errc::invalid_argument, "socket path too long: " + p);
  std::memcpy(a.sun_path, p.c_str(), p.size() + 1);
  return a;
}

void set_timeouts(int fd, int timeout_ms) {
  timeval tv{};
  tv.tv_sec = timeout_ms / 1000;
  tv.tv_usec = (timeout_ms % 1000) * 1000;
  (void)::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  (void)::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

Error io(const std::string& what, int e) {
  if (e == EAGAIN || e == EWOULDBLOCK)
    return with_errno(make_error(Errc::busy, what + ": the other side did not answer in time"), e);
  if (e == EPIPE || e == ECONNRESET)
    return with_errno(make_error(Errc::io_error, what + ": the other side hung up"), e);
  return errno_error(what, e);
}

}  // namespace

Result<Fd> listen_at(int dir, const std::string& name, unsigned mode, long gid) {
  Result<sockaddr_un> a = address(dir, name);
  if (!a) return std::move(a).error();
  if (Result<EntryInfo> e = stat_at(dir, name); e && e->is_socket) (void)unlink_at(dir, name);
  const int fd = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return errno_error("socket(AF_UNIX, SOCK_SEQPACKET)", errno);
  Fd f(fd);
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&*a), sizeof *a) != 0)
    return errno_error("bind(" + name + ")", errno);
  if (gid >= 0 && ::fchownat(dir, name.c_str(), static_cast<uid_t>(-1), static_cast<gid_t>(gid),
                             AT_SYMLINK_NOFOLLOW) != 0)
    return errno_error("chown(" + name + ", group " + std::to_string(gid) + ")", errno);
  if (::fchmodat(dir, name.c_str(), mode & 0777, 0) != 0) return errno_error("chmod(" + name + ")", errno);
  if (::listen(fd, 64) != 0) return errno_error("listen(" + name + ")", errno);
  return f;
}

Result<Fd> accept_peer(int listener) {
  const int fd = ::accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (fd < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR || errno == ECONNABORTED)
      return make_error(Errc::not_found, "no connection waiting");
    return errno_error("accept4", errno);
  }
  return Fd(fd);
}

Result<Fd> connect_at(int dir, const std::string& name, int timeout_ms) {
  Result<sockaddr_un> a = address(dir, name);
  if (!a) return std::move(a).error();
  const int fd = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (fd < 0) return errno_error("socket(AF_UNIX, SOCK_SEQPACKET)", errno);
  Fd f(fd);
  set_timeouts(fd, timeout_ms);
  while (::connect(fd, reinterpret_cast<const sockaddr*>(&*a), sizeof *a) != 0) {
    if (errno == EINTR) continue;
    const int e = errno;
    if (e == ECONNREFUSED || e == ENOENT)
      return with_errno(
          make_error(Errc::not_found, "connect(" + name + "): nothing listens there (" + std::strerror(e) + ")"), e);
    if (e == EAGAIN)
      return with_errno(
          make_error(Errc::busy, "connect(" + name + "): its queue is full (" + std::strerror(e) + ")"), e);
    return errno_error("connect(" + name + ")", e);
  }
  return f;
}

Result<PeerCred> peer_cred(int sock) {
  ucred c{};
  socklen_t len = sizeof c;
  if (::getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &c, &len) != 0) return errno_error("getsockopt(SO_PEERCRED)", errno);
  PeerCred p;
  p.pid = c.pid;
  p.uid = c.uid;
  p.gid = c.gid;
  std::vector<gid_t> g(64);
  for (int round = 0; round < 2; ++round) {
    socklen_t glen = static_cast<socklen_t>(g.size() * sizeof(gid_t));
    if (::getsockopt(sock, SOL_SOCKET, SO_PEERGROUPS, g.data(), &glen) == 0) {
      g.resize(glen / sizeof(gid_t));
      for (gid_t x : g) p.groups.push_back(x);
      break;
    }
    if (errno != ERANGE) break;  // an old kernel: the primary group only
    g.resize(glen / sizeof(gid_t) + 1);
  }
  return p;
}

Status send_msg(int sock, const void* data, std::size_t bytes, const std::vector<int>& fds, bool nonblocking) {
  if (fds.size() > kMaxFds) return make_error(Errc::invalid_argument, "send_msg: too many descriptors");
  iovec iov{const_cast<void*>(data), bytes};
  msghdr m{};
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  std::vector<char> ctl;
  if (!fds.empty()) {
    ctl.assign(CMSG_SPACE(sizeof(int) * fds.size()), 0);
    m.msg_control = ctl.data();
    m.msg_controllen = ctl.size();
    cmsghdr* c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  }
  for (;;) {
    const ssize_t n = ::sendmsg(sock, &m, MSG_NOSIGNAL | (nonblocking ? MSG_DONTWAIT : 0));
    if (n >= 0) return {};
    if (errno != EINTR) return io("sendmsg", errno);
  }
}

Result<Message> recv_msg(int sock, void* data, std::size_t cap, bool nonblocking) {
  iovec iov{data, cap};
  msghdr m{};
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  std::vector<char> ctl(CMSG_SPACE(sizeof(int) * kMaxFds), 0);
  m.msg_control = ctl.data();
  m.msg_controllen = ctl.size();
  ssize_t n;
  while ((n = ::recvmsg(sock, &m, MSG_CMSG_CLOEXEC | (nonblocking ? MSG_DONTWAIT : 0))) < 0)
    if (errno != EINTR) return io("recvmsg", errno);
  Message out;
  out.bytes = static_cast<std::size_t>(n);
  for (cmsghdr* c = CMSG_FIRSTHDR(&m); c != nullptr; c = CMSG_NXTHDR(&m, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const std::size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (std::size_t i = 0; i < k; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
      out.fds.emplace_back(fd);
    }
  }
  if ((m.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0)
    return make_error(Errc::io_error, "recvmsg: a message larger than expected (truncated)");
  return out;
}

Status poll_in(std::vector<PollItem>& items, int timeout_ms) {
  std::vector<pollfd> p(items.size());
  for (std::size_t i = 0; i < items.size(); ++i) p[i] = {items[i].fd, POLLIN, 0};
  int n;
  while ((n = ::poll(p.data(), p.size(), timeout_ms)) < 0)
    if (errno != EINTR) return errno_error("poll", errno);
  for (std::size_t i = 0; i < items.size(); ++i) items[i].revents = p[i].revents;
  return {};
}

Result<std::pair<Fd, Fd>> make_pipe() {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) return errno_error("pipe2", errno);
  return std::pair<Fd, Fd>{Fd(p[0]), Fd(p[1])};
}

Status write_some(int fd, const void* data, std::size_t bytes) {
  const auto* c = static_cast<const char*>(data);
  while (bytes > 0) {
    const ssize_t n = ::write(fd, c, bytes);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno_error("write", errno);
    }
    c += n;
    bytes -= static_cast<std::size_t>(n);
  }
  return {};
}

Result<std::size_t> read_some(int fd, void* data, std::size_t cap, int timeout_ms) {
  std::vector<PollItem> it{{fd, 0}};
  if (Status s = poll_in(it, timeout_ms); !s) return std::move(s).error();
  if (it[0].revents == 0) return make_error(Errc::busy, "no answer within " + std::to_string(timeout_ms) + " ms");
  ssize_t n;
  while ((n = ::read(fd, data, cap)) < 0)
    if (errno != EINTR) return errno_error("read", errno);
  return static_cast<std::size_t>(n);
}

}  // namespace numacma::os
