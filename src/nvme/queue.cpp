// nvme/queue.cpp — see queue.hpp.
#include "nvme/queue.hpp"

#include <atomic>
#include <cstring>
#include <thread>
#include <utility>

#include "nvme/util.hpp"

namespace numacma::nvme {

using detail::err;
using detail::hex;
using detail::wrap;
using numacma::Errc;
using numacma::Result;
using numacma::Status;
using Clock = std::chrono::steady_clock;

// ---- completion status -------------------------------------------------------

std::string Completion::describe() const {
  const char* what = nullptr;
  for (const StatusName& n : kStatusNames)
    if (n.sct == sct() && n.sc == sc()) what = n.what;
  std::string s = "SCT " + hex(sct()) + " SC " + hex(sc());
  if (what) s += std::string(" (") + what + ")";
  if (dnr()) s += " [do not retry]";
  return s;
}

// ---- registers -------------------------------------------------------------

Result<std::uint32_t> Registers::rd32(std::uint64_t off, const char* name) const {
  Result<std::uint32_t> v = vfio.read32(0, off);
  if (!v) return wrap(v.error(), std::string("reading ") + name);
  return v;
}

Status Registers::wr32(std::uint64_t off, std::uint32_t value, const char* name) const {
  Status s = vfio.write32(0, off, value);
  if (!s) return wrap(s.error(), std::string("writing ") + name);
  return s;
}

Result<std::uint64_t> Registers::rd64(std::uint64_t off, const char* name) const {
  Result<std::uint32_t> lo = rd32(off, name);
  if (!lo) return std::move(lo).error();
  Result<std::uint32_t> hi = rd32(off + 4, name);
  if (!hi) return std::move(hi).error();
  return (std::uint64_t{*hi} << 32) | *lo;
}

Status Registers::wr64(std::uint64_t off, std::uint64_t value, const char* name) const {
  if (Status s = wr32(off, static_cast<std::uint32_t>(value), name); !s) return s;
  return wr32(off + 4, static_cast<std::uint32_t>(value >> 32), name);
}

// ---- one command -------------------------------------------------------------

Result<Completion> QueuePair::execute(const Registers& regs, Sqe cmd, std::chrono::milliseconds timeout,
                                      const std::string& what, std::string& failed) {
  const std::uint16_t cid = next_cid;
  next_cid = static_cast<std::uint16_t>((cid + 1) % 0xffff);  // CID 0xffff is reserved
  cmd.cdw0 |= std::uint32_t{cid} << 16;
  std::memcpy(static_cast<Sqe*>(sq.cpu()) + sq_tail, &cmd, sizeof cmd);
  sq_tail = static_cast<std::uint16_t>((sq_tail + 1) % entries);
  // The entry must be in memory before the doorbell write reaches the
  // device (Linux: wmb() before writel()). On x86 stores are not reordered
  // with the uncached MMIO store; the fence keeps the compiler honest.
  std::atomic_thread_fence(std::memory_order_release);
  if (Status s = regs.wr32(regs.sq_doorbell(qid), sq_tail, "SQ tail doorbell"); !s) {
    failed = s.error().message;
    return wrap(s.error(), what);
  }

  // Poll the phase tag of the entry at the head: the controller writes the
  // whole entry, the phase tag flipped to the current phase, when done.
  constexpr std::size_t kWords = sizeof(Cqe) / sizeof(std::uint32_t);
  const auto* cqe = static_cast<const volatile std::uint32_t*>(cq.cpu()) + cq_head * kWords;
  const Clock::time_point start = Clock::now();
  const Clock::time_point deadline = start + timeout;
  while (((cqe[kCqeDw3] >> 16) & 1u) != phase) {
    const Clock::time_point now = Clock::now();
    if (now >= deadline) {
      failed = "no completion for " + what + " (CID " + std::to_string(cid) + ") within " + detail::ms_text(timeout);
      return err(Errc::io_error,
                 "timed out after " + detail::ms_text(timeout) + " waiting for the completion of " + what +
                     " (CID " + std::to_string(cid) + ", queue " + std::to_string(qid) + " entry " +
                     std::to_string(cq_head) +
                     "); if the IOMMU blocked the controller's write to the completion queue, it never comes");
    }
    if (now - start > std::chrono::microseconds(100))
      std::this_thread::sleep_for(std::chrono::microseconds(20));  // slow device: stop spinning
  }
  std::atomic_thread_fence(std::memory_order_acquire);  // the rest of the entry after its phase tag
  const std::uint32_t dw0 = cqe[offsetof(Cqe, dw0) / sizeof(std::uint32_t)];
  const std::uint32_t dw2 = cqe[offsetof(Cqe, sq_head) / sizeof(std::uint32_t)];
  const std::uint32_t dw3 = cqe[kCqeDw3];

  if (++cq_head == entries) {
    cq_head = 0;
    phase ^= 1u;
  }
  if (Status s = regs.wr32(regs.cq_doorbell(qid), cq_head, "CQ head doorbell"); !s) {
    failed = s.error().message;
    return wrap(s.error(), what);
  }
  const std::uint16_t got_cid = static_cast<std::uint16_t>(dw3 & 0xffff);  // Cqe::cid
  const std::uint16_t got_sqid = static_cast<std::uint16_t>(dw2 >> 16);    // Cqe::sq_id
  if (got_cid != cid || got_sqid != qid) {
    failed = "unexpected completion";
    return err(Errc::io_error, what + ": completion for CID " + std::to_string(got_cid) + " of SQ " +
                                   std::to_string(got_sqid) + ", expected CID " + std::to_string(cid) +
                                   " of SQ " + std::to_string(qid));
  }
  return Completion{dw0, static_cast<std::uint16_t>(dw3 >> 17)};  // the status field, without the phase tag
}

// ---- data pointers -------------------------------------------------------------

Status build_prps(std::uint64_t iova, std::size_t bytes, const numacma::DmaBuffer& list, std::uint64_t& prp1,
                  std::uint64_t& prp2) {
  if (iova % 4 != 0) return err(Errc::invalid_argument, "data IOVA " + hex(iova) + " is not dword aligned");
  prp1 = iova;
  prp2 = 0;
  const std::size_t first = kPage - iova % kPage;  // bytes in PRP1's page
  if (bytes <= first) return {};
  const std::uint64_t next = iova + first;         // page aligned
  const std::size_t rest_pages = (bytes - first + kPage - 1) / kPage;
  if (rest_pages == 1) {
    prp2 = next;
    return {};
  }
  if (rest_pages > kPage / sizeof(std::uint64_t))
    return err(Errc::invalid_argument,
               "transfer of " + std::to_string(bytes) + " bytes needs more than one PRP list page");
  auto* entries = static_cast<std::uint64_t*>(list.cpu());
  for (std::size_t i = 0; i < rest_pages; ++i) entries[i] = next + i * kPage;
  prp2 = list.dma_addr();
  return {};
}

}  // namespace numacma::nvme
