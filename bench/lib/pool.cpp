// bench/lib/pool.cpp — the pool workload (`numacma bench pool`) and its numacma
// and glibc peers (dpdk-mempool: dpdk_peer.cpp).
//
//   per object size (64, 512, 4096) and case (1 thread; 2 threads, each with its
//   own objects; 2 threads freeing each other's objects):
//     the peer creates its pool; one worker thread per slot set, each pinned to
//     its own CPU (when the process may run on two), fills its `live` (1024)
//     slots, then runs rounds:
//       barrier (not timed)
//       for i in a fixed-seed random permutation of the slots (seed 42 + thread;
//       64 permutations, used in turn):
//         free slots[i]; slots[i] = alloc()                   <- one "pair"
//       sample = the round's time / live                       (ns per pair)
//     with `cross`, thread t works in round r on the slots of thread (t + r) % 2:
//     after each barrier the two swap their slot sets, so each frees what the
//     other allocated. 101 warm-up rounds (quick: 1), then 10001 measured rounds
//     (quick: 9): a round of 1024 pairs lasts only some microseconds, so the
//     samples of a case spread over 0.1 s or more; a case that has run for 1 s
//     (quick: 0.2 s) stops once it has 1001 (quick: 2) measured rounds (these
//     numbers: targets.hpp, kPool*). Both threads' samples are pooled into one
//     median and p99. pool_output() makes the rows, and the 2-thread summary.
#include <gnu/libc-version.h>
#include <sched.h>

#include <atomic>
#include <barrier>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <limits>
#include <mutex>
#include <thread>

#include "bench.hpp"
#include "targets.hpp"
#include "numacma/dma_pool.hpp"
#include "numacma/numacma.hpp"

namespace numacma::bench {

std::unique_ptr<PoolPeer> make_dpdk_pool_peer();  // dpdk_peer.cpp

namespace {

constexpr std::size_t kAlign = 64;  // the DmaPool's block alignment (a cache line)

// ---- numacma: one DmaPool over a Pool (cma=1G), DmaPool::try_alloc + DmaBlock::release
class NumacmaPoolPeer final : public PoolPeer {
 public:
  const char* name() const override { return "numacma"; }
  bool init(const PoolBenchOptions& o, std::string* why) override {
    BenchPool bp;
    if (!make_bench_pool(o.backing, o.sysfs_root, {}, &bp, why, o.attach)) return false;
    pool_ = std::move(bp.pool);
    backing_ = bp.backing;
    words_ = bp.words;
    node_ = bp.node;
    dev_ = Device::on_node(node_, "bench-dev");
    return true;
  }
  bool setup(std::size_t object, unsigned, std::size_t, std::string* why) override {
    Result<DmaPool> dp = DmaPool::create(*pool_, dev_, "bench", object, kAlign, 0);
    if (!dp) {
      *why = "DmaPool::create(" + std::to_string(object) + "): " + dp.error().message;
      return false;
    }
    dp_ = std::move(*dp);
    return true;
  }
  void teardown() override { (void)dp_.destroy(); }

  class BlockSlots final : public Slots {
   public:
    BlockSlots(DmaPool* dp, std::size_t live) : dp_(dp), slots_(live) {}
    bool fill(std::string* why) override {
      for (DmaBlock& s : slots_) {
        Result<DmaBlock> b = dp_->alloc();
        if (!b) {
          *why = "DmaPool::alloc: " + b.error().message;
          return false;
        }
        s = std::move(*b);
      }
      return true;
    }
    bool round(const std::uint32_t* idx, std::size_t n) override {
      bool ok = true;
      for (std::size_t k = 0; k < n; ++k) {
        DmaBlock& s = slots_[idx[k]];
        ok &= s.release().ok();
        s = dp_->try_alloc();  // alloc() without the Result: the same block
        if (!s) return false;
      }
      return ok;
    }
    void drain() override {
      for (DmaBlock& s : slots_) (void)s.release();
    }

   private:
    DmaPool* dp_;
    std::vector<DmaBlock> slots_;
  };
  std::unique_ptr<Slots> make_slots(std::size_t live) override { return std::make_unique<BlockSlots>(&dp_, live); }
  std::string config(std::size_t object, unsigned threads) const override {
    return "DmaPool::create(pool, Device::on_node(" + std::to_string(node_) + "), \"bench\", " +
           std::to_string(object) + ", align " + std::to_string(kAlign) +
           ", boundary 0) on " + words_ + "; DmaPool::try_alloc + DmaBlock::release (RAII handles)" +
           (threads > 1 ? "; one pool shared by both threads" : "");
  }
  const std::string& backing() const { return backing_; }

