// bench/lib/alloc.cpp — the alloc workload and the numacma, glibc and libnuma
// peers (dpdk, dpdk-align64, dpdk-zmalloc, dpdk-memzone: dpdk_peer.cpp).
// numacma's buffers are zeroed, as the kernel's dma_alloc_coherent's are;
// numacma-nozero (PoolOptions::zero = false) shows what the zeroing costs.
// Each peer aligns as A6 says unless its align_for() says otherwise (dpdk-align64:
// 64 bytes; libnuma: at most a page); every row names its configuration.
//
//   fill:   slots[0..live) each allocated (size, A6 alignment)
//   round:  for i in a fixed-seed random permutation of the slots:
//              free slots[i]; slots[i] = alloc(size)        <- one "pair"
//           sample = round time / live                       (ns per pair)
//   one warm-up round, then `repetitions` rounds (kAllocRounds: 101; quick 9);
//   median and p99 of the samples. A peer/size that has used its time budget
//   (kAllocBudgetMs: 4 s; quick 120 ms) stops after at least kAllocMinRounds
//   (21; quick 2) measured rounds. alloc_output() makes the rows.
#include <gnu/libc-version.h>
#include <numa.h>

#include <algorithm>
#include <bit>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <random>

#include "bench.hpp"
#include "numacma/numacma.hpp"
#include "targets.hpp"

