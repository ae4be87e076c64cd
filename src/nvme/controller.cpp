// nvme/controller.cpp — see controller.hpp. The registers and structures
// are those of spec.hpp; the comments name the section of the NVMe Base
// Specification (2.0) a step follows.
#include "nvme/controller.hpp"

#include <algorithm>
#include <cstring>
#include <thread>
#include <utility>

#include "nvme/identify.hpp"
#include "nvme/util.hpp"

namespace numacma::nvme {

using detail::err;
using detail::hex;
using detail::ms_text;
using detail::wrap;
using numacma::DmaBuffer;
using numacma::Errc;
using numacma::Result;
using numacma::Status;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace {

constexpr std::uint16_t kIoQid = 1;  // the one I/O queue pair

bool all_zero(const void* p, std::size_t n) {
  const auto* b = static_cast<const std::uint8_t*>(p);
  return std::all_of(b, b + n, [](std::uint8_t x) { return x == 0; });
}

}  // namespace

DmaStructure describe(std::string name, const DmaBuffer& buf) {
  return DmaStructure{std::move(name), buf.cpu(),         buf.size(),
                      buf.dma_addr(),  buf.area_name(),   buf.node()};
}

// ---- the controller's state ---------------------------------------------------

struct Controller::State {
  numacma::Pool* pool = nullptr;
  Registers regs;  // BAR0 through the VfioDevice: CAP, CC, CSTS, the doorbells
  numacma::Device dev;
  Options opt;
  std::string bdf;

  // CAP and VS
  std::uint64_t cap = 0;
  std::uint32_t vs = 0;
  std::uint32_t mqes = 0;              // max queue entries, 0's based
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