 private:
  std::unique_ptr<Pool> pool_;
  Device dev_;
  DmaPool dp_;
  std::string backing_, words_;
  int node_ = 0;
};

// ---- glibc: malloc / free
class GlibcPoolPeer final : public PoolPeer {
 public:
  const char* name() const override { return "glibc"; }
  bool init(const PoolBenchOptions&, std::string*) override { return true; }
  bool setup(std::size_t object, unsigned, std::size_t, std::string*) override {
    object_ = object;
    return true;
  }
  void teardown() override {}
  class MallocSlots final : public Slots {
   public:
    MallocSlots(std::size_t object, std::size_t live) : object_(object), slots_(live, nullptr) {}
    ~MallocSlots() override { drain(); }
    bool fill(std::string* why) override {
      for (void*& s : slots_)
        if ((s = std::malloc(object_)) == nullptr) {
          *why = "malloc failed";
          return false;
        }
      return true;
    }
    bool round(const std::uint32_t* idx, std::size_t n) override {
      bool ok = true;
      for (std::size_t k = 0; k < n; ++k) {
        void*& s = slots_[idx[k]];
        std::free(s);
        ok &= (s = std::malloc(object_)) != nullptr;
      }
      return ok;
    }
    void drain() override {
      for (void*& s : slots_) std::free(s), s = nullptr;
    }

   private:
    std::size_t object_;
    std::vector<void*> slots_;
  };
  std::unique_ptr<Slots> make_slots(std::size_t live) override {
    return std::make_unique<MallocSlots>(object_, live);
  }
  std::string config(std::size_t object, unsigned) const override {
    return "glibc malloc(" + std::to_string(object) + ") + free; glibc " + gnu_get_libc_version() +
           ", default tunables (tcache, per-thread arenas)";
  }

 private:
  std::size_t object_ = 0;
};

/** The CPUs this process may run on, in order. */
std::vector<int> allowed_cpus() {
  std::vector<int> out;
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) != 0) return out;
  for (int c = 0; c < CPU_SETSIZE; ++c)
    if (CPU_ISSET(c, &set)) out.push_back(c);
  return out;
}

void pin_self(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  sched_setaffinity(0, sizeof set, &set);  // this thread only
}

struct CaseOut {
  bool ok = true;
  std::string why;
  std::vector<double> samples;  ///< every thread's, pooled
};

/** One case: `threads` workers (pinned to cpus[t] when cpus has one per thread).
 *  after_barrier: PoolBenchOptions::after_barrier (tests). */
CaseOut run_case(PoolPeer& peer, unsigned threads, bool cross, std::size_t live, unsigned warmup, unsigned rounds,
                 std::size_t min_rounds, std::chrono::milliseconds budget,
                 const std::vector<std::vector<std::uint32_t>>& orders, const std::vector<int>& cpus,
                 const std::function<void(unsigned, unsigned)>& after_barrier) {
  using clock = std::chrono::steady_clock;
  CaseOut out;
  std::vector<std::unique_ptr<PoolPeer::Slots>> slots;
  for (unsigned t = 0; t < threads; ++t) slots.push_back(peer.make_slots(live));
  std::barrier sync(static_cast<std::ptrdiff_t>(threads));
  std::atomic<bool> failed{false};
  std::mutex m;
  auto fail = [&](const std::string& why) {
    std::lock_guard<std::mutex> g(m);
    if (!failed.exchange(true)) out.why = why;
  };
  std::vector<std::vector<double>> samples(threads);
  // The round at which every thread stops: thread 0 publishes it (once)
  // before the barrier that opens that round, and every thread, after that
  // barrier, stops when its own round has reached it. A thread descheduled
  // after barrier r may read it only after thread 0 has published r + 1 (it
  // cannot have passed barrier r + 1, which waits for this thread): r < r + 1,
  // so it runs round r as thread 0 did and stops with it at r + 1. The
  // decision is a round number, not a flag: a flag set for round r + 1 and
  // read late in round r made such a thread leave a round early, and thread 0
  // then waited for it at the last barrier for ever (`bench pool` hung).
  constexpr unsigned kNever = std::numeric_limits<unsigned>::max();
  std::atomic<unsigned> stop_at{kNever};
  const auto start = clock::now();
  auto body = [&](unsigned t) {
    if (cpus.size() >= threads) pin_self(cpus[t]);
    samples[t].reserve(rounds);
    std::string why;
    const bool entered = peer.thread_enter(&why);
    if (!entered) fail(why);
    sync.arrive_and_wait();
    if (!failed.load() && !slots[t]->fill(&why)) fail(why);
    const std::size_t perms = orders[t].size() / live;
    for (unsigned r = 0; r < warmup + rounds; ++r) {  // the first `warmup` rounds are not sampled
      if (t == 0 && samples[0].size() >= min_rounds && clock::now() - start > budget) stop_at.store(r);
      sync.arrive_and_wait();  // not timed; every thread passes every barrier
      if (after_barrier) after_barrier(t, r);
      if (r >= stop_at.load()) break;
      if (failed.load()) continue;
      PoolPeer::Slots& s = *slots[cross ? (t + r) % threads : t];
      const std::uint32_t* idx = orders[t].data() + (r % perms) * live;
      const auto t0 = clock::now();
      const bool ok = s.round(idx, live);
      const auto t1 = clock::now();
      if (!ok) fail("an allocation or a free failed during the run");
      if (r >= warmup)
        samples[t].push_back(std::chrono::duration<double, std::nano>(t1 - t0).count() /
                             static_cast<double>(live));
    }
    sync.arrive_and_wait();
    slots[t]->drain();
    if (entered) peer.thread_exit();
  };
  std::vector<std::thread> workers;
  for (unsigned t = 0; t < threads; ++t) workers.emplace_back(body, t);
  for (std::thread& w : workers) w.join();
  out.ok = !failed.load();
  for (auto& v : samples) out.samples.insert(out.samples.end(), v.begin(), v.end());
  return out;
}

}  // namespace

