// nvme_example.cpp — the polled user-space NVMe driver (src/nvme, the
// numacma_nvme library) on a numacma pool in vfio mode: opens the
// controller, identifies it, and writes one LBA and reads it back, verified.
// The LBA's contents are saved first and written back at the end.
//
// usage: nvme_example BDF LBA
//   BDF   the controller, bound to vfio-pci (`numacma vfio bind BDF`)
//   LBA   the logical block to write in namespace 1: named by the user, no
//         default (LBA 0 holds a partition table; the block is lost if the
//         program dies between its write and the write back)
// Exit code 0 only when the LBA read back as written and was restored.
// `numacma nvme-selftest BDF` runs the driver's full self-test (64 LBAs).
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include <numacma/numacma.hpp>

#include "nvme/controller.hpp"

namespace {

int fail(const char* what, const numacma::Error& e) {
  std::fprintf(stderr, "%s: %s\n", what, e.message.c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  char* end = nullptr;
  const std::uint64_t lba = argc == 3 ? std::strtoull(argv[2], &end, 0) : 0;
  if (argc != 3 || argv[1][0] == '-' || argv[2][0] == '-' || end == argv[2] || *end != '\0') {
    std::fprintf(stderr, "usage: %s BDF LBA   (LBA: the block to write, saved first and written back)\n", argv[0]);
    return 2;
  }
  const std::string bdf = argv[1];

  // The pool maps every area into the controller's IOMMU container (anon
  // backing: 4 KiB pages, which the IOMMU makes contiguous for the device);
  // the controller takes 64-bit DMA addresses.
  numacma::PoolOptions opts;
  opts.params = "cma=16M cma_pernuma=8M";
  opts.backing = "anon";
  opts.vfio = {{bdf, ~std::uint64_t{0}}};
  numacma::Result<numacma::Pool> pool = numacma::Pool::create(opts);
  if (!pool) return fail("pool", pool.error());

  // Buffers the controller writes into are declared before it: they are
  // freed only after its destructor has shut it down.
  numacma::DmaBuffer saved, data;
  numacma::Result<numacma::nvme::Controller> ctrl = numacma::nvme::Controller::open(*pool, bdf);
  if (!ctrl) return fail("open", ctrl.error());
  if (numacma::Status s = ctrl->identify(); !s) return fail("identify", s.error());
  if (numacma::Status s = ctrl->create_io_queues(); !s) return fail("I/O queues", s.error());
  std::printf("%s on node %d: %s, serial %s, LBA size %u, %llu LBAs\n", bdf.c_str(), ctrl->node(),
              ctrl->model().c_str(), ctrl->serial().c_str(), ctrl->lba_size(),
              static_cast<unsigned long long>(ctrl->namespace_lbas()));

  // Two buffers of one LBA on the controller's node, at IOVAs it can reach.
  const std::size_t n = ctrl->lba_size();
  for (numacma::DmaBuffer* b : {&saved, &data}) {
    numacma::Result<numacma::DmaBuffer> r = pool->alloc_coherent(ctrl->device(), n);
    if (!r) return fail("alloc", r.error());
    *b = std::move(*r);
  }
  std::printf("data buffer: area %s node %d iova 0x%llx\n", data.area_name().c_str(), data.node(),
              static_cast<unsigned long long>(data.dma_addr()));

  // Save the LBA, write a pattern, read it back into a poisoned buffer,
  // compare; then write the saved contents back, whatever the check found.
  std::printf("LBA %llu: saving it, writing a pattern, reading it back, writing the original back\n",
              static_cast<unsigned long long>(lba));
  numacma::Status io = ctrl->read(lba, 1, saved), restore;
  bool same = false;
  if (io) {
    auto* bytes = static_cast<unsigned char*>(data.cpu());
    for (std::size_t i = 0; i < n; ++i) bytes[i] = static_cast<unsigned char>(i * 7 + lba);
    const std::string pattern(reinterpret_cast<const char*>(bytes), n);
    io = ctrl->write(lba, 1, data);
    if (io) {
      std::memset(bytes, 0xa5, n);
      io = ctrl->read(lba, 1, data);
      same = io && std::memcmp(bytes, pattern.data(), n) == 0;
    }
    restore = ctrl->write(lba, 1, saved);
  }
  numacma::Status down = ctrl->shutdown();
  if (ctrl->may_dma()) {  // not stopped: never free memory the device may still write
    saved.detach();
    data.detach();
  }
  if (!io) return fail("I/O", io.error());
  if (!restore) return fail("restore", restore.error());
  if (!down) return fail("shutdown", down.error());
  std::printf("LBA %llu: %s; original contents written back\n", static_cast<unsigned long long>(lba),
              same ? "read back as written" : "MISMATCH");
  return same ? 0 : 1;
}
