// src/os/ipc.hpp — Unix sockets between a reservation's keeper and the
// processes that use it: message boundaries (SOCK_SEQPACKET), descriptors
// passed with each message (SCM_RIGHTS), the kernel's word on who the peer is
// (SO_PEERCRED, SO_PEERGROUPS), and waits that end (timeouts everywhere).
//
//   keeper:  listen_at(dir, "sock", mode)  ->  accept_peer  ->  recv / send
//   client:  connect_at(dir, "sock", timeout_ms)  ->  send / recv
//
// Errors as os.hpp says; a wait that runs out is Errc::busy ("... did not
// answer within N ms"), a peer that hung up Errc::io_error.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "numacma/result.hpp"
#include "os/fd.hpp"

namespace numacma::os {

/** What the kernel says about the process at the other end of a socket.
 *  pid is as this process's PID namespace sees it (0: not visible here). */
struct PeerCred {
  int pid = 0;
  std::uint32_t uid = 0, gid = 0;
  std::vector<std::uint32_t> groups;  ///< supplementary groups (SO_PEERGROUPS)
};

/** socket(AF_UNIX, SOCK_SEQPACKET) bound at path_of(dir, name) (a stale
 *  socket file there is removed first), chmod `mode`, chown to gid when >= 0,
 *  listening, non-blocking, close-on-exec. */
Result<Fd> listen_at(int dir, const std::string& name, unsigned mode, long gid);

/** accept4 (non-blocking, close-on-exec); not_found when none is waiting. */
Result<Fd> accept_peer(int listener);

/** connect to path_of(dir, name); send and receive time out after
 *  timeout_ms. Errc::not_found when nothing listens there (ECONNREFUSED,
 *  ENOENT). */
Result<Fd> connect_at(int dir, const std::string& name, int timeout_ms);

/** SO_PEERCRED and SO_PEERGROUPS of a connected socket. */
Result<PeerCred> peer_cred(int sock);

/** One message, with `fds` attached (at most 250). nonblocking: MSG_DONTWAIT.
 *  Never raises SIGPIPE. */
Status send_msg(int sock, const void* data, std::size_t bytes, const std::vector<int>& fds,
                bool nonblocking = false);

/** One message of at most `cap` bytes, and the descriptors that came with it
 *  (close-on-exec, owned by the caller). A message larger than cap, or with
 *  more descriptors than fit (MSG_TRUNC, MSG_CTRUNC), is io_error and what
 *  came is closed. 0 bytes: the peer closed. */
struct Message {
  std::size_t bytes = 0;
  std::vector<Fd> fds;
};
Result<Message> recv_msg(int sock, void* data, std::size_t cap, bool nonblocking = false);

/** poll(2) on the descriptors for POLLIN (events out: POLLIN, POLLHUP,
 *  POLLERR as revents). timeout_ms < 0: wait for ever. EINTR is retried. */
struct PollItem {
  int fd = -1;
  short revents = 0;
};
Status poll_in(std::vector<PollItem>& items, int timeout_ms);

/** pipe2(O_CLOEXEC). */
Result<std::pair<Fd, Fd>> make_pipe();
/** write / read of a few bytes (EINTR retried). read: 0 at end of file;
 *  waits at most timeout_ms (< 0: for ever), busy when it runs out. */
Status write_some(int fd, const void* data, std::size_t bytes);
Result<std::size_t> read_some(int fd, void* data, std::size_t cap, int timeout_ms);

}  // namespace numacma::os
