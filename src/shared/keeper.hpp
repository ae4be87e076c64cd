// src/shared/keeper.hpp — a reserved pool's keeper: the process that holds the
// pool's memory files (sealed memfds) between the processes that use them,
// hands them to each process it admits, and gives a process's buffers back
// the moment the kernel closes that process's connection.
//
//   numacma reserve NAME ...       creates the memory, the layout and the
//                                  state, then start_keeper(): the keeper
//                                  runs on in its own session
//   <run dir>/pools/NAME/sock      where it listens (SOCK_SEQPACKET; its
//                                  mode admits whoever may reach it; the
//                                  keeper decides what each may do from
//                                  SO_PEERCRED: protocol.hpp)
//   numacma release NAME           it removes the directory and exits
//
// The keeper never waits for long: area locks are tried for a few
// milliseconds and what could not be done is retried on the next turn of its
// loop, so a stopped or wedged holder delays only that holder's reap.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "numacma/result.hpp"
#include "os/fd.hpp"
#include "shared/layout.hpp"

namespace numacma::shared {

struct KeeperFiles {
  Layout layout;
  os::Fd layout_fd;              ///< sealed read-only
  os::Fd state_fd;               ///< sealed against resizing
  std::vector<os::Fd> area_fds;  ///< one per area, in layout order
  os::Fd pools_dir;              ///< <run dir>/pools (the keeper removes NAME from it)
  os::Fd pool_dir;               ///< <run dir>/pools/NAME
  std::string name;
  std::uint32_t owner_uid = 0;
  long group_gid = -1;
};

/** Starts the keeper of `files` (a daemon: it outlives the caller) and
 *  waits until it listens; its pid. The caller's copies of the descriptors
 *  may be closed afterwards. */
Result<int> start_keeper(KeeperFiles files, int ready_timeout_ms);

}  // namespace numacma::shared
