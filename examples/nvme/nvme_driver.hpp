// nvme_driver.hpp — a small polled user-space NVMe driver on numacma.
//
// The example a driver author copies: it drives one NVMe controller that is
// bound to vfio-pci, through nothing but numacma's public API:
//
//   numacma::PoolOptions o;                       // the pool maps every area into
//   o.vfio = {{"0000:05:00.0", ~0ULL}};           // the device's IOMMU container
//   auto pool = numacma::Pool::create(o);
//   auto ctrl = nvme_example::Controller::open(*pool, "0000:05:00.0");
//   ctrl->identify();  ctrl->create_io_queues();
//   ctrl->write(lba, n, buf);  ctrl->read(lba, n, buf);
//   ctrl->shutdown();                             // or let the destructor do it
//
// Every queue and data buffer is a numacma::DmaBuffer from
// pool.alloc_coherent(device, bytes): the allocation lands on the device's
// NUMA node, and its dma_addr() is the IOVA the controller uses. Registers
// are read and written through numacma::VfioDevice (BAR0).
//
// Deliberately simple: no interrupts (completion queues are polled), one
// command in flight at a time, one I/O queue pair, 4 KiB memory pages, PRPs
// (no SGLs), no metadata. Every wait has a deadline; a command that times out
// puts the controller in a failed state in which only shutdown() is allowed
// (it resets the controller before any buffer is freed, so the device never
// writes into memory that went back to the pool).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "numacma/numacma.hpp"

namespace nvme_example {

struct Options {
  std::uint32_t nsid = 1;             ///< the namespace that read()/write() address
  std::uint16_t queue_entries = 64;   ///< admin and I/O queues; capped by CAP.MQES + 1
  /** Deadline of one command, from the doorbell write to its completion entry. */
  std::chrono::milliseconds command_timeout{10'000};
};

/** NVMe I/O command opcodes (NVM command set) this driver issues. */
enum class IoOpcode : std::uint8_t { write = 0x01, read = 0x02 };

/** The completion of one command: DW0 and the status field of the CQE. */
struct Completion {
  std::uint32_t dw0 = 0;
  /** CQE DW3 bits 31:17: SC 7:0, SCT 10:8, CRD 12:11, M 13, DNR 14. */
  std::uint16_t status = 0;

  std::uint8_t sc() const noexcept { return static_cast<std::uint8_t>(status & 0xff); }
  std::uint8_t sct() const noexcept { return static_cast<std::uint8_t>((status >> 8) & 0x7); }
  bool dnr() const noexcept { return (status >> 14) & 1; }
  bool ok() const noexcept { return sc() == 0 && sct() == 0; }
  /** "SCT 0x0 SC 0x80 (LBA out of range)". */
  std::string describe() const;
};

/** One DMA structure of the driver, for reporting where it lives. */
struct DmaStructure {
  std::string name;          ///< asq acq iosq iocq identify prp data
  const void* cpu = nullptr; ///< valid only while its owner lives
  std::size_t bytes = 0;
  std::uint64_t iova = 0;    ///< DmaBuffer::dma_addr(): what the controller is given
  std::string area;          ///< DmaBuffer::area_name()
  int node = numacma::kNoNode;
};

/** Describes one buffer as a DmaStructure. */
DmaStructure describe(std::string name, const numacma::DmaBuffer& buf);

class Controller {
 public:
  /** Brings the controller at `bdf` up to the point where admin commands
   *  work: bus mastering on, CAP read, controller reset (CC.EN=0), admin
   *  queues allocated and programmed (AQA/ASQ/ACQ), CC.EN=1, CSTS.RDY=1.
   *  The pool must be in vfio mode with `bdf` attached, and must outlive
   *  the controller. */
  static numacma::Result<Controller> open(numacma::Pool& pool, std::string_view bdf,
                                          const Options& options = {});

