// src/os/memfd.hpp — memory files that only their maker can resize: a shared
// pool's memory and state are memfds sealed against shrinking and growing
// (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL), so no process they are handed
// to can truncate them under another's mapping (no SIGBUS), and its layout is
// also sealed against writes (F_SEAL_WRITE): a read-only fact every process
// can check (seals_of) instead of trusting.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "numacma/result.hpp"
#include "os/fd.hpp"

namespace numacma::os {

inline constexpr unsigned kSealSeal = 0x1, kSealShrink = 0x2, kSealGrow = 0x4, kSealWrite = 0x8;

/** memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING [| MFD_HUGETLB with
 *  pages of huge_page_bytes when it is not 0]). EINVAL (a flag or page size
 *  this kernel does not know): Errc::unsupported. */
Result<Fd> memfd_sealable(const std::string& name, std::uint64_t huge_page_bytes = 0);
/** fcntl(F_ADD_SEALS). */
Status add_seals(int fd, unsigned seals);
/** fcntl(F_GET_SEALS); io_error for a descriptor that is no memfd. */
Result<unsigned> seals_of(int fd);
/** A new, read-only open of the same file (/proc/self/fd/N, O_RDONLY): a
 *  descriptor whose holder can map the file for reading only. */
Result<Fd> reopen_read_only(int fd);
/** fstat size. */
Result<std::uint64_t> fd_size(int fd);
/** mmap(nullptr, bytes, PROT_READ [| PROT_WRITE], MAP_SHARED, fd, 0). */
Result<void*> map_shared(int fd, std::size_t bytes, bool writable);
/** Makes a range of a mapping read as zeros by handing its pages back
 *  (MADV_REMOVE for a shared file mapping, MADV_DONTNEED for a private
 *  anonymous one); false when the kernel refused (the caller then writes
 *  the zeros itself). REQUIRES: page-aligned. */
bool discard(void* addr, std::size_t bytes, bool shared) noexcept;

}  // namespace numacma::os