namespace numacma::bench {

std::unique_ptr<AllocPeer> make_dpdk_peer(const std::string& name);  // dpdk_peer.cpp

Summary summarize(std::vector<double>& s) {
  Summary out;
  if (s.empty()) return out;
  std::sort(s.begin(), s.end());
  const std::size_t n = s.size();
  out.median = n % 2 == 1 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
  // Nearest-rank p99.
  const std::size_t r = static_cast<std::size_t>(std::ceil(0.99 * static_cast<double>(n)));
  out.p99 = s[std::min(n, std::max<std::size_t>(r, 1)) - 1];
  return out;
}

std::size_t a6_alignment(std::size_t bytes) {
  const std::size_t pages = (bytes + 4095) / 4096;
  const unsigned order = pages <= 1 ? 0u : static_cast<unsigned>(std::bit_width(pages - 1));
  return std::size_t{4096} << std::min(order, 8u);
}

std::vector<std::uint32_t> slot_order(std::size_t live, unsigned rounds, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<std::uint32_t> perm(live);
  std::vector<std::uint32_t> out;
  out.reserve(live * rounds);
  for (unsigned r = 0; r < rounds; ++r) {
    for (std::size_t i = 0; i < live; ++i) perm[i] = static_cast<std::uint32_t>(i);
    std::shuffle(perm.begin(), perm.end(), rng);
    out.insert(out.end(), perm.begin(), perm.end());
  }
  return out;
}

bool make_bench_pool(const std::string& backing, const std::string& sysfs_root,
                     const std::vector<std::string>& vfio, BenchPool* out, std::string* why,
                     const std::string& attach, bool zero) {
  // A shared pool (numacma reserve), or the pool's own "cma=1G": room for
  // 1024 x 256 KiB (256 MiB, aligned) several times over.
  const std::string made = attach.empty() ? "Pool::create(cma=1G, backing " + backing + ")"
                                          : "Pool::attach(" + attach + ")";
  Result<Pool> p = make_error(Errc::not_found, "");
  if (!attach.empty()) {
    p = Pool::attach(attach);
  } else {
    PoolOptions po;
    po.params = "cma=1G";
    po.backing = backing;
    po.sysfs_root = sysfs_root;
    po.zero = zero;
    for (const std::string& bdf : vfio) po.vfio.push_back(VfioDeviceSpec{bdf, ~std::uint64_t{0}});
    p = Pool::create(po);
  }
  if (!p) {
    *why = made + ": " + p.error().message;
    return false;
  }
  out->pool = std::make_unique<Pool>(std::move(*p));
  const Stats st = out->pool->stats();
  if (st.areas.empty()) {
    *why = made + " has no area";
    return false;
  }
  out->backing = st.areas.front().backing;  // the (first) area's
  out->node = st.areas.front().node;
  out->words = !attach.empty()
                   ? "Pool::attach(" + attach + "), a shared pool reserved with numacma reserve, backing " + out->backing
                   : "Pool::create(cma=1G, backing " + out->backing +
                         (backing != out->backing ? " (asked: " + backing + ")" : "") +
                         (!vfio.empty() ? ", vfio mode" : "") + ", reserved at create" +
                         (zero ? "" : ", zero = false") + ")";
  return true;
}

namespace {

// ---- numacma: Pool::alloc_coherent for a device on the pool's node, DmaBuffer::release.
// The pool is its own (the alloc peer: make_bench_pool) or someone else's
// (bench shared: a private pool and an attached one, through make_numacma_peer).
class NumacmaPeer final : public AllocPeer {
 public:
  explicit NumacmaPeer(bool zero = true) : zero_(zero) {}
  NumacmaPeer(Pool& pool, int node, std::string pool_words)
      : pool_(&pool), node_(node), dev_(Device::on_node(node, "bench-dev")), words_(std::move(pool_words)) {}
  const char* name() const override { return zero_ ? "numacma" : "numacma-nozero"; }
  bool init(const AllocOptions& o, std::string* why) override {
    if (pool_ != nullptr) return true;  // a pool made elsewhere
    if (!zero_ && !o.attach.empty()) {
      *why = "an attached pool always zeroes (memory another process used): --pool has no unzeroed row";
      return false;
    }
    BenchPool bp;
    if (!make_bench_pool(o.backing, o.sysfs_root, o.vfio, &bp, why, o.attach, zero_)) return false;
    owned_ = std::move(bp.pool);
    pool_ = owned_.get();
    backing_ = bp.backing;
    node_ = bp.node;
    dev_ = Device::on_node(node_, "bench-dev");
    words_ = bp.words;
    return true;
  }
  bool fill(std::size_t live, std::size_t size, std::size_t, std::string* why) override {
    size_ = size;
    slots_.clear();
    slots_.resize(live);
    for (auto& s : slots_) {
      Result<DmaBuffer> b = pool_->alloc_coherent(dev_, size);
      if (!b) {
        *why = "alloc_coherent: " + b.error().message;
        return false;
      }
      s = std::move(*b);
    }
    return true;
  }
  bool cycle(std::size_t i) override {
    DmaBuffer& s = slots_[i];
    if (!s.release()) return false;
    Result<DmaBuffer> b = pool_->alloc_coherent(dev_, size_);
    if (!b) return false;
    s = std::move(*b);
    return true;
  }
  void drain() override { slots_.clear(); }
  std::string config(std::size_t size, std::size_t align) const override {
    return words_ + " + Device::on_node(" + std::to_string(node_) + "); alloc_coherent(dev, " +
           std::to_string(size) + ") + DmaBuffer::release; " + (zero_ ? "zeroed" : "NOT zeroed") + "; align " +
           std::to_string(align) + " (A6), physically contiguous; 1024 live" +
           (size <= 4096 ? "; one page: from the node's pages (A3)" : "; from the area");
  }
  const std::string& backing() const { return backing_; }

 private:
  bool zero_ = true;
  std::unique_ptr<Pool> owned_;  ///< the alloc peer's own pool
  Pool* pool_ = nullptr;
  int node_ = 0;
  Device dev_;
  std::string words_;            ///< the pool, in words
  std::size_t size_ = 0;
  std::vector<DmaBuffer> slots_;
  std::string backing_;
};

// ---- glibc: posix_memalign / free
class GlibcPeer final : public AllocPeer {
 public:
  const char* name() const override { return "glibc"; }
  bool init(const AllocOptions&, std::string*) override { return true; }
  bool fill(std::size_t live, std::size_t size, std::size_t align, std::string* why) override {
    size_ = size;
    align_ = align;
    slots_.assign(live, nullptr);
    for (auto& s : slots_)
      if (posix_memalign(&s, align, size) != 0) {
        *why = "posix_memalign failed";
        return false;
      }
    return true;
  }
  bool cycle(std::size_t i) override {
    std::free(slots_[i]);
    return posix_memalign(&slots_[i], align_, size_) == 0;
  }
  void drain() override {
    for (void* p : slots_) std::free(p);
    slots_.clear();
  }
  std::string config(std::size_t size, std::size_t align) const override {
    return "posix_memalign(align " + std::to_string(align) + " (A6), " + std::to_string(size) +
           ") + free; glibc " + gnu_get_libc_version() + " malloc, default tunables; 1024 live";
  }

