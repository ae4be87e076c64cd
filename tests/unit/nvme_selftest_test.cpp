// The NVMe driver's self-test (src/nvme/selftest.cpp) over a
// disk in memory that can fail or lie at any call: by default every byte of
// the disk is as it was afterwards (read-modify-restore, as badblocks -n),
// whatever failed on the way; what could not be restored is named LBA by
// LBA; destructive mode leaves the pattern and says it did not restore.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "nvme/selftest.hpp"

using numacma::nvme::LbaRange;
using numacma::nvme::SelftestOptions;
using numacma::nvme::SelftestResult;
using numacma::Errc;
using numacma::Status;

namespace {

constexpr std::uint32_t kLba = 512;

/** A namespace in memory and the I/O buffer, with every call logged. */
class MemDisk final : public numacma::nvme::SelftestDisk {
 public:
  struct Io {
    char op;  // 'r' or 'w'
    std::uint64_t slba;
    std::uint32_t n;
    bool operator==(const Io&) const = default;
  };

  MemDisk(std::uint64_t lbas, std::size_t buffer_lbas) : contents(lbas * kLba), buf(buffer_lbas * kLba) {
    std::mt19937 rng(7);
    for (auto& b : contents) b = static_cast<unsigned char>(rng());
  }

  // ---- failures and lies (0: never) -------------------------------------------------
  unsigned fail_write = 0;      ///< that write call (1-based) fails, after writing its first LBA
  unsigned fail_read = 0;       ///< that read call fails, the buffer untouched
  bool dies = false;            ///< after a failure every call fails (a controller in its failed state)
  unsigned drop_from_write = 0; ///< from that write call on, writes to `dropped` LBAs are lost...
  std::vector<std::uint64_t> dropped;  ///< ...though reported done
  unsigned vanish_from_read = 0;  ///< from that read call on, reads report success and bring nothing

  std::vector<unsigned char> contents, buf;
  std::vector<Io> log;

  std::uint32_t nsid() const override { return 1; }
  std::uint32_t lba_size() const override { return kLba; }
  std::uint64_t namespace_lbas() const override { return contents.size() / kLba; }
  void* buffer() override { return buf.data(); }
  std::size_t buffer_bytes() const override { return buf.size(); }

  Status write(std::uint64_t slba, std::uint32_t n) override {
    log.push_back({'w', slba, n});
    ++writes_;
    if (dead_) return numacma::make_error(Errc::io_error, "controller failed");
    EXPECT_LE((slba + n) * kLba, contents.size());
    EXPECT_LE(std::size_t{n} * kLba, buf.size());
    for (std::uint32_t k = 0; k < n; ++k) {
      if (fail_write == writes_ && k == 1) return failed("Write of LBA " + std::to_string(slba) + " timed out");
      const bool lost = drop_from_write != 0 && writes_ >= drop_from_write &&
                        std::find(dropped.begin(), dropped.end(), slba + k) != dropped.end();
      if (!lost) std::memcpy(&contents[(slba + k) * kLba], &buf[std::size_t{k} * kLba], kLba);
    }
    if (fail_write == writes_) return failed("Write of LBA " + std::to_string(slba) + " timed out");
    return {};
  }

  Status read(std::uint64_t slba, std::uint32_t n) override {
    log.push_back({'r', slba, n});
    ++reads_;
    if (dead_) return numacma::make_error(Errc::io_error, "controller failed");
    if (fail_read == reads_) return failed("Read of LBA " + std::to_string(slba) + ": SCT 0x2 SC 0x81");
    if (vanish_from_read != 0 && reads_ >= vanish_from_read) return {};
    std::memcpy(buf.data(), &contents[slba * kLba], std::size_t{n} * kLba);
    return {};
  }

  std::vector<unsigned char> lbas(std::uint64_t first, std::uint64_t n) const {
    return {contents.begin() + static_cast<long>(first * kLba), contents.begin() + static_cast<long>((first + n) * kLba)};
  }
  std::size_t writes() const { return writes_; }

 private:
  Status failed(const std::string& what) {
    dead_ = dies;
    return numacma::make_error(Errc::io_error, what);
  }
  unsigned writes_ = 0, reads_ = 0;
  bool dead_ = false;
};

SelftestOptions options(bool destructive = false) {
  SelftestOptions o;
  o.lbas = 64;
  o.seed = 0x5eed;
  o.destructive = destructive;
  return o;
}

SelftestResult run(MemDisk& d, const SelftestOptions& o = options()) {
  SelftestResult r;
  numacma::nvme::run_pattern_test(d, o, r);
  return r;
}

bool contains(const std::string& s, const std::string& what) { return s.find(what) != std::string::npos; }

}  // namespace

