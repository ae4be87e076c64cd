// src/os/iommufd.cpp — see iommufd.hpp.
#include "os/iommufd.hpp"

#include <sys/ioctl.h>

#include <cerrno>
#include <cinttypes>
#include <cstddef>
#include <cstdio>

#include "os/errno_error.hpp"

namespace numacma::os::iommufd {

namespace {

// The stable uapi of include/uapi/linux/iommufd.h and vfio.h (Linux 6.2 and
// 6.6), declared here because the build machine's headers may predate it.
// Every structure starts with its own size, as the kernel's extensible
// ioctls require; the layouts are pinned below.
constexpr unsigned kIommufdType = ';';                  // IOMMUFD_TYPE
constexpr unsigned kIoasAlloc = 0x81, kIoasIovaRanges = 0x84, kIoasMap = 0x85, kIoasUnmap = 0x86;
constexpr unsigned kVfioType = ';', kVfioBase = 100;  // VFIO_TYPE, VFIO_BASE
constexpr unsigned kBindIommufd = kVfioBase + 18, kAttachIommufdPt = kVfioBase + 19;
constexpr std::uint32_t kMapFixedIova = 1u << 0, kMapWriteable = 1u << 1, kMapReadable = 1u << 2;

/** _IO(type, nr): no size or direction in the number (the size is the struct's first field). */
constexpr unsigned long io(unsigned type, unsigned nr) { return (type << 8) | nr; }

struct IoasAlloc {
  std::uint32_t size, flags, out_ioas_id;
};
struct IovaRange {
  std::uint64_t start, last;
};
struct IoasIovaRanges {
  std::uint32_t size, ioas_id, num_iovas, reserved;
  std::uint64_t allowed_iovas;  // user pointer to IovaRange[num_iovas]
  std::uint64_t out_iova_alignment;
};
struct IoasMap {
  std::uint32_t size, flags, ioas_id, reserved;
  std::uint64_t user_va, length, iova;
};
struct IoasUnmap {
  std::uint32_t size, ioas_id;
  std::uint64_t iova, length;
};
struct BindIommufd {
  std::uint32_t argsz, flags;
  std::int32_t iommufd;
  std::uint32_t out_devid;
};
struct AttachPt {
  std::uint32_t argsz, flags, pt_id;
};

static_assert(sizeof(IoasAlloc) == 12 && offsetof(IoasAlloc, out_ioas_id) == 8);
static_assert(sizeof(IovaRange) == 16 && offsetof(IovaRange, last) == 8);
static_assert(sizeof(IoasIovaRanges) == 32 && offsetof(IoasIovaRanges, allowed_iovas) == 16 &&
              offsetof(IoasIovaRanges, out_iova_alignment) == 24);
static_assert(sizeof(IoasMap) == 40 && offsetof(IoasMap, user_va) == 16 && offsetof(IoasMap, iova) == 32);
static_assert(sizeof(IoasUnmap) == 24 && offsetof(IoasUnmap, iova) == 8 && offsetof(IoasUnmap, length) == 16);
static_assert(sizeof(BindIommufd) == 16 && offsetof(BindIommufd, out_devid) == 12);
static_assert(sizeof(AttachPt) == 12 && offsetof(AttachPt, pt_id) == 8);

std::string hex(std::uint64_t v) {
  char b[24];
  std::snprintf(b, sizeof b, "0x%" PRIx64, v);
  return b;
}

}  // namespace

Result<std::uint32_t> ioas_alloc(int iommufd) {
  IoasAlloc a{sizeof(IoasAlloc), 0, 0};
  if (::ioctl(iommufd, io(kIommufdType, kIoasAlloc), &a) != 0) return errno_error("ioctl(IOMMU_IOAS_ALLOC)", errno);
  return a.out_ioas_id;
}

Result<IovaRanges> ioas_iova_ranges(int iommufd, std::uint32_t ioas) {
  std::vector<IovaRange> buf(8);
  for (int attempt = 0; attempt < 4; ++attempt) {
    IoasIovaRanges q{};
    q.size = sizeof q;
    q.ioas_id = ioas;
    q.num_iovas = static_cast<std::uint32_t>(buf.size());
    q.allowed_iovas = reinterpret_cast<std::uintptr_t>(buf.data());
    if (::ioctl(iommufd, io(kIommufdType, kIoasIovaRanges), &q) != 0) {
      if (errno == EMSGSIZE && q.num_iovas > buf.size()) {  // the kernel says how many
        buf.resize(q.num_iovas);
        continue;
      }
      return errno_error("ioctl(IOMMU_IOAS_IOVA_RANGES, ioas " + std::to_string(ioas) + ")", errno);
    }
    IovaRanges out;
    out.alignment = q.out_iova_alignment;
    for (std::uint32_t i = 0; i < q.num_iovas && i < buf.size(); ++i) out.ranges.push_back({buf[i].start, buf[i].last});
    return out;
  }
  return errno_error("ioctl(IOMMU_IOAS_IOVA_RANGES): the ranges kept changing", EMSGSIZE);
}

Status ioas_map_fixed(int iommufd, std::uint32_t ioas, const void* vaddr, std::uint64_t iova, std::uint64_t bytes) {
  IoasMap m{};
  m.size = sizeof m;
  m.flags = kMapFixedIova | kMapReadable | kMapWriteable;
  m.ioas_id = ioas;
  m.user_va = reinterpret_cast<std::uintptr_t>(vaddr);
  m.length = bytes;
  m.iova = iova;
  if (::ioctl(iommufd, io(kIommufdType, kIoasMap), &m) != 0)
    return errno_error("ioctl(IOMMU_IOAS_MAP, iova " + hex(iova) + ", " + std::to_string(bytes) + " bytes)", errno);
  return {};
}

Result<std::uint64_t> ioas_unmap(int iommufd, std::uint32_t ioas, std::uint64_t iova, std::uint64_t bytes) {
  IoasUnmap u{sizeof(IoasUnmap), ioas, iova, bytes};
  if (::ioctl(iommufd, io(kIommufdType, kIoasUnmap), &u) != 0)
    return errno_error("ioctl(IOMMU_IOAS_UNMAP, iova " + hex(iova) + ", " + std::to_string(bytes) + " bytes)", errno);
  return u.length;
}

Result<std::uint32_t> device_bind(int device, int iommufd) {
  BindIommufd b{sizeof(BindIommufd), 0, iommufd, 0};
  if (::ioctl(device, io(kVfioType, kBindIommufd), &b) != 0) return errno_error("ioctl(VFIO_DEVICE_BIND_IOMMUFD)", errno);
  return b.out_devid;
}

Status device_attach(int device, std::uint32_t ioas) {
  AttachPt a{sizeof(AttachPt), 0, ioas};
  if (::ioctl(device, io(kVfioType, kAttachIommufdPt), &a) != 0)
    return errno_error("ioctl(VFIO_DEVICE_ATTACH_IOMMUFD_PT, ioas " + std::to_string(ioas) + ")", errno);
  return {};
}

}  // namespace numacma::os::iommufd
