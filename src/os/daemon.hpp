// src/os/daemon.hpp — a process that outlives its maker (a shared pool's
// keeper): fork, setsid, fork again, standard descriptors on /dev/null, no
// descriptor inherited but those it needs.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "numacma/result.hpp"

namespace numacma::os {

/** Runs fn() in a new session's process whose parent is not the caller; it
 *  exits with fn's value. In it: SIGPIPE ignored, SIGINT/SIGTERM/SIGHUP at
 *  their defaults and no signal blocked, standard descriptors on /dev/null,
 *  every other descriptor closed except `keep`, the working directory "/",
 *  the command name `name` (at most 15 characters). The caller only reaps
 *  the intermediate process; fn says it is ready through a descriptor of
 *  `keep` (a pipe). */
Status spawn_daemon(const std::vector<int>& keep, const std::string& name, const std::function<int()>& fn);

/** SIGTERM, SIGINT and SIGHUP set a flag instead of ending the process
 *  (a daemon that cleans up before it goes). */
void catch_stop_signals();
bool stop_requested() noexcept;

/** Raises RLIMIT_NOFILE's soft limit to its hard limit (a daemon that holds
 *  a descriptor per client). */
void raise_fd_limit() noexcept;

/** Links of an open directory (0: it was removed). */
std::uint64_t link_count(int fd) noexcept;

}  // namespace numacma::os