TEST(NvmeSelftest, ByDefaultEveryByteOfTheDiskIsAsItWas) {
  MemDisk d(1000, 8);  // 8 LBAs a round: 8 rounds for 64 LBAs
  const std::vector<unsigned char> before = d.contents;
  const SelftestResult r = run(d);
  EXPECT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.error, "");
  EXPECT_FALSE(r.destructive);
  EXPECT_EQ(r.lbas_requested, 64u);
  EXPECT_EQ(r.lbas_written, 64u);
  EXPECT_EQ(r.lbas_verified, 64u);
  EXPECT_TRUE(r.restored);
  EXPECT_EQ(r.lbas_restored, 64u);
  EXPECT_TRUE(r.unrestored.empty());
  EXPECT_TRUE(d.contents == before) << "the disk must hold exactly what it held";
  // The pattern did reach the disk: 8 rounds written with it, 8 with the originals.
  EXPECT_EQ(d.writes(), 16u);
  // Read before written: the originals first, every round read twice
  // (two poisons: a read that never arrives cannot pass for the data).
  ASSERT_GE(d.log.size(), 16u);
  for (std::size_t i = 0; i < 16; ++i)
    EXPECT_EQ(d.log[i], (MemDisk::Io{'r', (i / 2) * 8, 8})) << i;
}

TEST(NvmeSelftest, DestructiveLeavesThePatternAndSaysItDidNotRestore) {
  MemDisk d(1000, 8);
  const std::vector<unsigned char> before = d.contents;
  const SelftestResult r = run(d, options(true));
  EXPECT_TRUE(r.ok) << r.error;
  EXPECT_TRUE(r.destructive);
  EXPECT_FALSE(r.restored);
  EXPECT_EQ(r.lbas_restored, 0u);
  EXPECT_TRUE(r.unrestored.empty());
  EXPECT_EQ(d.log.front().op, 'w') << "nothing is read first";
  EXPECT_EQ(d.writes(), 8u);
  EXPECT_NE(d.lbas(0, 64), std::vector<unsigned char>(before.begin(), before.begin() + 64 * kLba));
  EXPECT_EQ(d.lbas(64, 936), std::vector<unsigned char>(before.begin() + 64 * kLba, before.end()))
      << "nothing past the LBAs tested";
}

TEST(NvmeSelftest, TheLbasAndTheModeAreAnnouncedBeforeAnyIo) {
  for (const bool destructive : {false, true}) {
    MemDisk d(1000, 8);
    SelftestOptions o = options(destructive);
    std::vector<std::string> said;
    o.announce = [&](const std::string& s) {
      EXPECT_TRUE(d.log.empty()) << "announced after I/O";
      said.push_back(s);
    };
    run(d, o);
    ASSERT_EQ(said.size(), 1u);
    EXPECT_EQ(said[0], numacma::nvme::describe_plan(1, 0, 64, kLba, destructive));
    EXPECT_EQ(said[0].find("namespace 1: LBAs 0-63 (64 of 512 bytes): "), 0u) << said[0];
    EXPECT_TRUE(contains(said[0], destructive ? "NOT restored (destructive)" : "(read-modify-restore)")) << said[0];
  }
}

TEST(NvmeSelftest, AReadOfTheOriginalsThatFailsWritesNothing) {
  MemDisk d(1000, 8);
  d.fail_read = 3;  // the second round's first read
  const std::vector<unsigned char> before = d.contents;
  const SelftestResult r = run(d);
  EXPECT_FALSE(r.ok);
  EXPECT_TRUE(contains(r.error, "reading the original contents of LBAs 8-15 (nothing written yet)")) << r.error;
  EXPECT_EQ(d.writes(), 0u);
  EXPECT_TRUE(r.restored) << "nothing was written: nothing lost";
  EXPECT_TRUE(d.contents == before);
}

TEST(NvmeSelftest, AReadOfTheOriginalsThatNeverArrivesWritesNothing) {
  // An IOMMU that blocks the controller's writes to memory, with a device
  // that still reports success: saving that would "restore" garbage.
  MemDisk d(1000, 8);
  d.vanish_from_read = 1;
  const std::vector<unsigned char> before = d.contents;
  const SelftestResult r = run(d);
  EXPECT_FALSE(r.ok);
  EXPECT_TRUE(contains(r.error, "never reached memory")) << r.error;
  EXPECT_TRUE(contains(r.error, "nothing written yet")) << r.error;
  EXPECT_EQ(d.writes(), 0u);
  EXPECT_TRUE(d.contents == before);
}

TEST(NvmeSelftest, APatternWriteThatFailsHalfWayIsStillRestored) {
  MemDisk d(1000, 8);
  d.fail_write = 3;  // the third round, LBAs 16-23, after writing LBA 16
  const std::vector<unsigned char> before = d.contents;
  const SelftestResult r = run(d);
  EXPECT_FALSE(r.ok);
  EXPECT_TRUE(contains(r.error, "Write of LBA 16 timed out")) << r.error;
  EXPECT_EQ(r.lbas_written, 16u);
  EXPECT_TRUE(r.restored) << r.restore_error;
  EXPECT_EQ(r.lbas_restored, 24u) << "LBAs 0-23: the failed round included";
  EXPECT_TRUE(d.contents == before);
}

