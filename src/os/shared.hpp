// src/os/shared.hpp — the system calls of shared pools (src/shared): files
// with owners and modes, whole-file locks, and who a process is (pid, start
// time, command name), what happens to it at fork.
// Same conventions as os.hpp: Result<> errors naming the call, its argument
// and strerror(errno); EACCES/EPERM -> Errc::permission, ENOENT ->
// Errc::not_found, EEXIST -> Errc::busy.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "numacma/result.hpp"
#include "os/fd.hpp"

namespace numacma::os {

/** open(path, O_RDWR | O_CLOEXEC). */
Result<Fd> open_rw(const std::string& path);
/** open(path, O_RDONLY | O_CLOEXEC). */
Result<Fd> open_ro(const std::string& path);
/** open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, mode); then fchown to
 *  gid (when gid >= 0) and fchmod to mode (the umask does not apply). */
Result<Fd> create_exclusive(const std::string& path, unsigned mode, long gid);
/** mkdir(path, mode) (an existing directory is busy), then chown/chmod as above. */
Status make_dir(const std::string& path, unsigned mode, long gid);
/** rmdir. A missing one is fine. */
Status remove_dir(const std::string& path);
/** rename(from, to). */
Status rename_path(const std::string& from, const std::string& to);

struct FileInfo {
  std::uint64_t size = 0;
  std::uint32_t uid = 0, gid = 0, mode = 0;  ///< mode: permission bits only
};
Result<FileInfo> file_info(int fd);
Result<FileInfo> path_info(const std::string& path);

/** pwrite of the whole buffer at offset. */
Status write_at(int fd, const void* data, std::size_t bytes, std::uint64_t offset);
/** fsync. */
Status sync_fd(int fd);


/** flock(fd, LOCK_EX or LOCK_SH) on path (created 0600 if missing), held
 *  until the Fd is closed. */
Result<Fd> lock_path(const std::string& path, bool exclusive);

// ---- processes ----------------------------------------------------------------

int self_pid() noexcept;
std::uint32_t self_uid() noexcept;
/** Field 22 (starttime, clock ticks after boot) of /proc/PID/stat;
 *  not_found when no such process. */
Result<std::uint64_t> process_start_time(int pid);
/** The same process (pid and start time) still runs. */
bool process_alive(int pid, std::uint64_t start_time) noexcept;
/** /proc/PID/comm without its newline ("" when unreadable). */
std::string process_comm(int pid);
/** A group by name or number: its gid; not_found otherwise. */
Result<std::uint32_t> group_id(const std::string& group);
/** CLOCK_REALTIME and CLOCK_MONOTONIC in ns. */
std::uint64_t realtime_ns() noexcept;
std::uint64_t monotonic_ns() noexcept;

/** Counts the forks the calling process descends from, once watch_forks()
 *  has been called (pthread_atfork: each child increments it). A value saved
 *  before a fork differs in the child: what a process registered (a holder
 *  slot) is not the child's. */
void watch_forks();
unsigned fork_generation() noexcept;
/** A descriptor that a child made by fork() must not keep: the child closes
 *  it at once (a pool's connection to its keeper, whose closing tells the
 *  keeper that its process is gone). keep_at_fork takes it off the list. */
void close_at_fork(int fd);
void keep_at_fork(int fd);

/** The mount point of a hugetlbfs with pages of `huge_page_bytes` (its
 *  pagesize= option, or the default hugepage size when none is given) from
 *  /proc/mounts; not_found when none is mounted. */
Result<std::string> hugetlbfs_mount(std::uint64_t huge_page_bytes);

}  // namespace numacma::os
