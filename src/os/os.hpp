// src/os/os.hpp — the one written contract between numacma and the OS.
//
// Every system call numacma makes goes through this file: mmap/munmap,
// mbind, mlock, madvise, move_pages, /proc/self/pagemap and file reads under
// sysfs. Nothing else in the tree includes <sys/mman.h>, <numaif.h> or
// <unistd.h>.
//
// Error convention: every function returns Result<...>. On failure the Error
// carries Errc::io_error (or Errc::permission for EPERM/EACCES, Errc::no_memory
// for ENOMEM, Errc::not_found for ENOENT, Errc::unsupported for ENOSYS,
// Errc::invalid_argument for EINVAL), the errno in Error::sys_errno, and a
// message naming the call, its arguments and strerror(errno):
// "mbind(0x7f.., 2097152, node 3): Invalid argument". One function maps errno
// (errno_error.hpp); the few calls whose EINVAL means a capability the kernel
// lacks (a hugepage size it has no pool for, a memfd flag it does not know)
// say so in their own comment and give Errc::unsupported for it. Errors not
// from a system call (a refused precondition) have sys_errno 0.
// No function here throws or aborts. Preconditions are stated per function.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "numacma/result.hpp"

namespace numacma::os {

/** Base page size (sysconf(_SC_PAGESIZE)). */
std::size_t page_size() noexcept;

/** Anonymous private mapping, not populated. noreserve adds MAP_NORESERVE. */
Result<void*> map_anonymous(std::size_t bytes, bool noreserve = false);

/** Anonymous private mapping whose address is a multiple of `align` (a power
 *  of two), not populated. Unmap with unmap(addr, bytes). */
Result<void*> map_anonymous_aligned(std::size_t bytes, std::size_t align);

/** Anonymous MAP_HUGETLB mapping with pages of huge_page_bytes (2 MiB or
 *  1 GiB), not populated. REQUIRES: bytes a multiple of huge_page_bytes.
 *  EINVAL (no hugepages of that size on this kernel): Errc::unsupported. */
Result<void*> map_hugetlb(std::size_t bytes, std::uint64_t huge_page_bytes);

/** memfd_create(name, MFD_CLOEXEC | MFD_HUGETLB | MFD_HUGE_2MB or _1GB): an
 *  empty file on the internal hugetlbfs mount with pages of huge_page_bytes.
 *  Returns the descriptor; close it with close_fd. EINVAL (MFD_HUGETLB or
 *  that page size unknown to this kernel): Errc::unsupported. */
Result<int> memfd_hugetlb(const std::string& name, std::uint64_t huge_page_bytes);

/** ftruncate(fd, bytes). */
Status truncate_file(int fd, std::uint64_t bytes);

/** close(fd). */
Status close_fd(int fd);

/** An address range nobody can touch (PROT_NONE, MAP_NORESERVE, anonymous)
 *  whose address is a multiple of `align` (a power of two): a place to map
 *  file pages at with map_file(..., at). Unmap with unmap(addr, bytes). */
Result<void*> reserve_range(std::size_t bytes, std::size_t align);

/** mmap(at, bytes, PROT_READ | PROT_WRITE, MAP_SHARED [| MAP_FIXED], fd,
 *  offset): at == nullptr lets the kernel choose, else the pages replace
 *  whatever is mapped at `at` (MAP_FIXED). REQUIRES: for a hugetlbfs file,
 *  at, bytes and offset multiples of its hugepage size. */
Result<void*> map_file(int fd, std::size_t bytes, std::uint64_t offset, void* at = nullptr);

/** munmap; REQUIRES: (addr, bytes) is exactly a mapping made above. */
Status unmap(void* addr, std::size_t bytes);

/** mbind(MPOL_BIND, {node}, MPOL_MF_STRICT | MPOL_MF_MOVE) on the range. */
Status bind_to_node(void* addr, std::size_t bytes, int node);

/** Faults every page in (MADV_POPULATE_WRITE, else a write per page). */
Status populate(void* addr, std::size_t bytes, std::size_t step);

/** mlock / munlock. */
Status lock(void* addr, std::size_t bytes);
Status unlock(void* addr, std::size_t bytes);

/** move_pages(0, n, pages, NULL, status, 0): the node of each page of the
 *  range (one entry per `step` bytes); a negative entry is -errno for that
 *  page (e.g. -ENOENT: not present). */
Result<std::vector<int>> page_nodes(const void* addr, std::size_t bytes, std::size_t step);

/** Physical address of each page (one per `step` bytes) from
 *  /proc/self/pagemap. Errc::permission when the kernel hides PFNs (not
 *  CAP_SYS_ADMIN: every PFN reads 0), Errc::io_error when a page is not
 *  present. */
Result<std::vector<std::uint64_t>> physical_addresses(const void* addr, std::size_t bytes,
                                                       std::size_t step);

/** True when /proc/self/pagemap gives real PFNs to this process. */
bool physical_addresses_readable() noexcept;

/** Whole file as text (sysfs files are small; at most 64 MiB). */
Result<std::string> read_file(const std::string& path);
/** What is left to read from `fd` (EINTR retried), at most `limit` bytes
 *  (io_error beyond); `name` names it in errors. The fd stays open. */
Result<std::string> read_fd(int fd, const std::string& name, std::size_t limit);

/** Names in a directory, sorted, without "." and "..". */
Result<std::vector<std::string>> list_dir(const std::string& path);

/** Names of the directories in a directory, sorted: symbolic links (to
 *  directories too) left out, so that a walk of sysfs stays inside the
 *  device it started from. */
Result<std::vector<std::string>> list_subdirs(const std::string& path);

/** One address of a network interface, as getifaddrs(3) lists it. */
struct InterfaceAddress {
  std::string ifname;   ///< "enp5s0"
  std::string address;  ///< inet_ntop: "10.0.2.15", "fe80::5054:ff:fe12:3456"
};

/** Every IPv4 and IPv6 address of every interface (getifaddrs). */
Result<std::vector<InterfaceAddress>> interface_addresses();

/** The target of a symbolic link (sysfs: driver, iommu_group). */
Result<std::string> read_link(const std::string& path);

/** Creates a directory and its parents (mode 0755); an existing one is fine. */
Status make_dirs(const std::string& path);

/** Removes a file; a missing one is fine. */
Status remove_file(const std::string& path);

/** Writes a whole file, creating or truncating it (mode 0644). */
Status write_new_file(const std::string& path, const std::string& text);

/** The environment variable's value, or `fallback` when unset or empty. */
std::string env_or(const char* name, const std::string& fallback);

/** True when the path exists. */
bool exists(const std::string& path) noexcept;

/** The file can be opened for reading (opened and closed again): the
 *  reason in the os.hpp convention otherwise ("open(x): No such file or
 *  directory"), for a caller that reads it another way (a stream). */
Status can_read(const std::string& path);

/** The file can be written: opened O_WRONLY | O_CREAT | O_APPEND (created,
 *  empty, when it did not exist; its contents untouched) and closed. */
Status can_create(const std::string& path);

/** Write text to a file (sysfs knobs, e.g. nr_hugepages). */
Status write_file(const std::string& path, const std::string& text);

/** getuid() == 0. */
bool is_root() noexcept;

/** The CPU the calling thread runs on now (sched_getcpu), -1 when the kernel
 *  cannot tell. A hint only: the thread may move to another CPU at once. */
int current_cpu() noexcept;

}  // namespace numacma::os