  /** Polls CSTS until done(CSTS); every error names `what`. */
  template <class Done>
  Status wait_csts(Done done, milliseconds timeout, const std::string& what, bool cfs_fails) const {
    const Clock::time_point deadline = Clock::now() + timeout;
    for (;;) {
      Result<std::uint32_t> csts = regs.rd32(kRegCsts, "CSTS");
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
    Result<std::uint32_t> cc = regs.rd32(kRegCc, "CC");
    if (!cc) return std::move(cc).error();
    Result<std::uint32_t> csts = regs.rd32(kRegCsts, "CSTS");
    if (!csts) return std::move(csts).error();
    if ((*cc & kCcEn) && !(*csts & kCstsRdy)) {
      // Enabling is in progress: clearing CC.EN before CSTS.RDY=1 is undefined,
      // so wait for it first (a failure here is not fatal: the reset follows).
      (void)wait_csts([](std::uint32_t v) { return (v & kCstsRdy) != 0; }, ready_timeout,
                      "CSTS.RDY=1 before the reset", false);
    }
    if (*cc & kCcEn) {  // clearing EN resets the controller; a pending SHN goes too
      if (Status s = regs.wr32(kRegCc, *cc & ~(kCcEn | kCcShnMask), "CC"); !s) return s;
    }
    Status s = wait_csts([](std::uint32_t v) { return (v & kCstsRdy) == 0; }, ready_timeout,
                         "CSTS.RDY=0 after CC.EN=0", false);
    if (s) enabled = false;
    return s;
  }

  Status enable() {
    if (Status s = regs.wr32(kRegAqa, aqa(admin.entries), "AQA"); !s) return s;
    if (Status s = regs.wr64(kRegAsq, admin.sq.dma_addr(), "ASQ"); !s) return s;
    if (Status s = regs.wr64(kRegAcq, admin.cq.dma_addr(), "ACQ"); !s) return s;
    const std::uint32_t cc = kCcCssNvm | kCcMps4K | kCcAmsRr | kCcIosqes | kCcIocqes;
    if (Status s = regs.wr32(kRegCc, cc, "CC"); !s) return s;
    enabled = true;  // from the next write on, the controller may DMA
    if (Status s = regs.wr32(kRegCc, cc | kCcEn, "CC"); !s) return s;
    return wait_csts([](std::uint32_t v) { return (v & kCstsRdy) != 0; }, ready_timeout,
                     "CSTS.RDY=1 after CC.EN=1", true);
  }

  Status bring_up() {
    if (Status s = regs.vfio.enable_bus_master(); !s) return wrap(s.error(), "enabling bus mastering");
    // Polled: no interrupts wanted. Set Interrupt Disable in the PCI command
    // register so that the controller never asserts INTx (MSI-X stays off).
    std::uint16_t command = 0;
    if (Status s = regs.vfio.config_read(kPciCommand, &command, sizeof command); !s)
      return wrap(s.error(), "reading the PCI command register");
    command |= kPciCommandIntxDisable;
    if (Status s = regs.vfio.config_write(kPciCommand, &command, sizeof command); !s)
      return wrap(s.error(), "setting Interrupt Disable in the PCI command register");
    Result<std::uint64_t> c = regs.rd64(kRegCap, "CAP");
    if (!c) return std::move(c).error();
    cap = *c;
    if (cap == ~std::uint64_t{0})
      return err(Errc::io_error, "CAP reads all ones: the controller does not answer");
    Result<std::uint32_t> v = regs.rd32(kRegVs, "VS");
    if (!v) return std::move(v).error();
    vs = *v;

    mqes = cap_mqes(cap);
    const unsigned css = cap_css(cap);
    const unsigned mpsmin = cap_mpsmin(cap);
    regs.doorbell_stride = std::uint64_t{4} << cap_dstrd(cap);
    // Emulated controllers are slow: never less than a second.
    ready_timeout = std::max(milliseconds(500) * cap_to(cap), milliseconds(1000));
    if (!(css & kCapCssNvm))
      return err(Errc::unsupported, "the controller lacks the NVM command set (CAP.CSS=" + hex(css) + ")");
    if (mpsmin != 0)
      return err(Errc::unsupported, "the controller's smallest memory page is " +
                                        std::to_string(4u << mpsmin) + " KiB; this driver uses 4 KiB");
    if (mqes < 1) return err(Errc::unsupported, "CAP.MQES is 0");

    Result<std::uint64_t> bar0 = regs.vfio.bar_size(0);
    if (!bar0) return wrap(bar0.error(), "BAR0");
    if (*bar0 < regs.cq_doorbell(kIoQid) + 4)
      return err(Errc::unsupported, "BAR0 is " + std::to_string(*bar0) + " bytes, too small for the doorbells of queue 1");

    if (Status s = disable(); !s) return wrap(s.error(), "resetting the controller");

    admin.qid = 0;
    admin.entries = static_cast<std::uint16_t>(std::min<std::uint32_t>({opt.queue_entries, mqes + 1, 4096}));
    Result<DmaBuffer> b = alloc(admin.entries * sizeof(Sqe), "asq");
    if (!b) return std::move(b).error();
    admin.sq = std::move(*b);
    b = alloc(admin.entries * sizeof(Cqe), "acq");
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
  /** Submits one command on `q` and polls for its completion (QueuePair::execute),
   *  unless the controller is failed or shut down. */
  Result<Completion> execute(QueuePair& q, Sqe cmd, const std::string& what) {
    if (!failed.empty())
      return err(Errc::io_error, what + ": the controller is in a failed state (" + failed +
                                     "); shut it down and open it again");
    if (!enabled) return err(Errc::invalid_argument, what + ": the controller is shut down");

    return q.execute(regs, cmd, opt.command_timeout, what, failed);
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
    IdentifyController ic;
    std::memcpy(&ic, id, sizeof ic);
    Result<ControllerIdentity> ci = parse_identify_controller(ic, opt.nsid);
    if (!ci) return std::move(ci).error();
    model = std::move(ci->model);
    serial = std::move(ci->serial);
    firmware = std::move(ci->firmware);
    max_transfer = ci->max_transfer;
    shutdown_timeout = ci->shutdown_timeout;

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
    IdentifyNamespace ns;
    std::memcpy(&ns, id, sizeof ns);
    Result<NamespaceFormat> f = parse_identify_namespace(ns, what, max_transfer);
    if (!f) return std::move(f).error();
    nsze = f->nsze;
    lba_size = f->lba_size;
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
    b = alloc(io.entries * sizeof(Cqe), "iocq");
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
    c.cdw10 = queue_cdw10(io.qid, io.entries);
    c.cdw11 = 1u;  // PC
    if (Result<Completion> r = admin_ok(c, "Create I/O Completion Queue 1"); !r) return std::move(r).error();
    io_cq_created = true;

    // Create I/O Submission Queue: PC=1, bound to CQ 1.
    c = Sqe{};
    c.cdw0 = kAdminCreateSq;
    c.prp1 = io.sq.dma_addr();
    c.cdw10 = queue_cdw10(io.qid, io.entries);
    c.cdw11 = (std::uint32_t{io.qid} << 16) | 1u;  // CQID, PC
    if (Result<Completion> r = admin_ok(c, "Create I/O Submission Queue 1"); !r) return std::move(r).error();
    io_sq_created = true;
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
      if (Status s = build_prps(iova + done * lba_size, n * lba_size, prp, c.prp1, c.prp2); !s) return s;
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
      Result<std::uint32_t> cc = regs.rd32(kRegCc, "CC");
      Status s = cc ? regs.wr32(kRegCc, (*cc & ~kCcShnMask) | kCcShnNormal, "CC") : Status(cc.error());
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
  s->regs.vfio = std::move(*vfio);
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

}  // namespace numacma::nvme
