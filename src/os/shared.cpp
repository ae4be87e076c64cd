// src/os/shared.cpp — see shared.hpp.
#include "os/shared.hpp"

#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <mutex>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <vector>

#include "os/errno_error.hpp"

namespace numacma::os {

namespace {

Error err(const std::string& what) {
  const int e = errno;
  if (e == EEXIST) return errno_error(Errc::busy, what, e);
  return errno_error(what, e);
}

std::string octal(unsigned mode) {
  char b[8];
  std::snprintf(b, sizeof b, "0%o", mode & 07777);
  return b;
}

}  // namespace

Result<Fd> open_rw(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) return err("open(" + path + ", O_RDWR)");
  return Fd(fd);
}

Result<Fd> open_ro(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return err("open(" + path + ", O_RDONLY)");
  return Fd(fd);
}

Result<Fd> create_exclusive(const std::string& path, unsigned mode, long gid) {
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, mode & 0777);
  if (fd < 0) return err("open(" + path + ", O_CREAT | O_EXCL, " + octal(mode) + ")");
  Fd f(fd);
  if (gid >= 0 && ::fchown(fd, static_cast<uid_t>(-1), static_cast<gid_t>(gid)) != 0)
    return err("fchown(" + path + ", group " + std::to_string(gid) + ")");
  if (::fchmod(fd, mode & 0777) != 0) return err("fchmod(" + path + ", " + octal(mode) + ")");
  return f;
}

Status make_dir(const std::string& path, unsigned mode, long gid) {
  if (::mkdir(path.c_str(), mode & 0777) != 0) return err("mkdir(" + path + ")");
  if (gid >= 0 && ::chown(path.c_str(), static_cast<uid_t>(-1), static_cast<gid_t>(gid)) != 0)
    return err("chown(" + path + ", group " + std::to_string(gid) + ")");
  if (::chmod(path.c_str(), mode & 0777) != 0) return err("chmod(" + path + ", " + octal(mode) + ")");
  return {};
}

Status remove_dir(const std::string& path) {
  if (::rmdir(path.c_str()) != 0 && errno != ENOENT) return err("rmdir(" + path + ")");
  return {};
}

Status rename_path(const std::string& from, const std::string& to) {
  if (::rename(from.c_str(), to.c_str()) != 0) return err("rename(" + from + ", " + to + ")");
  return {};
}

namespace {
FileInfo info_of(const struct stat& st) {
  FileInfo i;
  i.size = static_cast<std::uint64_t>(st.st_size);
  i.uid = st.st_uid;
  i.gid = st.st_gid;
  i.mode = st.st_mode & 07777;
  return i;
}
}  // namespace

Result<FileInfo> file_info(int fd) {
  struct stat st;
  if (::fstat(fd, &st) != 0) return err("fstat(" + std::to_string(fd) + ")");
  return info_of(st);
}

Result<FileInfo> path_info(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return err("stat(" + path + ")");
  return info_of(st);
}

Status write_at(int fd, const void* data, std::size_t bytes, std::uint64_t offset) {
  const auto* p = static_cast<const char*>(data);
  while (bytes > 0) {
    const ssize_t n = ::pwrite(fd, p, bytes, static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      return err("pwrite(" + std::to_string(fd) + ")");
    }
    p += n;
    bytes -= static_cast<std::size_t>(n);
    offset += static_cast<std::uint64_t>(n);
  }
  return {};
}

Status sync_fd(int fd) {
  if (::fsync(fd) != 0) return err("fsync(" + std::to_string(fd) + ")");
  return {};
}

Result<Fd> lock_path(const std::string& path, bool exclusive) {
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return err("open(" + path + ")");
  Fd f(fd);
  while (::flock(fd, exclusive ? LOCK_EX : LOCK_SH) != 0) {
    if (errno != EINTR) return err("flock(" + path + ")");
  }
  return f;
}

int self_pid() noexcept { return static_cast<int>(::getpid()); }
std::uint32_t self_uid() noexcept { return static_cast<std::uint32_t>(::getuid()); }

Result<std::uint64_t> process_start_time(int pid) {
  const std::string path = "/proc/" + std::to_string(pid) + "/stat";
  std::ifstream f(path);
  std::string line;
  if (!f || !std::getline(f, line))
    return make_error(Errc::not_found, "no process " + std::to_string(pid) + " (" + path + ")");
  // comm may hold spaces and parentheses: the fields start after the last ')'.
  const std::size_t close = line.rfind(')');
  if (close == std::string::npos) return make_error(Errc::io_error, path + ": unexpected format");
  std::istringstream in(line.substr(close + 1));
  std::string tok;
  // Field 3 (state) is the first after ')'; starttime is field 22.
  for (int field = 3; field <= 22; ++field) {
    if (!(in >> tok)) return make_error(Errc::io_error, path + ": too few fields");
  }
  try {
    return static_cast<std::uint64_t>(std::stoull(tok));
  } catch (...) {
    return make_error(Errc::io_error, path + ": bad starttime '" + tok + "'");
  }
}

