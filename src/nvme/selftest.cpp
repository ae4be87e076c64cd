// nvme/selftest.cpp — the self-test of the driver (selftest.hpp: what
// `numacma nvme-selftest` runs), apart from the driver itself: the
// read-modify-restore sequence over any SelftestDisk, and selftest(), which
// runs it on a Controller's namespace.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>

#include "nvme/selftest.hpp"
#include "nvme/util.hpp"

namespace numacma::nvme {

using detail::hex;
using numacma::DmaBuffer;
using numacma::Result;
using numacma::Status;

namespace {

/** "5" or "0-15". */
std::string span(std::uint64_t first, std::uint64_t last) {
  return first == last ? std::to_string(first) : std::to_string(first) + "-" + std::to_string(last);
}

std::string lbas_text(std::uint64_t first, std::uint64_t last) {
  return (first == last ? "LBA " : "LBAs ") + span(first, last);
}

/** Word `i` of LBA `lba`: the LBA number in the high half, the word's index
 *  in the low half, mixed with the run's seed. Distinct for every LBA. */
std::uint64_t pattern(std::uint64_t seed, std::uint64_t lba, std::size_t i) {
  return seed ^ ((lba << 32) | i);
}

void fill(void* buf, std::uint64_t seed, std::uint64_t lba, std::uint64_t n, std::uint32_t lba_size,
          bool complement) {
  auto* w = static_cast<std::uint64_t*>(buf);
  const std::size_t per_lba = lba_size / sizeof(std::uint64_t);
  for (std::uint64_t l = 0; l < n; ++l)
    for (std::size_t i = 0; i < per_lba; ++i) {
      const std::uint64_t v = pattern(seed, lba + l, i);
      w[l * per_lba + i] = complement ? ~v : v;
    }
}

/** LBAs as sorted ranges: [3, 4, 5, 9] -> 3-5, 9. */
std::vector<LbaRange> ranges_of(std::vector<std::uint64_t> lbas) {
  std::sort(lbas.begin(), lbas.end());
  lbas.erase(std::unique(lbas.begin(), lbas.end()), lbas.end());
  std::vector<LbaRange> out;
  for (std::uint64_t l : lbas) {
    if (!out.empty() && out.back().last + 1 == l)
      out.back().last = l;
    else
      out.push_back({l, l});
  }
  return out;
}

/** The data the test writes and what it checks: one disk, rounds of the
 *  buffer's size. */
struct Run {
  SelftestDisk& disk;
  SelftestResult& r;
  std::uint32_t lba = 0;
  std::uint64_t per_round = 0;
  std::uint64_t end = 0;

  std::uint32_t round(std::uint64_t l, std::uint64_t stop) const {
    return static_cast<std::uint32_t>(std::min(per_round, stop - l));
  }
  unsigned char* buf() const { return static_cast<unsigned char*>(disk.buffer()); }

  /** Reads [first, end) into `saved`. An error: nothing was written. Each
   *  round is read twice, into a buffer of zeros and into one of ones: a
   *  read that did not reach memory (every byte of it) cannot give the same
   *  twice, and what would be "restored" from it is garbage. */
  std::string save(std::vector<unsigned char>& saved) {
    saved.resize(static_cast<std::size_t>(r.lbas_requested) * lba);
    for (std::uint64_t l = r.first_lba; l < end;) {
      const std::uint32_t n = round(l, end);
      const std::size_t bytes = static_cast<std::size_t>(n) * lba;
      unsigned char* out = saved.data() + (l - r.first_lba) * lba;
      for (const unsigned char poison : {0x00, 0xff}) {
        std::memset(buf(), poison, bytes);
        if (Status s = disk.read(l, n); !s)
          return "reading the original contents of " + lbas_text(l, l + n - 1) + " (nothing written yet): " +
                 s.error().message;
        if (poison == 0x00)
          std::memcpy(out, buf(), bytes);
        else if (std::memcmp(out, buf(), bytes) != 0)
          return "reading the original contents of " + lbas_text(l, l + n - 1) +
                 " twice gave different data (a read that never reached memory?); nothing written yet";
      }
      l += n;
    }
    return {};
  }

