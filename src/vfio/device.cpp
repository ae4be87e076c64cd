// src/vfio/device.cpp — see device.hpp.
#include "vfio/device.hpp"

#include <cinttypes>
#include <cstdio>
#include <utility>

namespace numacma::vfio {

namespace {

std::string hex(std::uint64_t v) {
  char b[24];
  std::snprintf(b, sizeof b, "0x%" PRIx64, v);
  return b;
}

/** Every earlier store to DMA memory is visible to the device before a
 *  register write that follows (the kernel's writel: __iowmb). x86 keeps
 *  stores in order, so the compiler is all there is to stop. */
inline void io_wmb() noexcept {
#if defined(__aarch64__)
  asm volatile("dmb oshst" ::: "memory");
#elif defined(__x86_64__) || defined(__i386__)
  asm volatile("" ::: "memory");
#else
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
#endif
}

/** A register read completes before later loads from DMA memory (readl's
 *  __iormb): a status read, then the data the device wrote. */
inline void io_rmb() noexcept {
#if defined(__aarch64__)
  asm volatile("dmb oshld" ::: "memory");
#elif defined(__x86_64__) || defined(__i386__)
  asm volatile("" ::: "memory");
#else
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
#endif
}

}  // namespace

DeviceAccess::DeviceAccess(Kernel& kernel, DeviceInfo info, int fd) noexcept
    : k_(kernel), info_(std::move(info)), fd_(fd) {}

DeviceAccess::~DeviceAccess() {
  for (Region& r : bars_)
    if (r.map != nullptr) k_.unmap_region(r.map, r.info.size);
  if (fd_ >= 0) k_.close(fd_);
}

Result<DeviceAccess::Region*> DeviceAccess::region(unsigned bar) {
  if (bar >= kRegions) return make_error(Errc::invalid_argument, "BAR " + std::to_string(bar) + " (0..5)");
  std::lock_guard<std::mutex> lock(bars_mu_);
  Region& r = bars_[bar];
  if (!r.known) {
    Result<RegionInfo> ri = k_.region_info(fd_, bar);
    if (!ri) return std::move(ri).error();
    r.info = *ri;
    if (r.info.size != 0 && r.info.mmap_ok()) {
      if (Result<void*> m = k_.map_region(fd_, r.info)) r.map = *m;  // else pread/pwrite
    }
    r.known = true;
  }
  if (r.info.size == 0) return make_error(Errc::not_found, info_.bdf + " has no BAR " + std::to_string(bar));
  return &r;
}

Result<std::uint64_t> DeviceAccess::bar_size(unsigned bar) {
  Result<Region*> r = region(bar);
  if (!r) return std::move(r).error();
  return (*r)->info.size;
}

/** A register read of sizeof(T) bytes: through the BAR's mmap, else pread. */
template <class T>
Result<T> DeviceAccess::reg_read(unsigned bar, std::uint64_t off) {
  Result<Region*> r = region(bar);
  if (!r) return std::move(r).error();
  const Region& reg = **r;
  if (off % sizeof(T) != 0 || off + sizeof(T) > reg.info.size)
    return make_error(Errc::invalid_argument, "BAR" + std::to_string(bar) + " read" +
                                                  std::to_string(8 * sizeof(T)) + " at " + hex(off));
  T v = 0;
  if (reg.map != nullptr) {
    v = *reinterpret_cast<volatile T*>(static_cast<std::uint8_t*>(reg.map) + off);
    io_rmb();
    return v;
  }
  if (Status s = k_.read_at(fd_, reg.info.offset + off, &v, sizeof(T)); !s) return std::move(s).error();
  return v;
}

/** A register write of sizeof(T) bytes, after every earlier store to DMA memory. */
template <class T>
Status DeviceAccess::reg_write(unsigned bar, std::uint64_t off, T v) {
  Result<Region*> r = region(bar);
  if (!r) return std::move(r).error();
  const Region& reg = **r;
  if (off % sizeof(T) != 0 || off + sizeof(T) > reg.info.size)
    return make_error(Errc::invalid_argument, "BAR" + std::to_string(bar) + " write" +
                                                  std::to_string(8 * sizeof(T)) + " at " + hex(off));
  if (reg.map != nullptr) {
    io_wmb();
    *reinterpret_cast<volatile T*>(static_cast<std::uint8_t*>(reg.map) + off) = v;
    return {};
  }
  return k_.write_at(fd_, reg.info.offset + off, &v, sizeof(T));
}

Result<std::uint32_t> DeviceAccess::read32(unsigned bar, std::uint64_t off) {
  return reg_read<std::uint32_t>(bar, off);
}
Status DeviceAccess::write32(unsigned bar, std::uint64_t off, std::uint32_t v) {
  return reg_write<std::uint32_t>(bar, off, v);
}
Result<std::uint64_t> DeviceAccess::read64(unsigned bar, std::uint64_t off) {
  return reg_read<std::uint64_t>(bar, off);
}
Status DeviceAccess::write64(unsigned bar, std::uint64_t off, std::uint64_t v) {
  return reg_write<std::uint64_t>(bar, off, v);
}

/** The config space region, checked to hold [off, off + len). */
Result<RegionInfo> DeviceAccess::config_region(std::uint32_t off, std::size_t len, const char* what) {
  Result<RegionInfo> ri = k_.region_info(fd_, k_.config_region_index());
  if (!ri) return ri;
  if (off + len > ri->size)
    return make_error(Errc::invalid_argument,
                      std::string("config ") + what + " past " + std::to_string(ri->size) + " bytes");
  return ri;
}

Status DeviceAccess::config_read(std::uint32_t off, void* out, std::size_t len) {
  Result<RegionInfo> ri = config_region(off, len, "read");
  if (!ri) return std::move(ri).error();
  return k_.read_at(fd_, ri->offset + off, out, len);
}

Status DeviceAccess::config_write(std::uint32_t off, const void* in, std::size_t len) {
  Result<RegionInfo> ri = config_region(off, len, "write");
  if (!ri) return std::move(ri).error();
  return k_.write_at(fd_, ri->offset + off, in, len);
}

}  // namespace numacma::vfio