TEST(NvmeSelftest, ARestoreWriteThatFailsIsNamedLoudly) {
  MemDisk d(1000, 8);
  d.fail_write = 8 + 2;  // the restore's second round: LBAs 8-15
  const std::vector<unsigned char> before = d.contents;
  const SelftestResult r = run(d);
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.lbas_verified, 64u) << "the pattern itself verified";
  EXPECT_FALSE(r.restored);
  EXPECT_EQ(r.unrestored, (std::vector<LbaRange>{{8, 15}}));
  EXPECT_EQ(r.lbas_restored, 56u);
  EXPECT_EQ(r.restore_error.find("RESTORE FAILED: LBAs 8-15 of namespace 1 may have lost their original contents "
                                 "(writing back LBAs 8-15: Write of LBA 8 timed out)"),
            0u)
      << r.restore_error;
  EXPECT_EQ(r.error, r.restore_error);
  EXPECT_NE(d.lbas(9, 7), std::vector<unsigned char>(before.begin() + 9 * kLba, before.begin() + 16 * kLba))
      << "what the report says is lost is lost";
  EXPECT_EQ(d.lbas(16, 48), std::vector<unsigned char>(before.begin() + 16 * kLba, before.begin() + 64 * kLba));
}

TEST(NvmeSelftest, ARestoreThatDoesNotReadBackTheSameIsNamedLbaByLba) {
  MemDisk d(1000, 8);
  d.drop_from_write = 9;  // the restore's writes of LBAs 5 and 40 are lost, reported done
  d.dropped = {5, 40};
  const SelftestResult r = run(d);
  EXPECT_FALSE(r.ok);
  EXPECT_FALSE(r.restored);
  EXPECT_EQ(r.unrestored, (std::vector<LbaRange>{{5, 5}, {40, 40}}));
  EXPECT_EQ(r.lbas_restored, 62u);
  EXPECT_TRUE(contains(r.restore_error, "RESTORE FAILED: LBAs 5, 40 of namespace 1")) << r.restore_error;
  EXPECT_TRUE(contains(r.restore_error, "LBA 5 read back different from its original contents")) << r.restore_error;
}

TEST(NvmeSelftest, AControllerThatDiesLeavesEveryLbaItMayHaveWrittenNamed) {
  MemDisk d(1000, 8);
  d.fail_write = 3;
  d.dies = true;  // a timed-out command: only shutdown is allowed after it
  const SelftestResult r = run(d);
  EXPECT_FALSE(r.ok);
  EXPECT_TRUE(contains(r.error, "Write of LBA 16 timed out")) << "the first thing that went wrong: " << r.error;
  EXPECT_FALSE(r.restored);
  EXPECT_EQ(r.unrestored, (std::vector<LbaRange>{{0, 23}}));
  EXPECT_EQ(r.restore_error.find("RESTORE FAILED: LBAs 0-23 of namespace 1 may have lost"), 0u) << r.restore_error;
}

TEST(NvmeSelftest, AReadThatNeverArrivesFailsTheTestAndIsNotTakenForARestore) {
  MemDisk d(1000, 8);
  d.vanish_from_read = 17;  // after the originals were read (16 reads)
  const SelftestResult r = run(d);
  EXPECT_FALSE(r.ok);
  EXPECT_TRUE(contains(r.error, "(the read never reached memory)")) << r.error;
  EXPECT_FALSE(r.restored) << "read back as poison: not the originals";
  EXPECT_EQ(r.unrestored, (std::vector<LbaRange>{{0, 63}}));
}

TEST(NvmeSelftest, ASmallNamespaceIsTestedWhole) {
  MemDisk d(40, 16);
  const std::vector<unsigned char> before = d.contents;
  const SelftestResult r = run(d);
  EXPECT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.lbas_requested, 40u);
  EXPECT_EQ(r.lbas_restored, 40u);
  EXPECT_TRUE(d.contents == before);
}

TEST(NvmeSelftest, NothingToTestIsAnErrorBeforeAnyIo) {
  MemDisk d(40, 16);
  SelftestOptions o = options();
  o.first_lba = 40;
  SelftestResult r = run(d, o);
  EXPECT_FALSE(r.ok);
  EXPECT_TRUE(contains(r.error, "beyond the namespace (40 LBAs)")) << r.error;
  EXPECT_TRUE(d.log.empty());
  MemDisk tiny(40, 0);  // a buffer smaller than one LBA
  r = run(tiny);
  EXPECT_FALSE(r.ok);
  EXPECT_TRUE(tiny.log.empty());
}
