// src/shared/client.hpp — a process's side of the talk with a pool's keeper
// (protocol.hpp): find it through checked directories, check that it is who
// it should be, ask, and wait a bounded time for the answer.
//
//   $NUMACMA_RUN_DIR (default /run/numacma)   owned by this user or root,
//     pools/                                  writable by no one else, no
//       NAME/                                 symbolic link followed: each
//         sock                                opened from its parent's fd
//
// The keeper must run as the pool directory's owner or as root (SO_PEERCRED),
// else nothing it says is believed. Every wait ends after the timeout
// (timeout_ms(): $NUMACMA_TIMEOUT_MS, default 2000 ms) with Errc::busy.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "numacma/result.hpp"
#include "os/fd.hpp"
#include "shared/protocol.hpp"

namespace numacma::shared {

/** $NUMACMA_TIMEOUT_MS when set to a number, else 2000. */
int timeout_ms();

/** <run dir>/pools, checked (create: the run directory and it made when
 *  missing, mode 0755). */
Result<os::Fd> open_pools_dir(bool create);

struct KeeperLink {
  os::Fd sock;
  os::Fd dir;                ///< the pool's directory
  std::uint32_t owner = 0;   ///< its owner's uid
};

/** Connects to pool NAME's keeper. not_found: no such reservation, or its
 *  keeper is not running (the message says what to do). */
Result<KeeperLink> connect_keeper(std::string_view name, int timeout_ms);

struct Answer {
  Reply reply;
  std::vector<os::Fd> fds;
};
/** Sends one request and reads the reply with every descriptor that comes
 *  with it. A reply with an error code is that error. */
Result<Answer> ask(const KeeperLink& k, std::string_view name, ReqOp op, bool force, int timeout_ms);

/** Waits until the keeper closes the connection (it exits after a release). */
void await_close(const KeeperLink& k, int timeout_ms);

}  // namespace numacma::shared
