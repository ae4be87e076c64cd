// src/os/memory.cpp — mappings, NUMA binding, locking, placement and physical
// addresses: the memory half of the OS contract in os.hpp.
//
//   map_*  ->  bind_to_node (mbind, strict)  ->  populate (MADV_POPULATE_WRITE)
//          ->  lock (mlock)  ->  page_nodes (move_pages query) / physical_addresses (pagemap)
//
// memfd_hugetlb/truncate_file/reserve_range/map_file are the pieces of a
// hugetlbfs file mapped page by page at chosen addresses (backing/hugetlb_file).
//
// populate() uses MADV_POPULATE_WRITE because a hugetlb fault on a node with no
// free hugepages is a SIGBUS when touched, but an error code through madvise.
#include <fcntl.h>
#include <numaif.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <vector>

#include "os/errno_error.hpp"
#include "os/os.hpp"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
#ifndef MFD_HUGE_SHIFT
#define MFD_HUGE_SHIFT 26
#endif
#ifndef MFD_HUGETLB
#define MFD_HUGETLB 0x0004U
#endif
#ifndef MAP_HUGE_SHIFT
#define MAP_HUGE_SHIFT 26
#endif

namespace numacma::os {

namespace {

std::string where(const void* addr, std::size_t bytes) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%p, %zu", addr, bytes);
  return buf;
}

}  // namespace

Result<void*> map_anonymous(std::size_t bytes, bool noreserve) {
  int flags = MAP_PRIVATE | MAP_ANONYMOUS | (noreserve ? MAP_NORESERVE : 0);
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, flags, -1, 0);
  if (p == MAP_FAILED) return errno_error("mmap(anonymous, " + std::to_string(bytes) + ")", errno);
  return p;
}

Result<void*> map_anonymous_aligned(std::size_t bytes, std::size_t align) {
  if (align == 0 || (align & (align - 1)) != 0 || bytes + align < bytes)
    return make_error(Errc::invalid_argument, "map_anonymous_aligned: bad alignment");
  Result<void*> m = map_anonymous(bytes + align);
  if (!m) return m;
  const auto base = reinterpret_cast<std::uintptr_t>(*m);
  const std::uintptr_t start = (base + align - 1) & ~(static_cast<std::uintptr_t>(align) - 1);
  if (start > base) (void)::munmap(*m, start - base);  // trim the head and the tail
  const std::uintptr_t tail = base + bytes + align - (start + bytes);
  if (tail != 0) (void)::munmap(reinterpret_cast<void*>(start + bytes), tail);
  return reinterpret_cast<void*>(start);
}

Result<void*> map_hugetlb(std::size_t bytes, std::uint64_t huge_page_bytes) {
  if (huge_page_bytes == 0 || (huge_page_bytes & (huge_page_bytes - 1)) != 0 || bytes % huge_page_bytes != 0)
    return make_error(Errc::invalid_argument, "map_hugetlb: size is not a multiple of the hugepage size");
  const int shift = __builtin_ctzll(huge_page_bytes);
  const int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | (shift << MAP_HUGE_SHIFT);
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, flags, -1, 0);
  if (p == MAP_FAILED)
    return errno_error_unsupported_on_einval(
        "mmap(MAP_HUGETLB " + std::to_string(huge_page_bytes >> 10) + " kB pages, " + std::to_string(bytes) + ")",
        errno);
  return p;
}

Result<int> memfd_hugetlb(const std::string& name, std::uint64_t huge_page_bytes) {
  if (huge_page_bytes == 0 || (huge_page_bytes & (huge_page_bytes - 1)) != 0)
    return make_error(Errc::invalid_argument, "memfd_hugetlb: hugepage size is not a power of two");
  const unsigned shift = static_cast<unsigned>(__builtin_ctzll(huge_page_bytes));
  const int fd = ::memfd_create(name.c_str(), MFD_CLOEXEC | MFD_HUGETLB | (shift << MFD_HUGE_SHIFT));
  if (fd < 0)
    return errno_error_unsupported_on_einval(
        "memfd_create(" + name + ", MFD_HUGETLB " + std::to_string(huge_page_bytes >> 10) + " kB pages)", errno);
  return fd;
}

Status truncate_file(int fd, std::uint64_t bytes) {
  if (::ftruncate(fd, static_cast<off_t>(bytes)) != 0)
    return errno_error("ftruncate(fd " + std::to_string(fd) + ", " + std::to_string(bytes) + ")", errno);
  return {};
}

Status close_fd(int fd) {
  if (::close(fd) != 0) return errno_error("close(fd " + std::to_string(fd) + ")", errno);
  return {};
}

Result<void*> reserve_range(std::size_t bytes, std::size_t align) {
  if (align == 0 || (align & (align - 1)) != 0 || bytes + align < bytes)
    return make_error(Errc::invalid_argument, "reserve_range: bad alignment");
  const std::size_t len = bytes + align;
  void* p = ::mmap(nullptr, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) return errno_error("mmap(PROT_NONE, " + std::to_string(len) + ")", errno);
  const auto base = reinterpret_cast<std::uintptr_t>(p);
  const std::uintptr_t start = (base + align - 1) & ~(static_cast<std::uintptr_t>(align) - 1);
  if (start > base) (void)::munmap(p, start - base);  // trim the head and the tail
  const std::uintptr_t tail = base + len - (start + bytes);
  if (tail != 0) (void)::munmap(reinterpret_cast<void*>(start + bytes), tail);
  return reinterpret_cast<void*>(start);
}

