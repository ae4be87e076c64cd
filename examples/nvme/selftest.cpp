// selftest.cpp — the self-test of nvme_driver.hpp (what `nvme_example` and
// `numacma nvme-selftest` run), apart from the driver itself.
#include <algorithm>
#include <chrono>
#include <cstdio>

#include "nvme_driver.hpp"

namespace nvme_example {

using numacma::DmaBuffer;
using numacma::Result;
using numacma::Status;

namespace {

std::string hex(std::uint64_t v) {
  char b[24];
  std::snprintf(b, sizeof b, "0x%llx", static_cast<unsigned long long>(v));
  return b;
}

}  // namespace

// ---- the self-test ------------------------------------------------------------

namespace {

/** Word `i` of LBA `lba`: the LBA number in the high half, the word's index
 *  in the low half, mixed with the run's seed. Distinct for every LBA. */
std::uint64_t pattern(std::uint64_t seed, std::uint64_t lba, std::size_t i) {
  return seed ^ ((lba << 32) | i);
}

void fill(const DmaBuffer& data, std::uint64_t seed, std::uint64_t lba, std::uint64_t n,
          std::uint32_t lba_size, bool complement) {
  auto* w = static_cast<std::uint64_t*>(data.cpu());
  const std::size_t per_lba = lba_size / sizeof(std::uint64_t);
  for (std::uint64_t l = 0; l < n; ++l)
    for (std::size_t i = 0; i < per_lba; ++i) {
      const std::uint64_t v = pattern(seed, lba + l, i);
      w[l * per_lba + i] = complement ? ~v : v;
    }
}

std::string run_selftest(Controller& c, numacma::Pool& pool, const SelftestOptions& o, SelftestResult& r,
                         DmaBuffer& data) {
  if (Status s = c.identify(); !s) return "identify: " + s.error().message;
  r.model = c.model();
  r.lba_size = c.lba_size();
  if (Status s = c.create_io_queues(); !s) return "creating the I/O queues: " + s.error().message;
  const std::uint64_t nsze = c.namespace_lbas();
  if (o.first_lba >= nsze)
    return "first LBA " + std::to_string(o.first_lba) + " is beyond the namespace (" + std::to_string(nsze) + " LBAs)";
  r.lbas_requested = std::min(o.lbas, nsze - o.first_lba);
  if (r.lbas_requested == 0) return "no LBAs to test";

  Result<DmaBuffer> b = pool.alloc_coherent(c.device(), o.data_bytes);
  if (!b) return "allocating data (" + std::to_string(o.data_bytes) + " bytes): " + b.error().message;
  data = std::move(*b);
  const std::uint32_t lba = c.lba_size();
  const std::uint64_t per_round = data.size() / lba;
  if (per_round == 0) return "the data buffer is smaller than one LBA (" + std::to_string(lba) + " bytes)";
  const std::uint64_t seed =
      o.seed != 0 ? o.seed
                  : static_cast<std::uint64_t>(std::chrono::system_clock::now().time_since_epoch().count()) |
                        1u;
  const std::uint64_t end = o.first_lba + r.lbas_requested;

  // Write every LBA first, then read them all: a write that landed on the
  // wrong LBA shows up as a mismatch there.
  for (std::uint64_t l = o.first_lba; l < end;) {
    const auto n = static_cast<std::uint32_t>(std::min(per_round, end - l));
    fill(data, seed, l, n, lba, false);
    if (Status s = c.write(l, n, data); !s) return s.error().message;
    r.lbas_written += n;
    l += n;
  }
  std::string first_mismatch;
  std::uint64_t bad = 0;
  const std::size_t per_lba = lba / sizeof(std::uint64_t);
  for (std::uint64_t l = o.first_lba; l < end;) {
    const auto n = static_cast<std::uint32_t>(std::min(per_round, end - l));
    // Poison with the complement of what must arrive: memory the read did
    // not reach can never pass (an emulated device may report success for a
    // transfer that the IOMMU blocked).
    fill(data, seed, l, n, lba, true);
    if (Status s = c.read(l, n, data); !s) return s.error().message;
    const auto* w = static_cast<const std::uint64_t*>(data.cpu());
    for (std::uint32_t k = 0; k < n; ++k) {
      bool same = true;
      for (std::size_t i = 0; i < per_lba && same; ++i) {
        const std::uint64_t want = pattern(seed, l + k, i);
        const std::uint64_t got = w[k * per_lba + i];
        if (got == want) continue;
        same = false;
        if (first_mismatch.empty())
          first_mismatch = "LBA " + std::to_string(l + k) + " word " + std::to_string(i) + ": read " +
                           hex(got) + ", wrote " + hex(want) + (got == ~want ? " (the read never reached memory)" : "");
      }
      if (same) ++r.lbas_verified; else ++bad;
    }
    l += n;
  }
  if (bad != 0)
    return std::to_string(bad) + " of " + std::to_string(r.lbas_requested) + " LBAs read back wrong; first: " +
           first_mismatch;
  return {};
}

}  // namespace

SelftestResult selftest(numacma::Pool& pool, std::string_view bdf, const SelftestOptions& options) {
  SelftestResult r;
  DmaBuffer data;  // declared before the controller: freed only after it is shut down
  Result<Controller> c = Controller::open(pool, bdf, options.controller);
  if (!c) {
    r.error = "opening the controller: " + c.error().message;
    return r;
  }
  r.controller_node = c->node();
  r.error = run_selftest(*c, pool, options, r, data);
  r.dma = c->dma_structures();
  if (data) r.dma.push_back(describe("data", data));
  if (Status s = c->shutdown(); !s && r.error.empty()) r.error = "shutdown: " + s.error().message;
  if (c->may_dma()) data.detach();  // never hand the pool memory the device may still write
  r.ok = r.error.empty() && r.lbas_requested != 0 && r.lbas_verified == r.lbas_requested;
  return r;
}

}  // namespace nvme_example
