// nvme/selftest.hpp — the self-test of the NVMe driver (controller.hpp):
// what `numacma nvme-selftest` and the QEMU guests' checks run.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "numacma/numacma.hpp"
#include "nvme/controller.hpp"

namespace numacma::nvme {

// The self-test must not destroy the data on the disk it checks: by default it is a
// read-modify-restore test, as `badblocks -n` is:
//
//   read    LBAs [first, end) -> saved (in memory,      nothing written yet
//           twice: a read that never arrived differs)
//   write   pattern -> [first, end)                      the contents are gone...
//   verify  read back, compare with the pattern
//   restore saved -> [first, end)                        ...and back
//   verify  read back, compare with saved                restored == true
//
// The restore runs whatever happened before it (a write that failed half
// way may have written part of its LBAs), over every LBA the test may have
// written; what could not be written back or read back the same is reported
// LBA by LBA (`unrestored`). `destructive` skips the read and the restore.

struct SelftestOptions {
  Options controller;
  std::uint64_t first_lba = 0;
  /** LBAs to write and verify (fewer when the namespace is smaller). */
  std::uint64_t lbas = 64;
  /** Size of the `data` buffer: 64 KiB = 16 pages, so a transfer that fills
   *  it needs a PRP list. */
  std::size_t data_bytes = 64 * 1024;
  /** Mixed into the pattern; 0 = from the clock, so that data left on the
   *  disk by an earlier run can never pass for this run's. */
  std::uint64_t seed = 0;
  /** false: read-modify-restore (above). true: the LBAs are overwritten
   *  with the pattern and left so; only with the user's consent. */
  bool destructive = false;
  /** Told what the test will do once the LBAs are known (after identify)
   *  and before the first I/O: "namespace 1: LBAs 0-63 (64 of 512 bytes):
   *  ..." (describe_plan). */
  std::function<void(const std::string&)> announce;
};

/** LBAs [first, last] of the namespace. */
struct LbaRange {
  std::uint64_t first = 0;
  std::uint64_t last = 0;
  bool operator==(const LbaRange&) const = default;
};

struct SelftestResult {
  /** Every LBA verified, no error, and (read-modify-restore) every LBA
   *  written holds its original contents again. */
  bool ok = false;
  int controller_node = numacma::kNoNode;
  std::string model;
  std::uint32_t nsid = 0;
  bool destructive = false;
  std::uint32_t lba_size = 0;
  std::uint64_t first_lba = 0;
  std::uint64_t lbas_requested = 0;
  std::uint64_t lbas_written = 0;
  std::uint64_t lbas_verified = 0;
  /** Read-modify-restore: every LBA the test may have written holds its
   *  original contents again (written back and read back the same); true
   *  when nothing was written. Always false when destructive. */
  bool restored = false;
  std::uint64_t lbas_restored = 0;  ///< written back and read back the same
  /** LBAs that may have lost their contents: the test may have written
   *  them and their original contents could not be written back or did not
   *  read back the same. Empty when restored (and when destructive). */
  std::vector<LbaRange> unrestored;
  std::string restore_error;  ///< why the restore failed; "" when it did not
  std::string error;          ///< the first thing that went wrong; "" when ok
  /** asq acq iosq iocq identify prp data, as they were during the test (the
   *  cpu pointers no longer valid). */
  std::vector<DmaStructure> dma;
};

/** What the self-test needs of a disk: one buffer that I/O moves whole LBAs
 *  between the namespace and (the driver's `data` DMA buffer). The real one
 *  drives a Controller (selftest()); tests give one in memory that can fail
 *  or lie at any call. */
class SelftestDisk {
 public:
  virtual ~SelftestDisk() = default;
  virtual std::uint32_t nsid() const = 0;
  virtual std::uint32_t lba_size() const = 0;
  virtual std::uint64_t namespace_lbas() const = 0;
  virtual void* buffer() = 0;
  virtual std::size_t buffer_bytes() const = 0;
  /** buffer[0, n * lba_size()) -> LBAs [slba, slba + n). */
  virtual numacma::Status write(std::uint64_t slba, std::uint32_t n) = 0;
  /** LBAs [slba, slba + n) -> buffer[0, n * lba_size()). */
  virtual numacma::Status read(std::uint64_t slba, std::uint32_t n) = 0;
};

/** The sentence SelftestOptions::announce is given. */
std::string describe_plan(std::uint32_t nsid, std::uint64_t first, std::uint64_t lbas, std::uint32_t lba_size,
                          bool destructive);

/** The test itself on any disk (see above); fills every field of r but
 *  model, controller_node and dma. */
void run_pattern_test(SelftestDisk& disk, const SelftestOptions& options, SelftestResult& r);

/** Opens the controller, identifies it, creates the I/O queues and runs
 *  run_pattern_test on namespace options.controller.nsid through a `data`
 *  buffer of options.data_bytes: a pattern distinct per LBA (LBA number and
 *  seed in every 8 bytes), read back into `data` (poisoned before each
 *  read) and compared in memory, never trusting a completion status alone;
 *  by default the original contents are restored. Shuts the controller
 *  down at the end, whatever happened. */
SelftestResult selftest(numacma::Pool& pool, std::string_view bdf,
                        const SelftestOptions& options = {});

}  // namespace numacma::nvme