  /** Writes the pattern to every LBA, then reads them all back: a write
   *  that landed on the wrong LBA shows up as a mismatch there. `written`
   *  ends up past the last LBA a write was issued for. */
  std::string pattern_test(std::uint64_t seed, std::uint64_t& written) {
    for (std::uint64_t l = r.first_lba; l < end;) {
      const std::uint32_t n = round(l, end);
      fill(buf(), seed, l, n, lba, false);
      written = l + n;  // before the write: one that fails may have written part
      if (Status s = disk.write(l, n); !s) return s.error().message;
      r.lbas_written += n;
      l += n;
    }
    std::string first_mismatch;
    std::uint64_t bad = 0;
    const std::size_t per_lba = lba / sizeof(std::uint64_t);
    for (std::uint64_t l = r.first_lba; l < end;) {
      const std::uint32_t n = round(l, end);
      // Poison with the complement of what must arrive: memory the read did
      // not reach can never pass (an emulated device may report success for
      // a transfer that the IOMMU blocked).
      fill(buf(), seed, l, n, lba, true);
      if (Status s = disk.read(l, n); !s) return s.error().message;
      const auto* w = static_cast<const std::uint64_t*>(disk.buffer());
      for (std::uint32_t k = 0; k < n; ++k) {
        bool same = true;
        for (std::size_t i = 0; i < per_lba && same; ++i) {
          const std::uint64_t want = pattern(seed, l + k, i);
          const std::uint64_t got = w[k * per_lba + i];
          if (got == want) continue;
          same = false;
          if (first_mismatch.empty())
            first_mismatch = "LBA " + std::to_string(l + k) + " word " + std::to_string(i) + ": read " +
                             hex(got) + ", wrote " + hex(want) +
                             (got == ~want ? " (the read never reached memory)" : "");
        }
        if (same) ++r.lbas_verified; else ++bad;
      }
      l += n;
    }
    if (bad != 0)
      return std::to_string(bad) + " of " + std::to_string(r.lbas_requested) +
             " LBAs read back wrong; first: " + first_mismatch;
    return {};
  }

  /** Writes `saved` back to [first, written) and reads it back; fills
   *  r.restored, r.lbas_restored, r.unrestored, r.restore_error. */
  void restore(const std::vector<unsigned char>& saved, std::uint64_t written) {
    std::vector<std::uint64_t> lost;
    std::string why;
    auto fail = [&](std::uint64_t l, std::uint32_t n, const std::string& what) {
      for (std::uint32_t k = 0; k < n; ++k) lost.push_back(l + k);
      if (why.empty()) why = what;
    };
    std::vector<bool> wrote(static_cast<std::size_t>(written - r.first_lba), false);
    for (std::uint64_t l = r.first_lba; l < written;) {
      const std::uint32_t n = round(l, written);
      std::memcpy(buf(), saved.data() + (l - r.first_lba) * lba, static_cast<std::size_t>(n) * lba);
      if (Status s = disk.write(l, n); !s)
        fail(l, n, "writing back " + lbas_text(l, l + n - 1) + ": " + s.error().message);
      else
        std::fill_n(wrote.begin() + static_cast<std::ptrdiff_t>(l - r.first_lba), n, true);
      l += n;
    }
    for (std::uint64_t l = r.first_lba; l < written;) {
      const std::uint32_t n = round(l, written);
      if (!wrote[l - r.first_lba]) {
        l += n;
        continue;
      }
      const unsigned char* want = saved.data() + (l - r.first_lba) * lba;
      // Poisoned as the pattern's reads are: a read that never arrived
      // cannot pass for the original.
      for (std::size_t i = 0; i < static_cast<std::size_t>(n) * lba; ++i)
        buf()[i] = static_cast<unsigned char>(~want[i]);
      if (Status s = disk.read(l, n); !s) {
        fail(l, n, "reading back " + lbas_text(l, l + n - 1) + ": " + s.error().message);
        l += n;
        continue;
      }
      for (std::uint32_t k = 0; k < n; ++k) {
        const std::size_t at = static_cast<std::size_t>(k) * lba;
        if (std::memcmp(buf() + at, want + at, lba) == 0)
          ++r.lbas_restored;
        else
          fail(l + k, 1, lbas_text(l + k, l + k) + " read back different from its original contents");
      }
      l += n;
    }
    r.unrestored = ranges_of(std::move(lost));
    r.restored = r.unrestored.empty();
    if (!r.restored) {
      std::string which;
      for (const LbaRange& x : r.unrestored) which += (which.empty() ? "" : ", ") + span(x.first, x.last);
      r.restore_error = "RESTORE FAILED: LBAs " + which + " of namespace " + std::to_string(r.nsid) +
                        " may have lost their original contents (" + why + ")";
    }
  }
};

}  // namespace

std::string describe_plan(std::uint32_t nsid, std::uint64_t first, std::uint64_t lbas, std::uint32_t lba_size,
                          bool destructive) {
  std::string s = "namespace " + std::to_string(nsid) + ": " + lbas_text(first, first + lbas - 1) + " (" +
                  std::to_string(lbas) + " of " + std::to_string(lba_size) + " bytes): ";
  if (destructive)
    return s + "overwritten with a test pattern and read back; their contents are NOT restored (destructive)";
  return s + "read, overwritten with a test pattern and read back, then written back with their original "
             "contents and read back again (read-modify-restore)";
}

void run_pattern_test(SelftestDisk& disk, const SelftestOptions& o, SelftestResult& r) {
  r.nsid = disk.nsid();
  r.lba_size = disk.lba_size();
  r.destructive = o.destructive;
  r.first_lba = o.first_lba;
  r.restored = !o.destructive;  // nothing written yet
  Run run{disk, r};
  run.lba = disk.lba_size();
  if (run.lba == 0 || run.lba % sizeof(std::uint64_t) != 0) {
    r.error = "LBA size " + std::to_string(run.lba) + " is not a multiple of 8 bytes";
    return;
  }
  run.per_round = disk.buffer_bytes() / run.lba;
  if (run.per_round == 0) {
    r.error = "the data buffer is smaller than one LBA (" + std::to_string(run.lba) + " bytes)";
    return;
  }
  const std::uint64_t nsze = disk.namespace_lbas();
  if (o.first_lba >= nsze) {
    r.error = "first LBA " + std::to_string(o.first_lba) + " is beyond the namespace (" + std::to_string(nsze) +
              " LBAs)";
    return;
  }
  r.lbas_requested = std::min(o.lbas, nsze - o.first_lba);
  if (r.lbas_requested == 0) {
    r.error = "no LBAs to test";
    return;
  }
  run.end = o.first_lba + r.lbas_requested;
  if (o.announce) o.announce(describe_plan(r.nsid, o.first_lba, r.lbas_requested, run.lba, o.destructive));

  std::vector<unsigned char> saved;
  if (!o.destructive) {
    r.error = run.save(saved);
    if (!r.error.empty()) return;  // restored: nothing was written
  }
  const std::uint64_t seed =
      o.seed != 0 ? o.seed
                  : static_cast<std::uint64_t>(std::chrono::system_clock::now().time_since_epoch().count()) | 1u;
  std::uint64_t written = o.first_lba;
  r.error = run.pattern_test(seed, written);
  if (!o.destructive && written > o.first_lba) run.restore(saved, written);
  if (r.error.empty()) r.error = r.restore_error;
  r.ok = r.error.empty() && r.lbas_verified == r.lbas_requested && (o.destructive || r.restored);
}

// ---- on a controller ------------------------------------------------------------

namespace {

/** Namespace options.nsid of an identified controller, through `data`. */
class ControllerDisk final : public SelftestDisk {
 public:
  ControllerDisk(Controller& c, DmaBuffer& data, std::uint32_t nsid) : c_(c), data_(data), nsid_(nsid) {}
  std::uint32_t nsid() const override { return nsid_; }
  std::uint32_t lba_size() const override { return c_.lba_size(); }
  std::uint64_t namespace_lbas() const override { return c_.namespace_lbas(); }
  void* buffer() override { return data_.cpu(); }
  std::size_t buffer_bytes() const override { return data_.size(); }
  Status write(std::uint64_t slba, std::uint32_t n) override { return c_.write(slba, n, data_); }
  Status read(std::uint64_t slba, std::uint32_t n) override { return c_.read(slba, n, data_); }