std::unique_ptr<PoolPeer> make_pool_peer(const std::string& name) {
  if (name == "numacma") return std::make_unique<NumacmaPoolPeer>();
  if (name == "dpdk-mempool") return make_dpdk_pool_peer();
  if (name == "glibc") return std::make_unique<GlibcPoolPeer>();
  return nullptr;
}

PoolBenchReport run_pool(const PoolBenchOptions& o) {
  PoolBenchReport rep;
  const unsigned rounds = kPoolRounds.pick(o.rounds, o.quick);
  const unsigned warmup = kPoolWarmupRounds.pick(0, o.quick);
  // A case that has used its time budget stops after at least min_rounds measured rounds.
  const std::size_t min_rounds = kPoolMinRounds.pick(0, o.quick);
  const auto budget = std::chrono::milliseconds(kPoolBudgetMs.pick(o.budget_ms, o.quick));
  constexpr unsigned kMaxThreads = 2;
  constexpr unsigned kPermutations = 64;  // used in turn: 256 KiB of indexes per thread
  std::vector<std::vector<std::uint32_t>> orders;
  for (unsigned t = 0; t < kMaxThreads; ++t) orders.push_back(slot_order(o.live, kPermutations, kSeed + t));

  const std::vector<int> allowed = allowed_cpus();
  std::vector<int> cpus;
  if (allowed.size() >= kMaxThreads) {
    cpus.assign(allowed.begin(), allowed.begin() + kMaxThreads);
    rep.cpus = cpus;
    rep.note = "threads pinned: thread 0 on CPU " + std::to_string(cpus[0]) + ", thread 1 on CPU " +
               std::to_string(cpus[1]);
  } else {
    rep.note = "only " + std::to_string(allowed.size()) + " CPU allowed: threads not pinned";
  }

  struct Live {
    std::string name;
    std::unique_ptr<PoolPeer> peer;
    bool ok = false;
    std::string why;
  };
  std::vector<Live> peers;
  for (const std::string& n : o.peers) {
    Live l{n, make_pool_peer(n), false, ""};
    if (!l.peer) l.why = "unknown peer";
    else l.ok = l.peer->init(o, &l.why);
    if (n == "numacma" && l.ok) rep.numacma_backing = static_cast<NumacmaPoolPeer*>(l.peer.get())->backing();
    peers.push_back(std::move(l));
  }

  struct Case {
    unsigned threads;
    bool cross;
  };
  const Case cases[] = {{1, false}, {2, false}, {2, true}};
  for (std::size_t object : o.objects) {
    for (const Case& c : cases) {
      double numacma_median = 0;
      const std::size_t first = rep.results.size();
      for (Live& l : peers) {
        PoolBenchResult r;
        r.peer = l.name;
        r.object = object;
        r.threads = c.threads;
        r.cross = c.cross;
        std::string why;
        if (!l.ok) {
          r.skipped = true;
          r.reason = l.why;
        } else if (!l.peer->setup(object, c.threads, o.live, &why)) {
          r.skipped = true;
          r.reason = why;
        } else {
          CaseOut out = run_case(*l.peer, c.threads, c.cross, o.live, warmup, rounds, min_rounds, budget, orders, cpus,
                                 o.after_barrier);
          l.peer->teardown();
          if (!out.ok) {
            r.skipped = true;
            r.reason = out.why;
          } else {
            const Summary s = summarize(out.samples);
            r.median_ns = s.median;
            r.p99_ns = s.p99;
            if (l.name == "numacma") numacma_median = s.median;
          }
        }
        r.config = l.peer ? l.peer->config(object, c.threads) : "unknown peer";
        if (c.threads > 1)
          r.config += cpus.empty() ? "; threads not pinned (one CPU)"
                                   : "; threads pinned to CPUs " + std::to_string(cpus[0]) + " and " +
                                         std::to_string(cpus[1]);
        else if (!cpus.empty())
          r.config += "; thread pinned to CPU " + std::to_string(cpus[0]);
        r.config += "; " + std::to_string(o.live) + " live per thread" +
                    (c.cross ? ", the threads swap slot sets every round (each frees the other's)" : "");
        rep.results.push_back(r);
      }
      for (std::size_t i = first; i < rep.results.size(); ++i)
        if (!rep.results[i].skipped && numacma_median > 0)
          rep.results[i].ratio = rep.results[i].median_ns / numacma_median;
    }
  }
  return rep;
}

