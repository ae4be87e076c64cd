// src/os/memfd.cpp — see memfd.hpp.
#include "os/memfd.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "os/errno_error.hpp"

#ifndef MFD_ALLOW_SEALING
#define MFD_ALLOW_SEALING 0x0002U
#endif
#ifndef MFD_HUGETLB
#define MFD_HUGETLB 0x0004U
#endif
#ifndef MFD_HUGE_SHIFT
#define MFD_HUGE_SHIFT 26
#endif
#ifndef MADV_REMOVE
#define MADV_REMOVE 9
#endif

namespace numacma::os {

Result<Fd> memfd_sealable(const std::string& name, std::uint64_t huge_page_bytes) {
  unsigned flags = MFD_CLOEXEC | MFD_ALLOW_SEALING;
  if (huge_page_bytes != 0) {
    if ((huge_page_bytes & (huge_page_bytes - 1)) != 0)
      return make_error(Errc::invalid_argument, "memfd: hugepage size is not a power of two");
    flags |= MFD_HUGETLB | (static_cast<unsigned>(__builtin_ctzll(huge_page_bytes)) << MFD_HUGE_SHIFT);
  }
  const int fd = ::memfd_create(name.c_str(), flags);
  if (fd < 0)
    return errno_error_unsupported_on_einval(
        "memfd_create(" + name +
            (huge_page_bytes != 0 ? ", MFD_HUGETLB " + std::to_string(huge_page_bytes >> 10) + " kB" : "") +
            ", MFD_ALLOW_SEALING)",
        errno);
  return Fd(fd);
}

Status add_seals(int fd, unsigned seals) {
  if (::fcntl(fd, F_ADD_SEALS, static_cast<int>(seals)) != 0)
    return errno_error("fcntl(F_ADD_SEALS, " + std::to_string(seals) + ")", errno);
  return {};
}

Result<unsigned> seals_of(int fd) {
  const int s = ::fcntl(fd, F_GET_SEALS);
  if (s < 0) return make_error(Errc::io_error, "fcntl(F_GET_SEALS): not a sealable memory file");
  return static_cast<unsigned>(s);
}

Result<Fd> reopen_read_only(int fd) {
  const std::string p = "/proc/self/fd/" + std::to_string(fd);
  const int r = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
  if (r < 0) return errno_error("open(" + p + ", O_RDONLY)", errno);
  return Fd(r);
}

Result<std::uint64_t> fd_size(int fd) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return errno_error("fstat", errno);
  return static_cast<std::uint64_t>(st.st_size);
}

Result<void*> map_shared(int fd, std::size_t bytes, bool writable) {
  void* p = ::mmap(nullptr, bytes, PROT_READ | (writable ? PROT_WRITE : 0), MAP_SHARED, fd, 0);
  if (p == MAP_FAILED)
    return errno_error("mmap(" + std::to_string(bytes) + (writable ? ", read-write" : ", read-only") + ", MAP_SHARED)",
                       errno);
  return p;
}

bool discard(void* addr, std::size_t bytes, bool shared) noexcept {
  return ::madvise(addr, bytes, shared ? MADV_REMOVE : MADV_DONTNEED) == 0;
}

}  // namespace numacma::os