 private:
  Controller& c_;
  DmaBuffer& data_;
  std::uint32_t nsid_;
};

std::string prepare(Controller& c, numacma::Pool& pool, const SelftestOptions& o, SelftestResult& r,
                    DmaBuffer& data) {
  if (Status s = c.identify(); !s) return "identify: " + s.error().message;
  r.model = c.model();
  r.lba_size = c.lba_size();
  if (Status s = c.create_io_queues(); !s) return "creating the I/O queues: " + s.error().message;
  Result<DmaBuffer> b = pool.alloc_coherent(c.device(), o.data_bytes);
  if (!b) return "allocating data (" + std::to_string(o.data_bytes) + " bytes): " + b.error().message;
  data = std::move(*b);
  return {};
}

}  // namespace

SelftestResult selftest(numacma::Pool& pool, std::string_view bdf, const SelftestOptions& options) {
  SelftestResult r;
  r.nsid = options.controller.nsid;
  r.destructive = options.destructive;
  r.restored = !options.destructive;  // nothing written yet
  DmaBuffer data;  // declared before the controller: freed only after it is shut down
  Result<Controller> c = Controller::open(pool, bdf, options.controller);
  if (!c) {
    r.error = "opening the controller: " + c.error().message;
    return r;
  }
  r.controller_node = c->node();
  r.error = prepare(*c, pool, options, r, data);
  if (r.error.empty()) {
    ControllerDisk disk(*c, data, options.controller.nsid);
    run_pattern_test(disk, options, r);
  }
  r.dma = c->dma_structures();
  if (data) r.dma.push_back(describe("data", data));
  if (Status s = c->shutdown(); !s && r.error.empty()) r.error = "shutdown: " + s.error().message;
  if (c->may_dma()) data.detach();  // never hand the pool memory the device may still write
  r.ok = r.ok && r.error.empty();
  return r;
}

}  // namespace numacma::nvme
