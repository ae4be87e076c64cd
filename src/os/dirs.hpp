// src/os/dirs.hpp — directories that are checked before anything in them is
// trusted, and every path under them opened relative to the checked
// directory's descriptor (openat), never following a symbolic link.
//
//   open_trusted_dir("/run/numacma", create)     O_DIRECTORY | O_NOFOLLOW, then
//       fstat: owned by the caller or by root, writable by nobody else
//   open_dir_at(dir, "pools", create)            the same one level down
//   open_at / mkdir_at / unlink_at / stat_at     relative to a checked fd
//   path_of(dir, "sock")                         "/proc/self/fd/N/sock": a path
//       that resolves through the checked descriptor (for bind and connect,
//       which take no directory fd), whatever the directory's own path length
//
// Errors as os.hpp says; a directory that fails its check is Errc::permission
// with what is wrong and who owns it ("... is writable by its group (mode
// 0775): ..."), a symbolic link Errc::permission too.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "numacma/result.hpp"
#include "os/fd.hpp"

namespace numacma::os {

struct DirInfo {
  std::uint32_t uid = 0, gid = 0, mode = 0;  ///< mode: permission bits only
};

/** Opens `path` as a directory that may be trusted: not a symbolic link
 *  (O_NOFOLLOW on its last component), owned by the caller's uid or by root,
 *  writable by neither its group nor others. create: made (mode 0755, its
 *  parents too) when missing. */
Result<Fd> open_trusted_dir(const std::string& path, bool create);

/** Opens `name` (one component) under `dir` as a directory: O_NOFOLLOW, then
 *  the checks of open_trusted_dir, except that the owner may also be
 *  `also_owner` (>= 0). create: mkdirat with `mode` first (the umask does not
 *  apply; gid >= 0: chown to that group). A created one reports created. */
Result<Fd> open_dir_at(int dir, const std::string& name, bool create, unsigned mode = 0755,
                       long gid = -1, long also_owner = -1, bool* created = nullptr);

/** The owner and mode of an open descriptor. */
Result<DirInfo> fd_owner(int fd);

/** fstatat(dir, name, AT_SYMLINK_NOFOLLOW): not_found when missing. */
struct EntryInfo {
  bool is_dir = false, is_socket = false, is_regular = false, is_link = false;
  std::uint32_t uid = 0, gid = 0, mode = 0;
  std::uint64_t size = 0;
  std::uint64_t ino = 0;
  std::uint64_t nlink = 0;
};
Result<EntryInfo> stat_at(int dir, const std::string& name);

/** openat(dir, name, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600) and
 *  flock(LOCK_EX): held until the Fd closes. The file must be a regular file
 *  owned by the caller or root. */
Result<Fd> lock_at(int dir, const std::string& name);

/** unlinkat(dir, name, 0), or AT_REMOVEDIR for a directory; missing is fine. */
Status unlink_at(int dir, const std::string& name, bool directory = false);

/** Names in an open directory (sorted, no "." or ".."). */
Result<std::vector<std::string>> list_at(int dir, const std::string& name = ".");

/** A small file under a checked directory, written whole:
 *  openat(O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, 0644); a symbolic link
 *  there is refused (permission). */
Status write_file_at(int dir, const std::string& name, const std::string& text);
/** Its text (O_NOFOLLOW); not_found when missing. */
Result<std::string> read_file_at(int dir, const std::string& name);

/** "/proc/self/fd/<dir>/<name>". */
std::string path_of(int dir, const std::string& name);

/** The run directory's checks in words for a message ("owned by uid 1000,
 *  mode 0700"). */
std::string describe(const DirInfo& d);

/** getgroups: the caller's supplementary groups and its effective gid. */
std::vector<std::uint32_t> own_groups();
std::uint32_t self_gid() noexcept;

}  // namespace numacma::os
