// nvme_driver.cpp — see nvme_driver.hpp. Register and structure layouts are
// those of the NVMe Base Specification (2.0) and the NVM Command Set
// Specification; the comments name the section a value comes from.
#include "nvme_driver.hpp"

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstdio>
#include <cstring>
#include <thread>
#include <utility>

namespace nvme_example {

using numacma::DmaBuffer;
using numacma::Errc;
using numacma::Result;
using numacma::Status;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

static_assert(std::endian::native == std::endian::little,
              "NVMe structures are little-endian; this example writes them as native integers");

namespace {

constexpr std::size_t kPage = 4096;  // CC.MPS = 0: the controller's memory page is 4 KiB

// ---- controller registers in BAR0 ("Controller Properties") ------------------
constexpr std::uint64_t kCap = 0x00;    // 64-bit capabilities
constexpr std::uint64_t kVs = 0x08;     // version
constexpr std::uint64_t kCc = 0x14;     // controller configuration
constexpr std::uint64_t kCsts = 0x1c;   // controller status
constexpr std::uint64_t kAqa = 0x24;    // admin queue attributes
constexpr std::uint64_t kAsq = 0x28;    // admin submission queue base (64-bit)
constexpr std::uint64_t kAcq = 0x30;    // admin completion queue base (64-bit)
constexpr std::uint64_t kDoorbells = 0x1000;

constexpr std::uint32_t kPciCommand = 0x04;               // PCI config space, 16-bit
constexpr std::uint16_t kPciCommandIntxDisable = 1u << 10;

constexpr std::uint32_t kCcEn = 1u << 0;
constexpr std::uint32_t kCcCssNvm = 0u << 4;       // I/O command set: NVM
constexpr std::uint32_t kCcMps4K = 0u << 7;        // memory page size 2^(12+0)
constexpr std::uint32_t kCcAmsRr = 0u << 11;       // round-robin arbitration
constexpr std::uint32_t kCcShnMask = 3u << 14;
constexpr std::uint32_t kCcShnNormal = 1u << 14;
constexpr std::uint32_t kCcIosqes = 6u << 16;      // SQ entry 2^6 = 64 bytes
constexpr std::uint32_t kCcIocqes = 4u << 20;      // CQ entry 2^4 = 16 bytes

constexpr std::uint32_t kCstsRdy = 1u << 0;
constexpr std::uint32_t kCstsCfs = 1u << 1;        // controller fatal status
constexpr std::uint32_t kCstsShstMask = 3u << 2;
constexpr std::uint32_t kCstsShstComplete = 2u << 2;

// ---- commands ----------------------------------------------------------------
constexpr std::uint8_t kAdminDeleteSq = 0x00;
constexpr std::uint8_t kAdminCreateSq = 0x01;
constexpr std::uint8_t kAdminDeleteCq = 0x04;
constexpr std::uint8_t kAdminCreateCq = 0x05;
constexpr std::uint8_t kAdminIdentify = 0x06;
constexpr std::uint8_t kAdminSetFeatures = 0x09;
constexpr std::uint32_t kFeatureNumQueues = 0x07;
constexpr std::uint32_t kCnsNamespace = 0x00;
constexpr std::uint32_t kCnsController = 0x01;

constexpr std::uint16_t kIoQid = 1;  // the one I/O queue pair

/** Submission queue entry ("Submission Queue Entry"), 64 bytes. */
struct Sqe {
  std::uint32_t cdw0 = 0;   // opcode 7:0, fuse 9:8, PSDT 15:14 (0 = PRPs), CID 31:16
  std::uint32_t nsid = 0;
  std::uint32_t cdw2 = 0;
  std::uint32_t cdw3 = 0;
  std::uint64_t mptr = 0;   // metadata pointer
  std::uint64_t prp1 = 0;   // bytes 24-31
  std::uint64_t prp2 = 0;   // bytes 32-39
  std::uint32_t cdw10 = 0;  // bytes 40.. : command specific
  std::uint32_t cdw11 = 0;
  std::uint32_t cdw12 = 0;
  std::uint32_t cdw13 = 0;
  std::uint32_t cdw14 = 0;
  std::uint32_t cdw15 = 0;
};
static_assert(sizeof(Sqe) == 64 && offsetof(Sqe, prp1) == 24 && offsetof(Sqe, cdw10) == 40);
constexpr std::size_t kCqeBytes = 16;  // DW0, DW1, DW2 (SQ head, SQ id), DW3 (CID, phase, status)

/** One PRP list page holds 512 entries: with PRP1 that describes 2 MiB at
 *  least, whatever PRP1's offset. Longer transfers are split. */
constexpr std::size_t kMaxPrpTransfer = (kPage / sizeof(std::uint64_t)) * kPage;

std::string hex(std::uint64_t v) {
  char b[24];
  std::snprintf(b, sizeof b, "0x%llx", static_cast<unsigned long long>(v));
  return b;
}

numacma::Error err(Errc code, std::string message) { return numacma::make_error(code, std::move(message)); }

/** Same code, `context: ` in front of the message. */
numacma::Error wrap(const numacma::Error& e, const std::string& context) {
  return err(e.code, context + ": " + e.message);
}

std::uint32_t le32(const std::uint8_t* p) {
  std::uint32_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
std::uint64_t le64(const std::uint8_t* p) {
  std::uint64_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

/** An Identify string field: ASCII, space padded. */
std::string ascii_field(const std::uint8_t* p, std::size_t n) {
  std::string s;
  for (std::size_t i = 0; i < n; ++i) s += (p[i] >= 0x20 && p[i] < 0x7f) ? char(p[i]) : ' ';
  while (!s.empty() && s.back() == ' ') s.pop_back();
  return s;
}

bool all_zero(const void* p, std::size_t n) {
  const auto* b = static_cast<const std::uint8_t*>(p);
  return std::all_of(b, b + n, [](std::uint8_t x) { return x == 0; });
}

std::string ms_text(milliseconds t) { return std::to_string(t.count()) + " ms"; }

}  // namespace

// ---- completion status -------------------------------------------------------

std::string Completion::describe() const {
  const char* what = nullptr;
  if (sct() == 0) {  // generic command status
    switch (sc()) {
      case 0x00: what = "success"; break;
      case 0x01: what = "invalid command opcode"; break;
      case 0x02: what = "invalid field in command"; break;
      case 0x03: what = "command ID conflict"; break;
      case 0x04: what = "data transfer error"; break;
      case 0x06: what = "internal error"; break;
      case 0x07: what = "command abort requested"; break;
      case 0x08: what = "command aborted due to SQ deletion"; break;
      case 0x0b: what = "invalid namespace or format"; break;
      case 0x0c: what = "command sequence error"; break;
      case 0x13: what = "PRP offset invalid"; break;
      case 0x80: what = "LBA out of range"; break;
      case 0x81: what = "capacity exceeded"; break;
      case 0x82: what = "namespace not ready"; break;
    }
  } else if (sct() == 1) {  // command specific
    switch (sc()) {
      case 0x00: what = "completion queue invalid"; break;
      case 0x01: what = "invalid queue identifier"; break;
      case 0x02: what = "invalid queue size"; break;
      case 0x0c: what = "invalid queue deletion"; break;
    }
  } else if (sct() == 2) {  // media and data integrity
    switch (sc()) {
      case 0x80: what = "write fault"; break;
      case 0x81: what = "unrecovered read error"; break;
      case 0x86: what = "access denied"; break;
      case 0x87: what = "deallocated or unwritten logical block"; break;
    }
  }
  std::string s = "SCT " + hex(sct()) + " SC " + hex(sc());
  if (what) s += std::string(" (") + what + ")";
  if (dnr()) s += " [do not retry]";
  return s;
}

DmaStructure describe(std::string name, const DmaBuffer& buf) {
  return DmaStructure{std::move(name), buf.cpu(),         buf.size(),
                      buf.dma_addr(),  buf.area_name(),   buf.node()};
}

// ---- the controller's state ---------------------------------------------------

namespace {

/** A submission queue and its completion queue, both in pool memory. */
struct QueuePair {
  std::uint16_t qid = 0;
  std::uint16_t entries = 0;
  DmaBuffer sq;                  // entries x 64 B
  DmaBuffer cq;                  // entries x 16 B
  std::uint16_t sq_tail = 0;     // where the next command goes
  std::uint16_t cq_head = 0;     // where the next completion will appear
  std::uint32_t phase = 1;       // phase tag of a new entry; flips each wrap
  std::uint16_t next_cid = 0;
};

}  // namespace

struct Controller::State {
  numacma::Pool* pool = nullptr;
  numacma::VfioDevice vfio;
  numacma::Device dev;
  Options opt;
  std::string bdf;

  // CAP and VS
  std::uint64_t cap = 0;
  std::uint32_t vs = 0;
  std::uint32_t mqes = 0;              // max queue entries, 0's based
  std::uint64_t doorbell_stride = 4;   // 4 << CAP.DSTRD bytes
  milliseconds ready_timeout{500};     // CAP.TO x 500 ms

  // Identify
  std::string model, serial, firmware;
  std::uint32_t lba_size = 0;
  std::uint64_t nsze = 0;
  std::size_t max_transfer = 0;
  milliseconds shutdown_timeout{5000};

  /** CC.EN was set: from then until CSTS.RDY reads 0 after CC.EN=0, the
   *  controller may DMA into the queues. */
  bool enabled = false;
  /** Non-empty: why the controller is unusable (a command timed out, a
   *  completion made no sense). Only shutdown() is allowed then. */
  std::string failed;

  QueuePair admin;
  QueuePair io;
  bool io_cq_created = false;
  bool io_sq_created = false;
  DmaBuffer identify;   // 4 KiB: Identify data
  DmaBuffer prp;        // 4 KiB: the PRP list of the command in flight

  // ---- registers -------------------------------------------------------------
  // 64-bit registers are accessed as two 32-bit halves, low first, as Linux's
  // lo_hi_readq/lo_hi_writeq do: the specification allows it and some
  // controllers (and some VFIO paths) handle nothing wider.
  Result<std::uint32_t> rd32(std::uint64_t off, const char* name) const {
    Result<std::uint32_t> v = vfio.read32(0, off);
    if (!v) return wrap(v.error(), std::string("reading ") + name);
    return v;
  }
  Status wr32(std::uint64_t off, std::uint32_t value, const char* name) const {
    Status s = vfio.write32(0, off, value);
    if (!s) return wrap(s.error(), std::string("writing ") + name);
    return s;
  }
  Result<std::uint64_t> rd64(std::uint64_t off, const char* name) const {
    Result<std::uint32_t> lo = rd32(off, name);
    if (!lo) return std::move(lo).error();
    Result<std::uint32_t> hi = rd32(off + 4, name);
    if (!hi) return std::move(hi).error();
    return (std::uint64_t{*hi} << 32) | *lo;
  }
  Status wr64(std::uint64_t off, std::uint64_t value, const char* name) const {
    if (Status s = wr32(off, static_cast<std::uint32_t>(value), name); !s) return s;
    return wr32(off + 4, static_cast<std::uint32_t>(value >> 32), name);
  }
  std::uint64_t sq_doorbell(std::uint16_t qid) const {
    return kDoorbells + (2u * qid) * doorbell_stride;
  }
  std::uint64_t cq_doorbell(std::uint16_t qid) const {
    return kDoorbells + (2u * qid + 1u) * doorbell_stride;
  }

  /** Polls CSTS until done(CSTS); every error names `what`. */
  template <class Done>
  Status wait_csts(Done done, milliseconds timeout, const std::string& what, bool cfs_fails) const {
    const Clock::time_point deadline = Clock::now() + timeout;
    for (;;) {
      Result<std::uint32_t> csts = rd32(kCsts, "CSTS");
      if (!csts) return wrap(csts.error(), "waiting for " + what);
      if (*csts == 0xffffffffu)
        return err(Errc::io_error, "CSTS reads 0xffffffff while waiting for " + what +
                                       ": the controller does not answer (removed? memory space off?)");
      if (done(*csts)) return {};
      if (cfs_fails && (*csts & kCstsCfs))
        return err(Errc::io_error, "controller fatal status (CSTS.CFS=1, CSTS=" + hex(*csts) +
                                       ") while waiting for " + what);
      if (Clock::now() >= deadline)
        return err(Errc::io_error, "timed out after " + ms_text(timeout) + " waiting for " + what +
                                       " (CSTS=" + hex(*csts) + ")");
      std::this_thread::sleep_for(milliseconds(1));
    }
  }

  // ---- memory --------------------------------------------------------------------
  /** A zeroed, page-aligned, IOVA-contiguous buffer on the device's node. */
  Result<DmaBuffer> alloc(std::size_t bytes, const char* name) {
    Result<DmaBuffer> b = pool->alloc_coherent(dev, bytes);
    if (!b) return wrap(b.error(), std::string("allocating ") + name + " (" + std::to_string(bytes) + " bytes)");
    if (b->dma_addr() % kPage != 0)
      return err(Errc::invalid_argument, std::string(name) + " at DMA address " + hex(b->dma_addr()) +
                                             " is not 4 KiB aligned; NVMe needs page-aligned queues");
    if (!b->contiguous())
      return err(Errc::not_contiguous, std::string(name) + " is not contiguous for the device");
    std::memset(b->cpu(), 0, b->size());
    return b;
  }

  // ---- reset and enable ("Memory-based Controller Initialization") -----------
  Status disable() {
    Result<std::uint32_t> cc = rd32(kCc, "CC");
    if (!cc) return std::move(cc).error();
    Result<std::uint32_t> csts = rd32(kCsts, "CSTS");
    if (!csts) return std::move(csts).error();
    if ((*cc & kCcEn) && !(*csts & kCstsRdy)) {
      // Enabling is in progress: clearing CC.EN before CSTS.RDY=1 is undefined,
      // so wait for it first (a failure here is not fatal: the reset follows).
      (void)wait_csts([](std::uint32_t v) { return (v & kCstsRdy) != 0; }, ready_timeout,
                      "CSTS.RDY=1 before the reset", false);
    }
    if (*cc & kCcEn) {  // clearing EN resets the controller; a pending SHN goes too
      if (Status s = wr32(kCc, *cc & ~(kCcEn | kCcShnMask), "CC"); !s) return s;
    }
    Status s = wait_csts([](std::uint32_t v) { return (v & kCstsRdy) == 0; }, ready_timeout,
                         "CSTS.RDY=0 after CC.EN=0", false);
    if (s) enabled = false;
    return s;
  }

  Status enable() {
    const std::uint32_t aqa = ((admin.entries - 1u) << 16) | (admin.entries - 1u);  // 0's based
    if (Status s = wr32(kAqa, aqa, "AQA"); !s) return s;
    if (Status s = wr64(kAsq, admin.sq.dma_addr(), "ASQ"); !s) return s;
    if (Status s = wr64(kAcq, admin.cq.dma_addr(), "ACQ"); !s) return s;
    const std::uint32_t cc = kCcCssNvm | kCcMps4K | kCcAmsRr | kCcIosqes | kCcIocqes;
    if (Status s = wr32(kCc, cc, "CC"); !s) return s;
    enabled = true;  // from the next write on, the controller may DMA
    if (Status s = wr32(kCc, cc | kCcEn, "CC"); !s) return s;
    return wait_csts([](std::uint32_t v) { return (v & kCstsRdy) != 0; }, ready_timeout,
                     "CSTS.RDY=1 after CC.EN=1", true);
  }

  Status bring_up() {
    if (Status s = vfio.enable_bus_master(); !s) return wrap(s.error(), "enabling bus mastering");
    // Polled: no interrupts wanted. Set Interrupt Disable in the PCI command
    // register so that the controller never asserts INTx (MSI-X stays off).
    std::uint16_t command = 0;
    if (Status s = vfio.config_read(kPciCommand, &command, sizeof command); !s)
      return wrap(s.error(), "reading the PCI command register");
    command |= kPciCommandIntxDisable;
    if (Status s = vfio.config_write(kPciCommand, &command, sizeof command); !s)
      return wrap(s.error(), "setting Interrupt Disable in the PCI command register");
    Result<std::uint64_t> c = rd64(kCap, "CAP");
    if (!c) return std::move(c).error();
    cap = *c;
    if (cap == ~std::uint64_t{0})
      return err(Errc::io_error, "CAP reads all ones: the controller does not answer");
    Result<std::uint32_t> v = rd32(kVs, "VS");
    if (!v) return std::move(v).error();
    vs = *v;

    mqes = static_cast<std::uint32_t>(cap & 0xffff);
    const unsigned to = static_cast<unsigned>((cap >> 24) & 0xff);
    const unsigned dstrd = static_cast<unsigned>((cap >> 32) & 0xf);
    const unsigned css = static_cast<unsigned>((cap >> 37) & 0xff);
    const unsigned mpsmin = static_cast<unsigned>((cap >> 48) & 0xf);
    doorbell_stride = std::uint64_t{4} << dstrd;
    // Emulated controllers are slow: never less than a second.
    ready_timeout = std::max(milliseconds(500) * to, milliseconds(1000));
    if (!(css & 1))
      return err(Errc::unsupported, "the controller lacks the NVM command set (CAP.CSS=" + hex(css) + ")");
    if (mpsmin != 0)
      return err(Errc::unsupported, "the controller's smallest memory page is " +
                                        std::to_string(4u << mpsmin) + " KiB; this driver uses 4 KiB");
    if (mqes < 1) return err(Errc::unsupported, "CAP.MQES is 0");

    Result<std::uint64_t> bar0 = vfio.bar_size(0);
    if (!bar0) return wrap(bar0.error(), "BAR0");
    if (*bar0 < cq_doorbell(kIoQid) + 4)
      return err(Errc::unsupported, "BAR0 is " + std::to_string(*bar0) + " bytes, too small for the doorbells of queue 1");

    if (Status s = disable(); !s) return wrap(s.error(), "resetting the controller");

    admin.qid = 0;
    admin.entries = static_cast<std::uint16_t>(std::min<std::uint32_t>({opt.queue_entries, mqes + 1, 4096}));
    Result<DmaBuffer> b = alloc(admin.entries * sizeof(Sqe), "asq");
    if (!b) return std::move(b).error();
    admin.sq = std::move(*b);
    b = alloc(admin.entries * kCqeBytes, "acq");
    if (!b) return std::move(b).error();
    admin.cq = std::move(*b);
    b = alloc(kPage, "identify");
    if (!b) return std::move(b).error();
    identify = std::move(*b);
    b = alloc(kPage, "prp");
    if (!b) return std::move(b).error();
    prp = std::move(*b);

    if (Status s = enable(); !s) {
      failed = "it did not come up";  // no shutdown handshake: only the reset
      return wrap(s.error(), "enabling the controller");
    }
    return {};
  }

  // ---- commands -----------------------------------------------------------------
  /** Submits one command on `q` and polls for its completion. */
  Result<Completion> execute(QueuePair& q, Sqe cmd, const std::string& what) {
    if (!failed.empty())
      return err(Errc::io_error, what + ": the controller is in a failed state (" + failed +
                                     "); shut it down and open it again");
    if (!enabled) return err(Errc::invalid_argument, what + ": the controller is shut down");

    const std::uint16_t cid = q.next_cid;
    q.next_cid = static_cast<std::uint16_t>((cid + 1) % 0xffff);  // CID 0xffff is reserved
    cmd.cdw0 |= std::uint32_t{cid} << 16;
    std::memcpy(static_cast<Sqe*>(q.sq.cpu()) + q.sq_tail, &cmd, sizeof cmd);
    q.sq_tail = static_cast<std::uint16_t>((q.sq_tail + 1) % q.entries);
    // The entry must be in memory before the doorbell write reaches the
    // device (Linux: wmb() before writel()). On x86 stores are not reordered
    // with the uncached MMIO store; the fence keeps the compiler honest.
    std::atomic_thread_fence(std::memory_order_release);
    if (Status s = wr32(sq_doorbell(q.qid), q.sq_tail, "SQ tail doorbell"); !s) {
      failed = s.error().message;
      return wrap(s.error(), what);
    }

    // Poll the phase tag of the entry at the head: the controller writes the
    // whole entry, the phase tag flipped to the current phase, when done.
    const auto* cqe = static_cast<const volatile std::uint32_t*>(q.cq.cpu()) + q.cq_head * 4u;
    const Clock::time_point start = Clock::now();
    const Clock::time_point deadline = start + opt.command_timeout;
    while (((cqe[3] >> 16) & 1u) != q.phase) {
      const Clock::time_point now = Clock::now();
      if (now >= deadline) {
        failed = "no completion for " + what + " (CID " + std::to_string(cid) + ") within " +
                 ms_text(opt.command_timeout);
        return err(Errc::io_error,
                   "timed out after " + ms_text(opt.command_timeout) + " waiting for the completion of " +
                       what + " (CID " + std::to_string(cid) + ", queue " + std::to_string(q.qid) +
                       " entry " + std::to_string(q.cq_head) +
                       "); if the IOMMU blocked the controller's write to the completion queue, it never comes");
      }
      if (now - start > std::chrono::microseconds(100))
        std::this_thread::sleep_for(std::chrono::microseconds(20));  // slow device: stop spinning
    }
    std::atomic_thread_fence(std::memory_order_acquire);  // the rest of the entry after its phase tag
    const std::uint32_t dw0 = cqe[0];
    const std::uint32_t dw2 = cqe[2];
    const std::uint32_t dw3 = cqe[3];

    if (++q.cq_head == q.entries) {
      q.cq_head = 0;
      q.phase ^= 1u;
    }
    if (Status s = wr32(cq_doorbell(q.qid), q.cq_head, "CQ head doorbell"); !s) {
      failed = s.error().message;
      return wrap(s.error(), what);
    }
    const std::uint16_t got_cid = static_cast<std::uint16_t>(dw3 & 0xffff);
    const std::uint16_t got_sqid = static_cast<std::uint16_t>(dw2 >> 16);
    if (got_cid != cid || got_sqid != q.qid) {
      failed = "unexpected completion";
      return err(Errc::io_error, what + ": completion for CID " + std::to_string(got_cid) + " of SQ " +
                                     std::to_string(got_sqid) + ", expected CID " + std::to_string(cid) +
                                     " of SQ " + std::to_string(q.qid));
    }
    return Completion{dw0, static_cast<std::uint16_t>(dw3 >> 17)};
  }

  /** An admin command that must succeed. */
  Result<Completion> admin_ok(const Sqe& cmd, const std::string& what) {
    Result<Completion> c = execute(admin, cmd, what);
    if (c && !c->ok()) return err(Errc::io_error, what + " failed: " + c->describe());
    return c;
  }

  Status identify_all() {
    // Identify Controller data structure (CNS 01h)
    std::memset(identify.cpu(), 0, kPage);
    Sqe c;
    c.cdw0 = kAdminIdentify;
    c.prp1 = identify.dma_addr();
    c.cdw10 = kCnsController;
    if (Result<Completion> r = admin_ok(c, "Identify Controller"); !r) return std::move(r).error();
    const auto* id = static_cast<const std::uint8_t*>(identify.cpu());
    if (all_zero(id, kPage))
      return err(Errc::io_error, "Identify Controller completed, but its data never reached memory "
                                 "(all zeroes): the controller's DMA was lost (blocked by the IOMMU?)");
    serial = ascii_field(id + 4, 20);
    model = ascii_field(id + 24, 40);
    firmware = ascii_field(id + 64, 8);
    const unsigned mdts = id[77];  // 2^MDTS minimum pages; 0 = no limit
    const std::uint32_t rtd3e_us = le32(id + 88);
    const std::uint8_t sqes = id[512], cqes = id[513];
    const std::uint32_t nn = le32(id + 516);
    if (sqes != 0 && ((sqes & 0xf) > 6 || (sqes >> 4) < 6))
      return err(Errc::unsupported, "the controller does not take 64-byte SQ entries (SQES=" + hex(sqes) + ")");
    if (cqes != 0 && ((cqes & 0xf) > 4 || (cqes >> 4) < 4))
      return err(Errc::unsupported, "the controller does not take 16-byte CQ entries (CQES=" + hex(cqes) + ")");
    if (opt.nsid > nn)
      return err(Errc::not_found, "namespace " + std::to_string(opt.nsid) + " does not exist (the controller has " +
                                      std::to_string(nn) + ")");
    max_transfer = kMaxPrpTransfer;
    if (mdts != 0 && mdts < 20) max_transfer = std::min<std::size_t>(max_transfer, kPage << mdts);
    // RTD3E (microseconds) bounds the shutdown; Linux clamps it the same way.
    shutdown_timeout = std::clamp(milliseconds(rtd3e_us / 1000), milliseconds(5000), milliseconds(60000));

    // Identify Namespace data structure (CNS 00h, NVM Command Set)
    std::memset(identify.cpu(), 0, kPage);
    c = Sqe{};
    c.cdw0 = kAdminIdentify;
    c.nsid = opt.nsid;
    c.prp1 = identify.dma_addr();
    c.cdw10 = kCnsNamespace;
    const std::string what = "Identify Namespace " + std::to_string(opt.nsid);
    if (Result<Completion> r = admin_ok(c, what); !r) return std::move(r).error();
    if (all_zero(id, kPage))
      return err(Errc::io_error, what + " completed, but its data is all zeroes: namespace inactive, "
                                        "or the controller's DMA was lost (blocked by the IOMMU?)");
    nsze = le64(id + 0);
    const unsigned nlbaf = id[25];   // 0's based
    const unsigned flbas = id[26];   // format index: bits 3:0, and 6:5 as bits 5:4
    const unsigned fmt = (flbas & 0xf) | (((flbas >> 5) & 0x3) << 4);
    if (fmt > nlbaf || fmt >= 64)
      return err(Errc::unsupported, what + ": FLBAS names format " + std::to_string(fmt) + " of " +
                                        std::to_string(nlbaf + 1));
    const std::uint32_t lbaf = le32(id + 128 + 4 * fmt);
    const unsigned ms = lbaf & 0xffff;          // metadata bytes per LBA
    const unsigned lbads = (lbaf >> 16) & 0xff; // LBA data size, 2^n
    if (nsze == 0) return err(Errc::not_found, what + " is inactive (NSZE 0)");
    if (lbads < 9 || lbads > 16)
      return err(Errc::unsupported, what + ": LBA data size 2^" + std::to_string(lbads) + " is not usable");
    if (ms != 0)
      return err(Errc::unsupported, what + " is formatted with " + std::to_string(ms) +
                                        " metadata bytes per LBA; this example handles none");
    lba_size = 1u << lbads;
    if (max_transfer < lba_size)
      return err(Errc::unsupported, "MDTS (" + std::to_string(max_transfer) + " bytes) is below one LBA");
    return {};
  }

  Status create_queues() {
    if (lba_size == 0) return err(Errc::invalid_argument, "create_io_queues: call identify() first");
    if (io_cq_created || io_sq_created) return err(Errc::invalid_argument, "the I/O queues exist already");
    io.qid = kIoQid;
    io.entries = static_cast<std::uint16_t>(std::min<std::uint32_t>(opt.queue_entries, mqes + 1));
    Result<DmaBuffer> b = alloc(io.entries * sizeof(Sqe), "iosq");
    if (!b) return std::move(b).error();
    io.sq = std::move(*b);
    b = alloc(io.entries * kCqeBytes, "iocq");
    if (!b) return std::move(b).error();
    io.cq = std::move(*b);

    // Set Features "Number of Queues", asked before any I/O queue exists: one
    // pair (0's based). Controllers that refuse it keep their default.
    Sqe c;
    c.cdw0 = kAdminSetFeatures;
    c.cdw10 = kFeatureNumQueues;
    c.cdw11 = 0;
    if (Result<Completion> r = execute(admin, c, "Set Features (Number of Queues)"); !r)
      return std::move(r).error();

    // Create I/O Completion Queue: PC=1 contiguous, IEN=0 (polled).
    c = Sqe{};
    c.cdw0 = kAdminCreateCq;
    c.prp1 = io.cq.dma_addr();
    c.cdw10 = (std::uint32_t(io.entries - 1) << 16) | io.qid;
    c.cdw11 = 1u;  // PC
    if (Result<Completion> r = admin_ok(c, "Create I/O Completion Queue 1"); !r) return std::move(r).error();
    io_cq_created = true;

    // Create I/O Submission Queue: PC=1, bound to CQ 1.
    c = Sqe{};
    c.cdw0 = kAdminCreateSq;
    c.prp1 = io.sq.dma_addr();
    c.cdw10 = (std::uint32_t(io.entries - 1) << 16) | io.qid;
    c.cdw11 = (std::uint32_t{io.qid} << 16) | 1u;  // CQID, PC
    if (Result<Completion> r = admin_ok(c, "Create I/O Submission Queue 1"); !r) return std::move(r).error();
    io_sq_created = true;
    return {};
  }

  /** PRP1/PRP2 for `bytes` at IOVA-contiguous `iova` ("Physical Region Page
   *  Entry and List"): PRP1 covers up to the end of its page; PRP2 is
   *  the next page, or, past two pages, the PRP list in `prp`. */
  Status build_prps(std::uint64_t iova, std::size_t bytes, std::uint64_t& prp1, std::uint64_t& prp2) {
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
      return err(Errc::invalid_argument, "transfer of " + std::to_string(bytes) + " bytes needs more than one PRP list page");
    auto* list = static_cast<std::uint64_t*>(prp.cpu());
    for (std::size_t i = 0; i < rest_pages; ++i) list[i] = next + i * kPage;
    prp2 = prp.dma_addr();
    return {};
  }

  Status check_io(std::uint64_t slba, std::uint64_t nlb) const {
    if (!io_sq_created) return err(Errc::invalid_argument, "I/O: call create_io_queues() first");
    if (nlb == 0) return err(Errc::invalid_argument, "I/O of 0 LBAs");
    if (slba >= nsze || nlb > nsze - slba)
      return err(Errc::invalid_argument, "LBAs " + std::to_string(slba) + "+" + std::to_string(nlb) +
                                             " are beyond the namespace (" + std::to_string(nsze) + " LBAs)");
    return {};
  }

  Status transfer(IoOpcode op, std::uint64_t slba, std::uint32_t nlb, std::uint64_t iova) {
    if (Status s = check_io(slba, nlb); !s) return s;
    const char* verb = op == IoOpcode::write ? "Write" : "Read";
    const std::uint64_t per_cmd = std::min<std::uint64_t>(max_transfer / lba_size, 65536);
    for (std::uint64_t done = 0; done < nlb;) {
      const std::uint64_t n = std::min<std::uint64_t>(per_cmd, nlb - done);
      const std::uint64_t lba = slba + done;
      Sqe c;
      c.cdw0 = static_cast<std::uint8_t>(op);
      c.nsid = opt.nsid;
      if (Status s = build_prps(iova + done * lba_size, n * lba_size, c.prp1, c.prp2); !s) return s;
      c.cdw10 = static_cast<std::uint32_t>(lba);
      c.cdw11 = static_cast<std::uint32_t>(lba >> 32);
      c.cdw12 = static_cast<std::uint32_t>(n - 1);  // NLB, 0's based
      const std::string what = std::string(verb) + " of LBAs " + std::to_string(lba) + ".." +
                               std::to_string(lba + n - 1);
      Result<Completion> r = execute(io, c, what);
      if (!r) return std::move(r).error();
      if (!r->ok()) return err(Errc::io_error, what + " failed: " + r->describe());
      done += n;
    }
    return {};
  }

  Status shutdown() {
    if (!enabled) return {};
    Status first;
    auto note = [&first](Status s) {
      if (!s && first) first = std::move(s);
    };
    // Delete the I/O queues (the SQ before its CQ), then a normal shutdown
    // ("Shutdown Processing"): the controller finishes what it caches and reports when done.
    // A controller in the failed state is only reset.
    if (io_sq_created && failed.empty()) {
      Sqe c;
      c.cdw0 = kAdminDeleteSq;
      c.cdw10 = io.qid;
      if (Result<Completion> r = admin_ok(c, "Delete I/O Submission Queue 1"); !r) note(std::move(r).error());
      io_sq_created = false;
    }
    if (io_cq_created && failed.empty()) {
      Sqe c;
      c.cdw0 = kAdminDeleteCq;
      c.cdw10 = io.qid;
      if (Result<Completion> r = admin_ok(c, "Delete I/O Completion Queue 1"); !r) note(std::move(r).error());
      io_cq_created = false;
    }
    if (failed.empty()) {
      Result<std::uint32_t> cc = rd32(kCc, "CC");
      Status s = cc ? wr32(kCc, (*cc & ~kCcShnMask) | kCcShnNormal, "CC") : Status(cc.error());
      if (s)
        s = wait_csts([](std::uint32_t v) { return (v & kCstsShstMask) == kCstsShstComplete; },
                      shutdown_timeout, "CSTS.SHST=complete after CC.SHN=normal", false);
      note(std::move(s));
    }
    if (Status s = disable(); !s) note(wrap(s.error(), "disabling the controller"));
    return first;
  }

  /** The device could not be stopped: it may still write into the queues and
   *  buffers, so they are never handed back to the pool for reuse (they go
   *  when the pool goes, with the IOMMU mappings). */
  void quarantine() noexcept {
    for (DmaBuffer* b : {&admin.sq, &admin.cq, &io.sq, &io.cq, &identify, &prp}) b->detach();
  }
};

// ---- Controller ---------------------------------------------------------------

Controller::Controller(std::unique_ptr<State> s) : s_(std::move(s)) {}
Controller::Controller(Controller&&) noexcept = default;

Controller& Controller::operator=(Controller&& other) noexcept {
  if (this != &other) {
    close();
    s_ = std::move(other.s_);
  }
  return *this;
}

Controller::~Controller() { close(); }

void Controller::close() noexcept {
  if (!s_) return;
  (void)s_->shutdown();
  if (s_->enabled) s_->quarantine();
  s_.reset();
}

Result<Controller> Controller::open(numacma::Pool& pool, std::string_view bdf, const Options& options) {
  const std::string name(bdf);
  if (options.queue_entries < 2)
    return err(Errc::invalid_argument, "queue_entries must be at least 2");
  if (options.nsid == 0 || options.nsid == 0xffffffffu)
    return err(Errc::invalid_argument, "nsid " + std::to_string(options.nsid) + " names no single namespace");
  Result<numacma::VfioDevice> vfio = pool.vfio_device(bdf);
  if (!vfio) return wrap(vfio.error(), name);
  Result<numacma::Device> dev = numacma::Device::from_vfio(bdf, pool);
  if (!dev) return wrap(dev.error(), name);

  auto s = std::make_unique<State>();
  s->pool = &pool;
  s->vfio = std::move(*vfio);
  s->dev = std::move(*dev);
  s->opt = options;
  s->bdf = name;
  // The controller object exists before the device is touched: on any error
  // below, its destructor disables the controller before the queues are freed.
  Controller c(std::move(s));
  if (Status st = c.s_->bring_up(); !st) return wrap(st.error(), name);
  return Result<Controller>(std::move(c));
}

Status Controller::identify() { return s_->identify_all(); }
Status Controller::create_io_queues() { return s_->create_queues(); }

Status Controller::io(IoOpcode op, std::uint64_t slba, std::uint32_t nlb, std::uint64_t iova) {
  return s_->transfer(op, slba, nlb, iova);
}

namespace {
Status check_buffer(const DmaBuffer& buf, std::size_t offset, std::uint64_t bytes) {
  if (!buf) return err(Errc::invalid_argument, "I/O into an empty DmaBuffer");
  if (!buf.contiguous())
    return err(Errc::not_contiguous, "the buffer is not contiguous for the device; use io() per contiguous range");
  if (offset > buf.size() || bytes > buf.size() - offset)
    return err(Errc::invalid_argument, std::to_string(bytes) + " bytes at offset " + std::to_string(offset) +
                                           " do not fit a buffer of " + std::to_string(buf.size()));
  return {};
}
}  // namespace

Status Controller::write(std::uint64_t slba, std::uint32_t nlb, const DmaBuffer& buf, std::size_t offset) {
  if (Status s = check_buffer(buf, offset, std::uint64_t{nlb} * s_->lba_size); !s) return s;
  return s_->transfer(IoOpcode::write, slba, nlb, buf.dma_addr() + offset);
}

Status Controller::read(std::uint64_t slba, std::uint32_t nlb, const DmaBuffer& buf, std::size_t offset) {
  if (Status s = check_buffer(buf, offset, std::uint64_t{nlb} * s_->lba_size); !s) return s;
  return s_->transfer(IoOpcode::read, slba, nlb, buf.dma_addr() + offset);
}

Result<Completion> Controller::submit_io_raw(IoOpcode op, std::uint64_t slba, std::uint32_t nlb,
                                             std::uint64_t prp1, std::uint64_t prp2) {
  if (!s_->io_sq_created) return err(Errc::invalid_argument, "submit_io_raw: call create_io_queues() first");
  if (nlb == 0 || nlb > 65536) return err(Errc::invalid_argument, "submit_io_raw: nlb must be 1..65536");
  Sqe c;
  c.cdw0 = static_cast<std::uint8_t>(op);
  c.nsid = s_->opt.nsid;
  c.prp1 = prp1;
  c.prp2 = prp2;
  c.cdw10 = static_cast<std::uint32_t>(slba);
  c.cdw11 = static_cast<std::uint32_t>(slba >> 32);
  c.cdw12 = nlb - 1;
  return s_->execute(s_->io, c, std::string(op == IoOpcode::write ? "raw Write" : "raw Read") +
                                    " of LBA " + std::to_string(slba) + "+" + std::to_string(nlb));
}

Status Controller::shutdown() { return s_->shutdown(); }
bool Controller::may_dma() const noexcept { return s_ && s_->enabled; }

const std::string& Controller::bdf() const noexcept { return s_->bdf; }
const numacma::Device& Controller::device() const noexcept { return s_->dev; }
std::uint32_t Controller::version() const noexcept { return s_->vs; }
const std::string& Controller::model() const noexcept { return s_->model; }
const std::string& Controller::serial() const noexcept { return s_->serial; }
const std::string& Controller::firmware() const noexcept { return s_->firmware; }
std::uint32_t Controller::lba_size() const noexcept { return s_->lba_size; }
std::uint64_t Controller::namespace_lbas() const noexcept { return s_->nsze; }
std::size_t Controller::max_transfer_bytes() const noexcept { return s_->max_transfer; }
std::uint16_t Controller::io_queue_entries() const noexcept { return s_->io.entries; }

std::vector<DmaStructure> Controller::dma_structures() const {
  std::vector<DmaStructure> v;
  v.push_back(describe("asq", s_->admin.sq));
  v.push_back(describe("acq", s_->admin.cq));
  if (s_->io.sq) v.push_back(describe("iosq", s_->io.sq));
  if (s_->io.cq) v.push_back(describe("iocq", s_->io.cq));
  v.push_back(describe("identify", s_->identify));
  v.push_back(describe("prp", s_->prp));
  return v;
}

}  // namespace nvme_example
