// bench/lib/reserve.cpp — what does it cost to reserve and populate an area?
//
//   numacma  Pool::create("cma=<bytes>") with backing hugetlb when the host has
//            enough free 2 MiB hugepages, else anon (4 KiB pages, mbind, populate,
//            mlock, node check); the pool is destroyed outside the timing
//   mmap     mmap(MAP_HUGETLB | MAP_POPULATE) (or MAP_POPULATE anonymous memory
//            when there are no hugepages), munmap outside the timing
//
// ratio = numacma median / mmap median. 1 GiB (quick: 64 MiB).
// With grow_hugepages (root only) /proc/sys/vm/nr_hugepages is raised for the
// run and restored afterwards.
#include <sys/mman.h>
#include <unistd.h>

#include <chrono>
#include <fstream>

#include "bench.hpp"
#include "targets.hpp"
#include "numacma/numacma.hpp"

namespace numacma::bench {

namespace {

long read_long(const char* path) {
  std::ifstream f(path);
  long v = -1;
  return (f >> v) ? v : -1;
}
bool write_long(const char* path, long v) {
  std::ofstream f(path);
  f << v << "\n";
  f.flush();
  return static_cast<bool>(f);
}

constexpr const char* kNr = "/proc/sys/vm/nr_hugepages";
constexpr const char* kFree = "/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages";
constexpr std::uint64_t kHuge = 2ULL << 20;

}  // namespace

ReserveReport run_reserve(const ReserveOptions& o) {
  using clock = std::chrono::steady_clock;
  ReserveReport rep;
  rep.bytes = o.bytes != 0 ? o.bytes : std::uint64_t{kReserveMiB.pick(0, o.quick)} << 20;
  const unsigned reps = kReserveReps.pick(o.repetitions, o.quick);
  const long need = static_cast<long>(rep.bytes / kHuge);

  long restore = -1;
  if (o.grow_hugepages && read_long(kFree) < need) {
    if (geteuid() != 0) {
      rep.note = "--grow-hugepages needs root; ";
    } else {
      restore = read_long(kNr);
      if (restore >= 0) (void)write_long(kNr, restore + need - std::max(0L, read_long(kFree)));
    }
  }
  rep.hugepages = read_long(kFree) >= need;
  rep.note += rep.hugepages ? "2 MiB hugepages available: hugetlb for both"
                            : "no (or too few) free 2 MiB hugepages: anonymous 4 KiB pages for both";

  ReserveResult n, m;
  n.who = "numacma";
  n.how = rep.hugepages ? "hugetlb" : "anon";
  m.who = "mmap";
  m.how = rep.hugepages ? "MAP_HUGETLB|MAP_POPULATE" : "MAP_ANONYMOUS|MAP_POPULATE";
  PoolOptions po;
  po.params = "cma=" + std::to_string(rep.bytes >> 20) + "M";
  po.backing = n.how;
  const int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE | (rep.hugepages ? MAP_HUGETLB : 0);
  // One numacma reservation (timed: Pool::create; the pool is destroyed after).
  auto one_numacma = [&]() -> double {
    const auto t0 = clock::now();
    Result<Pool> p = Pool::create(po);
    const auto t1 = clock::now();
    if (!p) {
      n.skipped = true;
      n.reason = p.error().message;
      return -1;
    }
    const Stats st = p->stats();
    if (st.areas.empty()) {
      n.skipped = true;
      n.reason = "no area reserved: " + (p->reservation_notes().empty()
                                             ? std::string("?")
                                             : p->reservation_notes().front().message);
      return -1;
    }
    n.how = st.areas.front().backing;
    return std::chrono::duration<double, std::milli>(t1 - t0).count();
  };
  // One plain mmap + populate of the same size (timed: mmap; munmap after).
  auto one_mmap = [&]() -> double {
    const auto t0 = clock::now();
    void* p = mmap(nullptr, rep.bytes, PROT_READ | PROT_WRITE, flags, -1, 0);
    const auto t1 = clock::now();
    if (p == MAP_FAILED) {
      m.skipped = true;
      m.reason = "mmap failed";
      return -1;
    }
    munmap(p, rep.bytes);
    return std::chrono::duration<double, std::milli>(t1 - t0).count();
  };
  // Round 0 is a warm-up for both (in a VM the host backs guest memory on
  // first touch, which costs seconds once and would be charged to whoever
  // runs first); then the two alternate, so drift hits both alike.
  std::vector<double> n_ms, m_ms;
  for (unsigned i = 0; i <= reps && !n.skipped && !m.skipped; ++i) {
    const double a = one_numacma(), b = one_mmap();
    if (i > 0 && a >= 0) n_ms.push_back(a);
    if (i > 0 && b >= 0) m_ms.push_back(b);
  }
  if (!n.skipped && !n_ms.empty()) {
    const Summary s = summarize(n_ms);
    n.median_ms = s.median;
    n.p99_ms = s.p99;
  }
  if (!m.skipped && !m_ms.empty()) {
    const Summary s = summarize(m_ms);
    m.median_ms = s.median;
    m.p99_ms = s.p99;
  }
  if (restore >= 0) {
    (void)write_long(kNr, restore);
    rep.note += "; nr_hugepages restored to " + std::to_string(restore);
  }
  if (!m.skipped && m.median_ms > 0) {
    m.ratio = 1.0;
    if (!n.skipped) n.ratio = n.median_ms / m.median_ms;
  }
  rep.results = {n, m};
  return rep;
}

Output reserve_output(const ReserveOptions& o, const ReserveReport& r) {
  (void)o;
  Section s;
  s.text_unit = s.json_unit = Unit::ms;
  s.json_quantum = 0.01;
  s.intro = {"numacma bench reserve: reserve + populate " + size_text(r.bytes) + "; " + r.note, ""};
  for (const ReserveResult& x : r.results) {
    Row w;
    w.bench = "reserve";
    w.cases = {col("who", x.who, x.who), col("how", x.how, x.how), json_col("bytes", r.bytes)};
    w.peer = x.who;
    w.config = x.who == "numacma"
                   ? "Pool::create(cma=" + std::to_string(r.bytes >> 20) + "M, backing " + x.how +
                         "): reserve + populate, the pool destroyed after each"
                   : "mmap(" + size_text(r.bytes) + ", PROT_READ|PROT_WRITE, MAP_PRIVATE|" + x.how + ") + munmap";
    w.skipped = x.skipped;
    w.reason = x.reason;
    w.median_ns = x.median_ms * 1e6;
    w.p99_ns = x.p99_ms * 1e6;
    w.ratio = x.ratio;
    w.extra = {json_col("note", r.note)};
    if (x.who == "numacma") {
      w.target = ratio_target("<=", kReserveMaxRatio);
      w.met = !x.skipped && x.ratio > 0 && x.ratio <= kReserveMaxRatio;
    }
    s.rows.push_back(std::move(w));
  }
  return {{std::move(s)}};
}

}  // namespace numacma::bench