  Controller(Controller&&) noexcept;
  /** Shuts down the controller this one held (if any), then takes `other`'s. */
  Controller& operator=(Controller&& other) noexcept;
  Controller(const Controller&) = delete;
  Controller& operator=(const Controller&) = delete;
  /** shutdown(), errors ignored; then the buffers go back to the pool. */
  ~Controller();

  /** Identify Controller (CNS 1: model, serial, MDTS) and Identify
   *  Namespace (CNS 0 for options.nsid: size, LBA format). */
  numacma::Status identify();
  /** Creates I/O completion queue 1 (PC=1, IEN=0: polled) and I/O
   *  submission queue 1 bound to it. Needs identify() first. */
  numacma::Status create_io_queues();

  /** Writes/reads `nlb` logical blocks at `slba` from/into `buf` starting
   *  `offset` bytes into it. Split into commands of at most
   *  max_transfer_bytes(); each needs PRP1, PRP2 or a PRP list. */
  numacma::Status write(std::uint64_t slba, std::uint32_t nlb, const numacma::DmaBuffer& buf,
                        std::size_t offset = 0);
  numacma::Status read(std::uint64_t slba, std::uint32_t nlb, const numacma::DmaBuffer& buf,
                       std::size_t offset = 0);
  /** The same on a raw IOVA range, which must be IOVA-contiguous and mapped
   *  for the device: [iova, iova + nlb * lba_size()). */
  numacma::Status io(IoOpcode op, std::uint64_t slba, std::uint32_t nlb, std::uint64_t iova);

  /** One I/O command exactly as given (nlb counted from 1, at most 65536;
   *  PRP1/PRP2 unchecked), for tests that aim the device at an IOVA on
   *  purpose. Returns the completion whatever its status; an error only when
   *  no completion came (timeout, register access failed). Needs
   *  create_io_queues(). NOTE: an emulated controller may report success
   *  although the IOMMU blocked the transfer; check the memory. */
  numacma::Result<Completion> submit_io_raw(IoOpcode op, std::uint64_t slba, std::uint32_t nlb,
                                            std::uint64_t prp1, std::uint64_t prp2);

  /** Normal shutdown: deletes the I/O queues, CC.SHN=normal and waits for
   *  CSTS.SHST=complete, then CC.EN=0 and waits for CSTS.RDY=0, so that a
   *  later process can open the controller again. In the failed state it
   *  only disables. Idempotent; returns the first error met. */
  numacma::Status shutdown();
  /** True while the controller may still DMA: enabled and not (yet)
   *  successfully disabled. Memory it was given must not be freed then. */
  bool may_dma() const noexcept;

  // ---- what the controller told us -----------------------------------------
  const std::string& bdf() const noexcept;
  const numacma::Device& device() const noexcept;
  int node() const noexcept { return device().node; }
  std::uint32_t version() const noexcept;            ///< VS register, e.g. 0x10400 = 1.4
  const std::string& model() const noexcept;         ///< after identify()
  const std::string& serial() const noexcept;        ///< after identify()
  const std::string& firmware() const noexcept;      ///< after identify()
  std::uint32_t lba_size() const noexcept;           ///< after identify(); 0 before
  std::uint64_t namespace_lbas() const noexcept;     ///< NSZE; after identify()
  /** Bytes one command moves: MDTS, capped by what one PRP list page
   *  describes (2 MiB). After identify(). */
  std::size_t max_transfer_bytes() const noexcept;
  std::uint16_t io_queue_entries() const noexcept;   ///< after create_io_queues()

  /** asq, acq, iosq, iocq (once created), identify, prp. */
  std::vector<DmaStructure> dma_structures() const;

 private:
  struct State;  // registers, queues and buffers: nvme_driver.cpp
  explicit Controller(std::unique_ptr<State> s);
  void close() noexcept;
  std::unique_ptr<State> s_;
};

// ---- the self-test: what `nvme_example` and `numacma nvme-selftest` run -----
//
// It must not destroy the data on the disk it checks: by default it is a
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

}  // namespace nvme_example