Result<void*> map_file(int fd, std::size_t bytes, std::uint64_t offset, void* at) {
  const int flags = MAP_SHARED | (at != nullptr ? MAP_FIXED : 0);
  void* p = ::mmap(at, bytes, PROT_READ | PROT_WRITE, flags, fd, static_cast<off_t>(offset));
  if (p == MAP_FAILED)
    return errno_error("mmap(" + (at != nullptr ? "MAP_FIXED " + where(at, bytes) : std::to_string(bytes)) +
                           ", MAP_SHARED, fd " + std::to_string(fd) + ", offset " + std::to_string(offset) + ")",
                       errno);
  return p;
}

Status unmap(void* addr, std::size_t bytes) {
  if (::munmap(addr, bytes) != 0) return errno_error("munmap(" + where(addr, bytes) + ")", errno);
  return {};
}

Status bind_to_node(void* addr, std::size_t bytes, int node) {
  constexpr int kMaxNodes = 1024;
  if (node < 0 || node >= kMaxNodes)
    return make_error(Errc::invalid_argument, "mbind: node " + std::to_string(node) + " out of range");
  unsigned long mask[kMaxNodes / (8 * sizeof(unsigned long))] = {};
  mask[static_cast<unsigned>(node) / (8 * sizeof(unsigned long))] |=
      1UL << (static_cast<unsigned>(node) % (8 * sizeof(unsigned long)));
  if (::mbind(addr, bytes, MPOL_BIND, mask, kMaxNodes + 1, MPOL_MF_STRICT | MPOL_MF_MOVE) != 0)
    return errno_error("mbind(" + where(addr, bytes) + ", node " + std::to_string(node) + ")", errno);
  return {};
}

Status populate(void* addr, std::size_t bytes, std::size_t step) {
  if (::madvise(addr, bytes, MADV_POPULATE_WRITE) == 0) return {};
  const int e = errno;
  if (e != EINVAL) return errno_error("madvise(MADV_POPULATE_WRITE, " + where(addr, bytes) + ")", e);
  // Kernels before 5.14: touch every page (a hugetlb mapping never gets here:
  // the caller checked free hugepages first).
  auto* p = static_cast<volatile char*>(addr);
  for (std::size_t off = 0; off < bytes; off += step) p[off] = 0;
  return {};
}

Status lock(void* addr, std::size_t bytes) {
  if (::mlock(addr, bytes) != 0) return errno_error("mlock(" + where(addr, bytes) + ")", errno);
  return {};
}

Status unlock(void* addr, std::size_t bytes) {
  if (::munlock(addr, bytes) != 0) return errno_error("munlock(" + where(addr, bytes) + ")", errno);
  return {};
}

Result<std::vector<int>> page_nodes(const void* addr, std::size_t bytes, std::size_t step) {
  const std::size_t n = (bytes + step - 1) / step;
  std::vector<void*> pages(n);
  std::vector<int> status(n, -1);
  for (std::size_t i = 0; i < n; ++i)
    pages[i] = const_cast<char*>(static_cast<const char*>(addr)) + i * step;
  if (::move_pages(0, n, pages.data(), nullptr, status.data(), 0) != 0)
    return errno_error("move_pages(query, " + where(addr, bytes) + ")", errno);
  return status;
}

Result<std::vector<std::uint64_t>> physical_addresses(const void* addr, std::size_t bytes,
                                                       std::size_t step) {
  const int fd = ::open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno_error("open(/proc/self/pagemap)", errno);
  const std::size_t psz = page_size();
  const std::size_t n = (bytes + step - 1) / step;
  std::vector<std::uint64_t> out(n);
  bool any_nonzero = false;
  for (std::size_t i = 0; i < n; ++i) {
    const auto va = reinterpret_cast<std::uintptr_t>(addr) + i * step;
    std::uint64_t entry = 0;
    const off_t off = static_cast<off_t>(va / psz * sizeof entry);
    if (::pread(fd, &entry, sizeof entry, off) != static_cast<ssize_t>(sizeof entry)) {
      const int e = errno;
      ::close(fd);
      return errno_error("pread(/proc/self/pagemap)", e);
    }
    if ((entry >> 63) == 0) {
      ::close(fd);
      return make_error(Errc::io_error, "pagemap: page " + where(reinterpret_cast<void*>(va), step) +
                                            " is not present");
    }
    const std::uint64_t pfn = entry & ((std::uint64_t{1} << 55) - 1);
    any_nonzero |= pfn != 0;
    out[i] = pfn * psz + va % psz;
  }
  ::close(fd);
  if (!any_nonzero)
    return make_error(Errc::permission, "pagemap: PFNs hidden (needs CAP_SYS_ADMIN)");
  return out;
}

bool physical_addresses_readable() noexcept {
  Result<void*> m = map_anonymous(page_size());
  if (!m) return false;
  bool ok = populate(*m, page_size(), page_size()).ok() &&
            physical_addresses(*m, page_size(), page_size()).ok();
  (void)unmap(*m, page_size());
  return ok;
}

}  // namespace numacma::os