namespace {

/** The median of a pool case, or 0 when it is not in the report or was skipped. */
double pool_median(const PoolBenchReport& r, const std::string& peer, std::size_t object, unsigned threads,
                   bool cross) {
  for (const auto& x : r.results)
    if (x.peer == peer && x.object == object && x.threads == threads && x.cross == cross && !x.skipped)
      return x.median_ns;
  return 0;
}

}  // namespace

Output pool_output(const PoolBenchOptions& o, const PoolBenchReport& r) {
  Section s;
  s.intro = {
      "numacma bench pool: " + std::to_string(o.live) +
          " live objects per thread, free + re-allocate in random order (seed " + std::to_string(kSeed) +
          " + thread),",
      "ns per alloc+free pair over " + std::to_string(kPoolRounds.pick(o.rounds, o.quick)) +
          " rounds per thread after " + std::to_string(kPoolWarmupRounds.pick(0, o.quick)) + " warm-up round" +
          (kPoolWarmupRounds.pick(0, o.quick) == 1 ? "" : "s") +
          (o.quick ? " (--quick)" : "") + "; 2 threads: each with its own objects, or cross (the threads swap",
      "their objects every round, so each frees what the other allocated); " + r.note + ";",
      "numacma backing: " + (r.numacma_backing.empty() ? "(none)" : r.numacma_backing) +
          "; ratio = peer median / numacma median (same object, threads, cross)",
      ""};
  s.configurations_title =
      "configurations (at " + (r.results.empty() ? "-" : size_text(r.results.back().object)) + ", 2 threads)";
  for (const PoolBenchResult& x : r.results) {
    Row w;
    w.bench = "pool";
    w.cases = {col("peer", x.peer, x.peer), col("object", x.object, size_text(x.object)),
               col("threads", x.threads, std::to_string(x.threads)),
               col("cross", x.cross, x.threads == 1 ? "-" : x.cross ? "yes" : "no")};
    take_timings(w, x.peer, x);
    w.skipped_field = SkippedField::when_skipped;
    s.rows.push_back(std::move(w));
  }
  // Text only: two threads' throughput relative to one (the target is numacma's).
  Section t;
  t.json = false;
  t.timings = false;
  const std::string target = ratio_target(">=", kPoolTwoThreadMinSpeedup);
  t.intro = {"2-thread throughput relative to one thread (2 x median 1 thread / median 2 threads; target for",
             "numacma, two threads on the same DmaPool: " + target + "):"};
  for (const std::string& p : o.peers)
    for (std::size_t obj : o.objects) {
      const double m1 = pool_median(r, p, obj, 1, false);
      const double m2 = pool_median(r, p, obj, 2, false), m2x = pool_median(r, p, obj, 2, true);
      auto speedup = [&](double m) { return m1 <= 0 || m <= 0 ? 0.0 : 2 * m1 / m; };
      auto cell = [](double v) { return v > 0 ? num(v, "%.2fx") : std::string("-"); };
      Row w;
      w.bench = "pool";
      w.cases = {text_col("peer", p), text_col("object", size_text(obj)), text_col("own objects", cell(speedup(m2))),
                 text_col("cross", cell(speedup(m2x)))};
      if (p == "numacma" && speedup(m2) > 0) {
        w.target = target;
        w.met = speedup(m2) >= kPoolTwoThreadMinSpeedup;
      }
      t.rows.push_back(std::move(w));
    }
  return {{std::move(s), std::move(t)}};
}

}  // namespace numacma::bench
