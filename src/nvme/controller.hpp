// nvme/controller.hpp — a small polled user-space NVMe driver on numacma.
//
// The driver a driver author copies (examples/nvme/nvme_example.cpp uses it):
// it drives one NVMe controller that is bound to vfio-pci, through nothing
// but numacma's public API:
//
//   numacma::PoolOptions o;                       // the pool maps every area into
//   o.vfio = {{"0000:05:00.0", ~0ULL}};           // the device's IOMMU container
//   auto pool = numacma::Pool::create(o);
//   auto ctrl = numacma::nvme::Controller::open(*pool, "0000:05:00.0");
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
//
// The library numacma_nvme (src/nvme): spec.hpp (what the specification
// defines), queue.hpp (registers, one queue pair), this controller, and
// selftest.hpp (the read-modify-restore test of `numacma nvme-selftest`).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "numacma/numacma.hpp"
#include "nvme/queue.hpp"
#include "nvme/spec.hpp"

namespace numacma::nvme {

struct Options {
  std::uint32_t nsid = 1;             ///< the namespace that read()/write() address
  std::uint16_t queue_entries = 64;   ///< admin and I/O queues; capped by CAP.MQES + 1
  /** Deadline of one command, from the doorbell write to its completion entry. */
  std::chrono::milliseconds command_timeout{10'000};
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
  struct State;  // registers, queues and buffers: controller.cpp
  explicit Controller(std::unique_ptr<State> s);
  void close() noexcept;
  std::unique_ptr<State> s_;
};

}  // namespace numacma::nvme
