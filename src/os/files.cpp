// src/os/files.cpp — file access under sysfs (and elsewhere), errors as values.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "os/dir_names.hpp"
#include "os/errno_error.hpp"
#include "os/os.hpp"

namespace numacma::os {

Result<std::string> read_fd(int fd, const std::string& name, std::size_t limit) {
  std::string out;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno_error("read(" + name + ")", errno);
    }
    if (n == 0) return out;
    out.append(buf, static_cast<std::size_t>(n));
    if (out.size() > limit)
      return make_error(Errc::io_error, "read(" + name + "): larger than " + std::to_string(limit >> 20) + " MiB");
  }
}

Result<std::string> read_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno_error("open(" + path + ")", errno);
  Result<std::string> out = read_fd(fd, path, 64u << 20);
  ::close(fd);
  return out;
}

Result<std::vector<std::string>> list_dir(const std::string& path) {
  DIR* d = ::opendir(path.c_str());
  if (d == nullptr) return errno_error("opendir(" + path + ")", errno);
  return read_names(d);
}

Result<std::vector<std::string>> list_subdirs(const std::string& path) {
  DIR* d = ::opendir(path.c_str());
  if (d == nullptr) return errno_error("opendir(" + path + ")", errno);
  std::vector<std::string> names;
  while (const dirent* e = ::readdir(d)) {
    if (std::strcmp(e->d_name, ".") == 0 || std::strcmp(e->d_name, "..") == 0) continue;
    bool dir = e->d_type == DT_DIR;
    if (e->d_type == DT_UNKNOWN) {  // file systems that do not fill d_type
      struct stat st {};
      dir = ::fstatat(::dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
    }
    if (dir) names.emplace_back(e->d_name);
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  return names;
}

bool exists(const std::string& path) noexcept {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

namespace {

/** Writes the whole text with one write(2) to a file opened with `flags`. */
Status write_all(const std::string& path, const std::string& text, int flags, const char* how) {
  const int fd = ::open(path.c_str(), flags | O_CLOEXEC, 0644);
  if (fd < 0) return errno_error("open(" + path + ", " + how + ")", errno);
  const ssize_t n = ::write(fd, text.data(), text.size());
  const int e = errno;
  ::close(fd);
  if (n < 0) return errno_error("write(" + path + ")", e);
  if (static_cast<std::size_t>(n) != text.size())
    return make_error(Errc::io_error, "write(" + path + "): short write");
  return {};
}

}  // namespace

Status can_read(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno_error("open(" + path + ")", errno);
  ::close(fd);
  return {};
}

Status can_create(const std::string& path) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return errno_error("open(" + path + ", O_CREAT)", errno);
  ::close(fd);
  return {};
}

Status write_file(const std::string& path, const std::string& text) {
  return write_all(path, text, O_WRONLY, "O_WRONLY");
}

Result<std::string> read_link(const std::string& path) {
  char buf[4096];
  const ssize_t n = ::readlink(path.c_str(), buf, sizeof buf);
  if (n < 0) return errno_error("readlink(" + path + ")", errno);
  if (static_cast<std::size_t>(n) == sizeof buf)
    return make_error(Errc::io_error, "readlink(" + path + "): target too long");
  return std::string(buf, static_cast<std::size_t>(n));
}

Status make_dirs(const std::string& path) {
  for (std::size_t i = 1; i <= path.size(); ++i) {
    if (i != path.size() && path[i] != '/') continue;
    const std::string prefix = path.substr(0, i);
    if (::mkdir(prefix.c_str(), 0755) != 0 && errno != EEXIST)
      return errno_error("mkdir(" + prefix + ")", errno);
  }
  return {};
}

Status remove_file(const std::string& path) {
  if (::unlink(path.c_str()) != 0 && errno != ENOENT)
    return errno_error("unlink(" + path + ")", errno);
  return {};
}

Status write_new_file(const std::string& path, const std::string& text) {
  return write_all(path, text, O_WRONLY | O_CREAT | O_TRUNC, "O_CREAT");
}

std::string env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::string(v) : fallback;
}

bool is_root() noexcept { return ::geteuid() == 0; }

std::size_t page_size() noexcept {
  static const std::size_t p = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  return p;
}

}  // namespace numacma::os