bool process_alive(int pid, std::uint64_t start_time) noexcept {
  if (pid <= 0) return false;
  Result<std::uint64_t> st = process_start_time(pid);
  if (!st) return false;
  if (*st != start_time) return false;
  // A zombie has not run since it died: treat it as dead.
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(f, line)) return false;
  const std::size_t close = line.rfind(')');
  return close == std::string::npos || close + 2 >= line.size() || line[close + 2] != 'Z';
}

std::string process_comm(int pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/comm");
  std::string s;
  std::getline(f, s);
  return s;
}

Result<std::uint32_t> group_id(const std::string& group) {
  if (!group.empty() && group.find_first_not_of("0123456789") == std::string::npos)
    return static_cast<std::uint32_t>(std::stoul(group));
  struct group g;
  struct group* out = nullptr;
  std::string buf(16384, '\0');
  const int e = ::getgrnam_r(group.c_str(), &g, buf.data(), buf.size(), &out);
  if (e != 0) return errno_error("getgrnam_r(" + group + ")", e);
  if (out == nullptr) return make_error(Errc::not_found, "no group named '" + group + "'");
  return static_cast<std::uint32_t>(out->gr_gid);
}

namespace {
std::atomic<unsigned> g_forks{0};
std::mutex g_fork_mu;           // held across fork(): the list is whole in the child
std::vector<int> g_close_at_fork;
void before_fork() { g_fork_mu.lock(); }
void after_fork_parent() { g_fork_mu.unlock(); }
void after_fork_child() {
  g_forks.fetch_add(1, std::memory_order_relaxed);
  for (int fd : g_close_at_fork) ::close(fd);
  g_close_at_fork.clear();
  g_fork_mu.unlock();
}
}  // namespace

void watch_forks() {
  static std::once_flag once;
  std::call_once(once, [] { (void)pthread_atfork(before_fork, after_fork_parent, after_fork_child); });
}

unsigned fork_generation() noexcept { return g_forks.load(std::memory_order_relaxed); }

void close_at_fork(int fd) {
  watch_forks();
  std::lock_guard<std::mutex> lock(g_fork_mu);
  g_close_at_fork.push_back(fd);
}

void keep_at_fork(int fd) {
  std::lock_guard<std::mutex> lock(g_fork_mu);
  std::erase(g_close_at_fork, fd);
}

std::uint64_t realtime_ns() noexcept {
  timespec t{};
  clock_gettime(CLOCK_REALTIME, &t);
  return static_cast<std::uint64_t>(t.tv_sec) * 1000000000ULL + static_cast<std::uint64_t>(t.tv_nsec);
}

std::uint64_t monotonic_ns() noexcept {
  timespec t{};
  clock_gettime(CLOCK_MONOTONIC, &t);
  return static_cast<std::uint64_t>(t.tv_sec) * 1000000000ULL + static_cast<std::uint64_t>(t.tv_nsec);
}

Result<std::string> hugetlbfs_mount(std::uint64_t huge_page_bytes) {
  std::ifstream f("/proc/mounts");
  std::string dev, dir, type, opts;
  const std::uint64_t default_hp = 2ULL << 20;
  while (f >> dev >> dir >> type >> opts) {
    std::string rest;
    std::getline(f, rest);
    if (type != "hugetlbfs") continue;
    std::uint64_t hp = default_hp;
    if (const std::size_t p = opts.find("pagesize="); p != std::string::npos) {
      const std::string v = opts.substr(p + 9, opts.find(',', p) - (p + 9));
      hp = std::stoull(v) << (v.back() == 'G' ? 30 : v.back() == 'M' ? 20 : v.back() == 'K' ? 10 : 0);
    }
    if (hp == huge_page_bytes) return dir;
  }
  return make_error(Errc::not_found, "no hugetlbfs with " + std::to_string(huge_page_bytes >> 20) +
                                         " MiB pages is mounted (/proc/mounts); mount one, e.g. "
                                         "mount -t hugetlbfs -o pagesize=2M none /dev/hugepages");
}

}  // namespace numacma::os