 private:
  std::size_t size_ = 0, align_ = 0;
  std::vector<void*> slots_;
};

// ---- libnuma: numa_alloc_onnode / numa_free (mmap + mbind: page aligned only)
class LibnumaPeer final : public AllocPeer {
 public:
  const char* name() const override { return "libnuma"; }
  bool init(const AllocOptions&, std::string* why) override {
    if (numa_available() < 0) {
      *why = "numa_available() < 0: the kernel has no NUMA support";
      return false;
    }
    return true;
  }
  bool fill(std::size_t live, std::size_t size, std::size_t, std::string* why) override {
    size_ = size;
    slots_.assign(live, nullptr);
    for (auto& s : slots_)
      if ((s = numa_alloc_onnode(size, 0)) == nullptr) {
        *why = "numa_alloc_onnode failed";
        return false;
      }
    return true;
  }
  bool cycle(std::size_t i) override {
    numa_free(slots_[i], size_);
    return (slots_[i] = numa_alloc_onnode(size_, 0)) != nullptr;
  }
  void drain() override {
    for (void* p : slots_) numa_free(p, size_);
    slots_.clear();
  }
  std::size_t align_for(std::size_t a6) const override { return std::min<std::size_t>(a6, 4096); }
  std::string config(std::size_t size, std::size_t) const override {
    return "numa_alloc_onnode(" + std::to_string(size) +
           ", 0) + numa_free: mmap + mbind per buffer, page-aligned only (4096 where A6 asks more); 1024 live";
  }

