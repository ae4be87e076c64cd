// nvme/queue.hpp — the controller's registers (BAR0, through numacma's
// public VfioDevice) and one queue pair: a submission queue and its
// completion queue in pool memory, one command in flight, completions polled
// by their phase tag. The Controller (controller.hpp) owns the admin pair
// and the I/O pair.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

#include "numacma/numacma.hpp"
#include "nvme/spec.hpp"

namespace numacma::nvme {

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

/** The controller's registers in BAR0. 64-bit registers are accessed as two
 *  32-bit halves, low first, as Linux's lo_hi_readq/lo_hi_writeq do: the
 *  specification allows it and some controllers (and some VFIO paths)
 *  handle nothing wider. Every error names the register. */
struct Registers {
  numacma::VfioDevice vfio;
  std::uint64_t doorbell_stride = 4;  // 4 << CAP.DSTRD bytes

  numacma::Result<std::uint32_t> rd32(std::uint64_t off, const char* name) const;
  numacma::Status wr32(std::uint64_t off, std::uint32_t value, const char* name) const;
  numacma::Result<std::uint64_t> rd64(std::uint64_t off, const char* name) const;
  numacma::Status wr64(std::uint64_t off, std::uint64_t value, const char* name) const;
  std::uint64_t sq_doorbell(std::uint16_t qid) const { return kRegDoorbells + (2u * qid) * doorbell_stride; }
  std::uint64_t cq_doorbell(std::uint16_t qid) const {
    return kRegDoorbells + (2u * qid + 1u) * doorbell_stride;
  }
};

/** A submission queue and its completion queue, both in pool memory. */
struct QueuePair {
  std::uint16_t qid = 0;
  std::uint16_t entries = 0;
  numacma::DmaBuffer sq;         // entries x 64 B
  numacma::DmaBuffer cq;         // entries x 16 B
  std::uint16_t sq_tail = 0;     // where the next command goes
  std::uint16_t cq_head = 0;     // where the next completion will appear
  std::uint32_t phase = 1;       // phase tag of a new entry; flips each wrap
  std::uint16_t next_cid = 0;

  /** Submits `cmd` (its CID filled in here), rings the SQ tail doorbell and
   *  polls for the completion until `timeout`; then rings the CQ head
   *  doorbell. A timeout, a failed doorbell write or a completion for
   *  another command sets `failed` (why the controller is unusable) and
   *  returns an error naming `what`. */
  numacma::Result<Completion> execute(const Registers& regs, Sqe cmd, std::chrono::milliseconds timeout,
                                      const std::string& what, std::string& failed);
};

/** PRP1/PRP2 for `bytes` at IOVA-contiguous `iova` ("Physical Region Page
 *  Entry and List"): PRP1 covers up to the end of its page; PRP2 is the
 *  next page, or, past two pages, the PRP list written into `list` (one
 *  page). */
numacma::Status build_prps(std::uint64_t iova, std::size_t bytes, const numacma::DmaBuffer& list,
                           std::uint64_t& prp1, std::uint64_t& prp2);

}  // namespace numacma::nvme
