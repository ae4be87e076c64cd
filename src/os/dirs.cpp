// src/os/dirs.cpp — see dirs.hpp.
#include "os/dirs.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "os/dir_names.hpp"
#include "os/errno_error.hpp"
#include "os/os.hpp"

namespace numacma::os {

namespace {

std::string octal(unsigned mode) {
  char b[8];
  std::snprintf(b, sizeof b, "0%o", mode & 07777);
  return b;
}

/** Why a directory must not be trusted, or "" when it may. */
std::string distrust(const struct stat& st, long also_owner) {
  const auto me = static_cast<std::uint32_t>(::geteuid());
  if (st.st_uid != me && st.st_uid != 0 && (also_owner < 0 || st.st_uid != static_cast<uid_t>(also_owner)))
    return "is owned by uid " + std::to_string(st.st_uid) + ", neither this user (uid " + std::to_string(me) +
           ") nor root";
  if ((st.st_mode & S_IWOTH) != 0) return "is writable by others (mode " + octal(st.st_mode) + ")";
  if ((st.st_mode & S_IWGRP) != 0) return "is writable by its group (mode " + octal(st.st_mode) + ")";
  return "";
}

Result<Fd> check_dir(Fd fd, const std::string& shown, long also_owner) {
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return errno_error("fstat(" + shown + ")", errno);
  if (!S_ISDIR(st.st_mode)) return make_error(Errc::permission, shown + " is not a directory");
  if (std::string why = distrust(st, also_owner); !why.empty())
    return make_error(Errc::permission, shown + " " + why + ": numacma trusts only directories that no other "
                                                         "user can change");
  return fd;
}

Error open_error(const std::string& shown, int e) {
  if (e == ELOOP || e == ENOTDIR)
    return with_errno(make_error(Errc::permission, shown + " is a symbolic link or not a directory: refused (" +
                                                       std::strerror(e) + ")"),
                      e);
  return errno_error("open(" + shown + ")", e);
}

}  // namespace

Result<Fd> open_trusted_dir(const std::string& path, bool create) {
  if (path.empty() || path.front() != '/')
    return make_error(Errc::invalid_argument, "'" + path + "' is not an absolute path");
  std::string p = path;
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  if (create) {
    if (Status s = make_dirs(p); !s) return std::move(s).error();
  }
  const int fd = ::open(p.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return open_error(p, errno);
  return check_dir(Fd(fd), p, -1);
}

Result<Fd> open_dir_at(int dir, const std::string& name, bool create, unsigned mode, long gid,
                       long also_owner, bool* created) {
  if (name.empty() || name.find('/') != std::string::npos || name == "." || name == "..")
    return make_error(Errc::invalid_argument, "'" + name + "' is not one path component");
  if (created != nullptr) *created = false;
  if (create) {
    if (::mkdirat(dir, name.c_str(), mode & 0777) == 0) {
      if (created != nullptr) *created = true;
      const int fd = ::openat(dir, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (fd < 0) return open_error(name, errno);
      Fd f(fd);
      if (gid >= 0 && ::fchown(fd, static_cast<uid_t>(-1), static_cast<gid_t>(gid)) != 0)
        return errno_error("fchown(" + name + ", group " + std::to_string(gid) + ")", errno);
      if (::fchmod(fd, mode & 0777) != 0) return errno_error("fchmod(" + name + ", " + octal(mode) + ")", errno);
      return check_dir(std::move(f), name, also_owner);
    }
    if (errno != EEXIST) return errno_error("mkdir(" + name + ")", errno);
  }
  const int fd = ::openat(dir, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return open_error(name, errno);
  return check_dir(Fd(fd), name, also_owner);
}

Result<DirInfo> fd_owner(int fd) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return errno_error("fstat", errno);
  return DirInfo{st.st_uid, st.st_gid, static_cast<std::uint32_t>(st.st_mode & 07777)};
}

Result<EntryInfo> stat_at(int dir, const std::string& name) {
  struct stat st {};
  if (::fstatat(dir, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) return errno_error("stat(" + name + ")", errno);
  EntryInfo e;
  e.is_dir = S_ISDIR(st.st_mode);
  e.is_socket = S_ISSOCK(st.st_mode);
  e.is_regular = S_ISREG(st.st_mode);
  e.is_link = S_ISLNK(st.st_mode);
  e.uid = st.st_uid;
  e.gid = st.st_gid;
  e.mode = st.st_mode & 07777;
  e.size = static_cast<std::uint64_t>(st.st_size);
  e.ino = static_cast<std::uint64_t>(st.st_ino);
  e.nlink = static_cast<std::uint64_t>(st.st_nlink);
  return e;
}

Result<Fd> lock_at(int dir, const std::string& name) {
  const int fd = ::openat(dir, name.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) {
    if (errno == ELOOP) return make_error(Errc::permission, name + " is a symbolic link: refused");
    return errno_error("open(" + name + ")", errno);
  }
  Fd f(fd);
  struct stat st {};
  if (::fstat(fd, &st) != 0) return errno_error("fstat(" + name + ")", errno);
  if (!S_ISREG(st.st_mode) || (st.st_uid != ::geteuid() && st.st_uid != 0))
    return make_error(Errc::permission, name + " is not a regular file of this user or root: refused");
  while (::flock(fd, LOCK_EX) != 0)
    if (errno != EINTR) return errno_error("flock(" + name + ")", errno);
  return f;
}

Status unlink_at(int dir, const std::string& name, bool directory) {
  if (::unlinkat(dir, name.c_str(), directory ? AT_REMOVEDIR : 0) != 0 && errno != ENOENT)
    return errno_error(std::string(directory ? "rmdir(" : "unlink(") + name + ")", errno);
  return {};
}

Result<std::vector<std::string>> list_at(int dir, const std::string& name) {
  const int fd = ::openat(dir, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return open_error(name, errno);
  DIR* d = ::fdopendir(fd);
  if (d == nullptr) {
    const int e = errno;
    ::close(fd);
    return errno_error("fdopendir(" + name + ")", e);
  }
  return read_names(d);
}

Status write_file_at(int dir, const std::string& name, const std::string& text) {
  const int fd = ::openat(dir, name.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (fd < 0) {
    if (errno == ELOOP) return make_error(Errc::permission, name + " is a symbolic link: refused");
    return errno_error("open(" + name + ")", errno);
  }
  Fd f(fd);
  const char* p = text.data();
  std::size_t left = text.size();
  while (left > 0) {
    const ssize_t n = ::write(fd, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno_error("write(" + name + ")", errno);
    }
    p += n;
    left -= static_cast<std::size_t>(n);
  }
  return {};
}

Result<std::string> read_file_at(int dir, const std::string& name) {
  const int fd = ::openat(dir, name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ELOOP) return make_error(Errc::permission, name + " is a symbolic link: refused");
    return errno_error("open(" + name + ")", errno);
  }
  Fd f(fd);
  return read_fd(fd, name, 1u << 20);
}

std::string path_of(int dir, const std::string& name) {
  return "/proc/self/fd/" + std::to_string(dir) + "/" + name;
}

std::string describe(const DirInfo& d) {
  return "owned by uid " + std::to_string(d.uid) + ", group " + std::to_string(d.gid) + ", mode " + octal(d.mode);
}

std::vector<std::uint32_t> own_groups() {
  std::vector<gid_t> g(static_cast<std::size_t>(std::max(::getgroups(0, nullptr), 0)) + 1);
  const int n = ::getgroups(static_cast<int>(g.size()), g.data());
  std::vector<std::uint32_t> out;
  for (int i = 0; i < n; ++i) out.push_back(g[static_cast<std::size_t>(i)]);
  out.push_back(::getegid());
  return out;
}

std::uint32_t self_gid() noexcept { return static_cast<std::uint32_t>(::getegid()); }

}  // namespace numacma::os