 private:
  std::size_t size_ = 0;
  std::vector<void*> slots_;
};

}  // namespace

std::unique_ptr<AllocPeer> make_peer(const std::string& name) {
  if (name == "numacma") return std::make_unique<NumacmaPeer>();
  if (name == "numacma-nozero") return std::make_unique<NumacmaPeer>(false);
  if (name == "glibc") return std::make_unique<GlibcPeer>();
  if (name == "libnuma") return std::make_unique<LibnumaPeer>();
  if (name.rfind("dpdk", 0) == 0) return make_dpdk_peer(name);
  return nullptr;
}

std::unique_ptr<AllocPeer> make_numacma_peer(Pool& pool, int node, std::string pool_words) {
  return std::make_unique<NumacmaPeer>(pool, node, std::move(pool_words));
}

bool time_pairs(AllocPeer& peer, const AllocOptions& o, std::size_t size, std::size_t align, Summary* out,
                std::string* why) {
  const unsigned reps = kAllocRounds.pick(o.repetitions, o.quick);
  const std::vector<std::uint32_t> order = slot_order(o.live, reps + 1);
  using clock = std::chrono::steady_clock;
  const std::size_t min_rounds = kAllocMinRounds.pick(0, o.quick);
  const auto budget = std::chrono::milliseconds(kAllocBudgetMs.pick(0, o.quick));
  if (!peer.fill(o.live, size, align, why)) {
    peer.drain();
    return false;
  }
  std::vector<double> samples;
  samples.reserve(reps);
  bool failed = false;
  const auto start = clock::now();
  for (unsigned round = 0; round <= reps && !failed; ++round) {  // round 0: warm-up
    // The slow peers (tens of µs a pair) stop early once they have used
    // their time budget and have enough rounds.
    if (samples.size() >= min_rounds && clock::now() - start > budget) break;
    const std::uint32_t* idx = order.data() + round * o.live;
    const auto t0 = clock::now();
    for (std::size_t k = 0; k < o.live; ++k) failed |= !peer.cycle(idx[k]);
    const auto t1 = clock::now();
    if (round > 0)
      samples.push_back(std::chrono::duration<double, std::nano>(t1 - t0).count() / static_cast<double>(o.live));
  }
  peer.drain();
  if (failed) {
    *why = "an allocation failed during the run";
    return false;
  }
  *out = summarize(samples);
  return true;
}

AllocReport run_alloc(const AllocOptions& o) {
  AllocReport rep;
  struct Live {
    std::string name;
    std::unique_ptr<AllocPeer> peer;
    bool ok = false;
    std::string why;
  };
  std::vector<Live> peers;
  for (const std::string& n : o.peers) {
    Live l{n, make_peer(n), false, ""};
    if (!l.peer) l.why = "unknown peer";
    else l.ok = l.peer->init(o, &l.why);
    if (n == "numacma" && l.ok) rep.numacma_backing = static_cast<NumacmaPeer*>(l.peer.get())->backing();
    if (n.rfind("dpdk", 0) == 0 && rep.dpdk_note.empty()) rep.dpdk_note = l.why;
    peers.push_back(std::move(l));
  }

  for (std::size_t size : o.sizes) {
    const std::size_t a6 = a6_alignment(size);
    double numacma_median = 0;
    const std::size_t first = rep.results.size();
    for (Live& l : peers) {
      AllocResult r;
      r.peer = l.name;
      r.size = size;
      r.align = l.peer ? l.peer->align_for(a6) : a6;
      if (!l.ok) {
        r.skipped = true;
        r.reason = l.why;
        r.config = l.peer ? l.peer->config(size, r.align) : "unknown peer";
        rep.results.push_back(r);
        continue;
      }
      Summary s;
      std::string why;
      const bool ran = time_pairs(*l.peer, o, size, r.align, &s, &why);
      r.config = l.peer->config(size, r.align);
      if (!ran) {
        r.skipped = true;
        r.reason = why;
        rep.results.push_back(r);
        continue;
      }
      r.median_ns = s.median;
      r.p99_ns = s.p99;
      if (l.name == "numacma") numacma_median = s.median;
      rep.results.push_back(r);
    }
    for (std::size_t i = first; i < rep.results.size(); ++i)
      if (!rep.results[i].skipped && numacma_median > 0)
        rep.results[i].ratio = rep.results[i].median_ns / numacma_median;
  }
  return rep;
}

Output alloc_output(const AllocOptions& o, const AllocReport& r) {
  Section s;
  const unsigned rounds = kAllocRounds.pick(o.repetitions, o.quick);
  s.intro = {
      "numacma bench alloc: " + std::to_string(o.live) + " live buffers, free + re-allocate in random order (seed " +
          std::to_string(kSeed) + "),",
      "ns per alloc+free pair over " + std::to_string(rounds) + " rounds of " + std::to_string(o.live) +
          " pairs (slow peers: at least " + std::to_string(kAllocMinRounds.pick(0, o.quick)) + ", " +
          num(kAllocBudgetMs.pick(0, o.quick) / 1e3, "%g") + " s budget" + (o.quick ? "; --quick" : "") +
          "); numacma backing: " + (r.numacma_backing.empty() ? "(none)" : r.numacma_backing) +
          "; ratio = peer median / numacma median",
      ""};
  s.configurations_title = "configurations (at " + (r.results.empty() ? "-" : size_text(r.results.back().size)) +
                           "; the align column gives each size's alignment)";
  for (const AllocResult& x : r.results) {
    Row w;
    w.bench = "alloc";
    w.cases = {col("peer", x.peer, x.peer), col("size", x.size, size_text(x.size)),
               col("align", x.align, size_text(x.align))};
    take_timings(w, x.peer, x);
    if (x.peer == "libnuma" && x.align < a6_alignment(x.size)) w.note = "page-aligned only";
    s.rows.push_back(std::move(w));
  }
  return {{std::move(s)}};
}

}  // namespace numacma::bench
