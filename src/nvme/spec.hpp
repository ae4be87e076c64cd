// nvme/spec.hpp — what the NVMe specifications define that this driver uses:
// the controller registers in BAR0 and their fields, the submission and
// completion queue entries, the Identify data structures, the opcodes and
// the status codes. Values come from the NVMe Base Specification (2.0) and
// the NVM Command Set Specification; the comments name the section.
//
// Every structure is checked against the specification's layout at compile
// time (size and field offsets), as QEMU's block/nvme.c does with
// QEMU_BUILD_BUG_ON: a wrong field breaks the build, not the device.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>

namespace numacma::nvme {

static_assert(std::endian::native == std::endian::little,
              "NVMe structures are little-endian; this driver writes them as native integers");

/** CC.MPS = 0: the controller's memory page is 4 KiB. */
inline constexpr std::size_t kPage = 4096;

// ---- controller registers in BAR0 ("Controller Properties") ------------------
inline constexpr std::uint64_t kRegCap = 0x00;    // capabilities, 64-bit
inline constexpr std::uint64_t kRegVs = 0x08;     // version
inline constexpr std::uint64_t kRegCc = 0x14;     // controller configuration
inline constexpr std::uint64_t kRegCsts = 0x1c;   // controller status
inline constexpr std::uint64_t kRegAqa = 0x24;    // admin queue attributes
inline constexpr std::uint64_t kRegAsq = 0x28;    // admin submission queue base, 64-bit
inline constexpr std::uint64_t kRegAcq = 0x30;    // admin completion queue base, 64-bit
inline constexpr std::uint64_t kRegDoorbells = 0x1000;  // SQ y tail at 0x1000 + 2y * (4 << CAP.DSTRD)

// CAP fields
inline constexpr std::uint32_t cap_mqes(std::uint64_t cap) { return static_cast<std::uint32_t>(cap & 0xffff); }  // 0's based
inline constexpr unsigned cap_to(std::uint64_t cap) { return static_cast<unsigned>((cap >> 24) & 0xff); }        // x 500 ms
inline constexpr unsigned cap_dstrd(std::uint64_t cap) { return static_cast<unsigned>((cap >> 32) & 0xf); }
inline constexpr unsigned cap_css(std::uint64_t cap) { return static_cast<unsigned>((cap >> 37) & 0xff); }
inline constexpr unsigned cap_mpsmin(std::uint64_t cap) { return static_cast<unsigned>((cap >> 48) & 0xf); }
inline constexpr unsigned kCapCssNvm = 1u << 0;  // CAP.CSS bit 0: the NVM command set

// CC fields
inline constexpr std::uint32_t kCcEn = 1u << 0;
inline constexpr std::uint32_t kCcCssNvm = 0u << 4;   // I/O command set: NVM
inline constexpr std::uint32_t kCcMps4K = 0u << 7;    // memory page size 2^(12+0)
inline constexpr std::uint32_t kCcAmsRr = 0u << 11;   // round-robin arbitration
inline constexpr std::uint32_t kCcShnMask = 3u << 14;
inline constexpr std::uint32_t kCcShnNormal = 1u << 14;
inline constexpr std::uint32_t kCcIosqes = 6u << 16;  // SQ entry 2^6 = 64 bytes
inline constexpr std::uint32_t kCcIocqes = 4u << 20;  // CQ entry 2^4 = 16 bytes

// CSTS fields
inline constexpr std::uint32_t kCstsRdy = 1u << 0;
inline constexpr std::uint32_t kCstsCfs = 1u << 1;    // controller fatal status
inline constexpr std::uint32_t kCstsShstMask = 3u << 2;
inline constexpr std::uint32_t kCstsShstComplete = 2u << 2;

/** AQA: ACQS 27:16 and ASQS 11:0, both 0's based. */
inline constexpr std::uint32_t aqa(std::uint16_t entries) {
  return ((entries - 1u) << 16) | (entries - 1u);
}

// ---- PCI configuration space ---------------------------------------------------
inline constexpr std::uint32_t kPciCommand = 0x04;  // 16-bit
inline constexpr std::uint16_t kPciCommandIntxDisable = 1u << 10;

// ---- opcodes -------------------------------------------------------------------
inline constexpr std::uint8_t kAdminDeleteSq = 0x00;
inline constexpr std::uint8_t kAdminCreateSq = 0x01;
inline constexpr std::uint8_t kAdminDeleteCq = 0x04;
inline constexpr std::uint8_t kAdminCreateCq = 0x05;
inline constexpr std::uint8_t kAdminIdentify = 0x06;
inline constexpr std::uint8_t kAdminSetFeatures = 0x09;
inline constexpr std::uint32_t kFeatureNumQueues = 0x07;  // Set Features FID
inline constexpr std::uint32_t kCnsNamespace = 0x00;      // Identify CNS
inline constexpr std::uint32_t kCnsController = 0x01;

/** NVMe I/O command opcodes (NVM command set) this driver issues. */
enum class IoOpcode : std::uint8_t { write = 0x01, read = 0x02 };

// ---- queue entries ("Submission Queue Entry", "Completion Queue Entry") ------

/** Submission queue entry, 64 bytes. */
struct Sqe {
  std::uint32_t cdw0 = 0;   // opcode 7:0, fuse 9:8, PSDT 15:14 (0 = PRPs), CID 31:16
  std::uint32_t nsid = 0;
  std::uint32_t cdw2 = 0;
  std::uint32_t cdw3 = 0;
  std::uint64_t mptr = 0;   // metadata pointer
  std::uint64_t prp1 = 0;
  std::uint64_t prp2 = 0;
  std::uint32_t cdw10 = 0;  // command specific from here on
  std::uint32_t cdw11 = 0;
  std::uint32_t cdw12 = 0;
  std::uint32_t cdw13 = 0;
  std::uint32_t cdw14 = 0;
  std::uint32_t cdw15 = 0;
};
static_assert(sizeof(Sqe) == 64);
static_assert(offsetof(Sqe, nsid) == 4 && offsetof(Sqe, mptr) == 16 && offsetof(Sqe, prp1) == 24 &&
              offsetof(Sqe, prp2) == 32 && offsetof(Sqe, cdw10) == 40 && offsetof(Sqe, cdw15) == 60);

/** Completion queue entry, 16 bytes. */
struct Cqe {
  std::uint32_t dw0 = 0;      // command specific
  std::uint32_t dw1 = 0;
  std::uint16_t sq_head = 0;  // DW2 15:0
  std::uint16_t sq_id = 0;    // DW2 31:16
  std::uint16_t cid = 0;      // DW3 15:0
  std::uint16_t status = 0;   // DW3 31:16: phase tag bit 0, status field 15:1
};
static_assert(sizeof(Cqe) == 16);
static_assert(offsetof(Cqe, sq_head) == 8 && offsetof(Cqe, sq_id) == 10 && offsetof(Cqe, cid) == 12 &&
              offsetof(Cqe, status) == 14);
/** The 32-bit word of a CQE that holds the CID, the phase tag and the status. */
inline constexpr std::size_t kCqeDw3 = offsetof(Cqe, cid) / sizeof(std::uint32_t);
static_assert(kCqeDw3 == 3);

/** Create I/O Submission/Completion Queue CDW10: QSIZE (0's based) 31:16, QID 15:0. */
inline constexpr std::uint32_t queue_cdw10(std::uint16_t qid, std::uint16_t entries) {
  return (std::uint32_t(entries - 1) << 16) | qid;
}

/** One PRP list page holds 512 entries: with PRP1 that describes 2 MiB at
 *  least, whatever PRP1's offset ("Physical Region Page Entry and List"). */
inline constexpr std::size_t kMaxPrpTransfer = (kPage / sizeof(std::uint64_t)) * kPage;

// ---- Identify data structures ---------------------------------------------------

/** Identify Controller data structure (CNS 01h), the fields used. */
struct IdentifyController {
  std::uint16_t vid;
  std::uint16_t ssvid;
  std::uint8_t sn[20];       // serial number, ASCII, space padded
  std::uint8_t mn[40];       // model number
  std::uint8_t fr[8];        // firmware revision
  std::uint8_t rab;
  std::uint8_t ieee[3];
  std::uint8_t cmic;
  std::uint8_t mdts;         // max data transfer: 2^MDTS minimum pages; 0 = no limit
  std::uint16_t cntlid;
  std::uint32_t ver;
  std::uint32_t rtd3r;
  std::uint32_t rtd3e;       // RTD3 entry latency, microseconds
  std::uint8_t rsvd92[512 - 92];
  std::uint8_t sqes;         // SQ entry size: max 7:4, required 3:0 (2^n bytes)
  std::uint8_t cqes;         // CQ entry size
  std::uint16_t maxcmd;
  std::uint32_t nn;          // number of namespaces
  std::uint8_t rsvd520[4096 - 520];
};
static_assert(sizeof(IdentifyController) == 4096);
static_assert(offsetof(IdentifyController, sn) == 4 && offsetof(IdentifyController, mn) == 24 &&
              offsetof(IdentifyController, fr) == 64 && offsetof(IdentifyController, mdts) == 77 &&
              offsetof(IdentifyController, rtd3e) == 88 && offsetof(IdentifyController, sqes) == 512 &&
              offsetof(IdentifyController, cqes) == 513 && offsetof(IdentifyController, nn) == 516);

/** LBA Format Data Structure. */
struct LbaFormat {
  std::uint16_t ms;    // metadata bytes per LBA
  std::uint8_t lbads;  // LBA data size, 2^n bytes
  std::uint8_t rp;     // relative performance 1:0
};
static_assert(sizeof(LbaFormat) == 4 && offsetof(LbaFormat, lbads) == 2);

/** Identify Namespace data structure (CNS 00h, NVM Command Set), the fields used. */
struct IdentifyNamespace {
  std::uint64_t nsze;  // namespace size, LBAs
  std::uint64_t ncap;
  std::uint64_t nuse;
  std::uint8_t nsfeat;
  std::uint8_t nlbaf;  // number of LBA formats, 0's based
  std::uint8_t flbas;  // format in use: index bits 3:0, and 6:5 as bits 5:4
  std::uint8_t mc;
  std::uint8_t dpc;
  std::uint8_t dps;
  std::uint8_t nmic;
  std::uint8_t rescap;
  std::uint8_t rsvd32[128 - 32];
  LbaFormat lbaf[64];
  std::uint8_t rsvd384[4096 - 384];
};
static_assert(sizeof(IdentifyNamespace) == 4096);
static_assert(offsetof(IdentifyNamespace, nsze) == 0 && offsetof(IdentifyNamespace, nlbaf) == 25 &&
              offsetof(IdentifyNamespace, flbas) == 26 && offsetof(IdentifyNamespace, lbaf) == 128);

/** FLBAS -> the index of the LBA format in use. */
inline constexpr unsigned flbas_format(std::uint8_t flbas) {
  return (flbas & 0xfu) | (((flbas >> 5) & 0x3u) << 4);
}

// ---- status codes ("Status Field Definition") -----------------------------------

/** Status code types (SCT). */
inline constexpr std::uint8_t kSctGeneric = 0;
inline constexpr std::uint8_t kSctCommandSpecific = 1;
inline constexpr std::uint8_t kSctMediaError = 2;

/** A status code this driver can name. */
struct StatusName {
  std::uint8_t sct;
  std::uint8_t sc;
  const char* what;
};
inline constexpr StatusName kStatusNames[] = {
    {kSctGeneric, 0x00, "success"},
    {kSctGeneric, 0x01, "invalid command opcode"},
    {kSctGeneric, 0x02, "invalid field in command"},
    {kSctGeneric, 0x03, "command ID conflict"},
    {kSctGeneric, 0x04, "data transfer error"},
    {kSctGeneric, 0x06, "internal error"},
    {kSctGeneric, 0x07, "command abort requested"},
    {kSctGeneric, 0x08, "command aborted due to SQ deletion"},
    {kSctGeneric, 0x0b, "invalid namespace or format"},
    {kSctGeneric, 0x0c, "command sequence error"},
    {kSctGeneric, 0x13, "PRP offset invalid"},
    {kSctGeneric, 0x80, "LBA out of range"},
    {kSctGeneric, 0x81, "capacity exceeded"},
    {kSctGeneric, 0x82, "namespace not ready"},
    {kSctCommandSpecific, 0x00, "completion queue invalid"},
    {kSctCommandSpecific, 0x01, "invalid queue identifier"},
    {kSctCommandSpecific, 0x02, "invalid queue size"},
    {kSctCommandSpecific, 0x0c, "invalid queue deletion"},
    {kSctMediaError, 0x80, "write fault"},
    {kSctMediaError, 0x81, "unrecovered read error"},
    {kSctMediaError, 0x86, "access denied"},
    {kSctMediaError, 0x87, "deallocated or unwritten logical block"},
};

}  // namespace numacma::nvme
