// bench/lib/dpdk_peer.cpp — the DPDK peers, after rte_eal_init. Built only with
// libdpdk (NUMACMA_HAVE_DPDK); otherwise every DPDK peer reports itself skipped.
//
//   alloc  dpdk          rte_malloc_socket(size, A6 alignment, socket) / rte_free
//          dpdk-align64  rte_malloc_socket(size, 64, socket) / rte_free
//          dpdk-zmalloc  rte_zmalloc_socket(size, 64, socket) / rte_free (zeroed)
//          dpdk-memzone  rte_memzone_reserve_aligned(name, size, socket,
//                        RTE_MEMZONE_IOVA_CONTIG, A6 alignment) / rte_memzone_free:
//                        DPDK's allocation that is IOVA-contiguous beyond a page
//                        in its default (dynamic) memory mode
//   pool   dpdk-mempool  rte_mempool_create(n 4095, object, cache 256) and
//                        rte_mempool_get / rte_mempool_put; every worker thread
//                        calls rte_thread_register() so it has an lcore id and
//                        so its own per-lcore cache
//
// EAL: hugepages with --in-memory (no files, no shared config) when the host
// has 512 free 2 MiB pages, else --no-huge --no-shconf (anonymous memory, the
// same heap code); -m 1024 preallocates the heap at init, so no peer maps
// hugepages while it is measured (each peer checks the heap's size before and
// after its run and says so in its configuration); -l 0: one lcore; the
// thread's CPU affinity is restored afterwards.
#include <sched.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "bench.hpp"

#ifdef NUMACMA_HAVE_DPDK
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_memory.h>
#include <rte_memzone.h>
#include <rte_mempool.h>
#endif

namespace numacma::bench {

namespace {

#ifdef NUMACMA_HAVE_DPDK
long free_hugepages_2m() {
  std::ifstream f("/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages");
  long n = 0;
  return (f >> n) ? n : 0;
}

/** rte_eal_init once per process; the outcome is remembered. On success *why
 *  is "EAL <arguments>". */
bool eal_up(std::string* why) {
  static int state = 0;  // 0 not tried, 1 up, -1 failed
  static std::string reason;
  if (state == 0) {
    std::vector<std::string> args = {"numacma-bench", "-l", "0", "--no-pci", "--no-telemetry",
                                     "--log-level=1", "-m", "1024"};
    // --in-memory needs hugepages; without them --no-huge with no shared config.
    if (free_hugepages_2m() >= 512) {
      args.insert(args.end(), {"--in-memory"});
    } else {
      args.insert(args.end(), {"--no-huge", "--no-shconf"});
    }
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    cpu_set_t saved;
    const bool have_mask = sched_getaffinity(0, sizeof saved, &saved) == 0;
    const int rc = rte_eal_init(static_cast<int>(argv.size()), argv.data());
    if (have_mask) sched_setaffinity(0, sizeof saved, &saved);
    if (rc < 0) {
      state = -1;
      reason = std::string("rte_eal_init failed: ") + rte_strerror(rte_errno);
    } else {
      state = 1;
      std::string joined;
      for (std::size_t i = 1; i < args.size(); ++i) joined += (i > 1 ? " " : "") + args[i];
      reason = "EAL " + joined;
    }
  }
  *why = reason;
  return state == 1;
}

/** Bytes of every socket's malloc heap (what the EAL has mapped for it). */
std::size_t heap_bytes() {
  std::size_t total = 0;
  for (unsigned i = 0; i < rte_socket_count(); ++i) {
    rte_malloc_socket_stats st{};
    if (rte_malloc_get_socket_stats(rte_socket_id_by_idx(i), &st) == 0) total += st.heap_totalsz_bytes;
  }
  return total;
}

std::string mib(std::size_t b) { return std::to_string(b >> 20) + " MiB"; }

/** "EAL ... (the heap, N MiB, preallocated at init: the same before and after
 *  the run)" or what changed. */
std::string eal_config(const std::string& eal, std::size_t before, std::size_t after) {
  if (eal.empty()) return "the EAL is not up";
  std::string s = eal + "; the EAL preallocates its memory (-m 1024): heap " + mib(before);
  if (after == before) s += " before and after the run, no hugepage mapped while measuring";
  else s += " before the run, " + mib(after) + " after: the heap grew while measuring";
  return s;
}

/** The socket the peers allocate on: 0, or any when socket 0 cannot serve. */
int pick_socket() {
  void* probe = rte_malloc_socket(nullptr, 4096, 4096, 0);
  if (probe != nullptr) {
    rte_free(probe);
    return 0;
  }
  probe = rte_malloc_socket(nullptr, 4096, 4096, SOCKET_ID_ANY);
  if (probe == nullptr) return -2;
  rte_free(probe);
  return SOCKET_ID_ANY;
}

std::string socket_name(int s) { return s == SOCKET_ID_ANY ? "any socket" : "socket " + std::to_string(s); }

enum class Kind { malloc_a6, malloc_align64, zmalloc_align64, memzone };

class DpdkPeer final : public AllocPeer {
 public:
  explicit DpdkPeer(Kind k) : kind_(k) {}
  const char* name() const override {
    return kind_ == Kind::malloc_a6         ? "dpdk"
           : kind_ == Kind::malloc_align64  ? "dpdk-align64"
           : kind_ == Kind::zmalloc_align64 ? "dpdk-zmalloc"
                                            : "dpdk-memzone";
  }
  bool init(const AllocOptions&, std::string* why) override {
    if (!eal_up(why)) return false;
    eal_ = *why;
    socket_ = pick_socket();
    if (socket_ == -2) {
      *why = "rte_malloc_socket(4K) failed after EAL init";
      return false;
    }
    return true;
  }
  std::size_t align_for(std::size_t a6) const override {
    return kind_ == Kind::malloc_align64 || kind_ == Kind::zmalloc_align64 ? 64 : a6;
  }
  bool fill(std::size_t live, std::size_t size, std::size_t align, std::string* why) override {
    size_ = size;
    align_ = static_cast<unsigned>(align);
    heap_before_ = heap_bytes();
    slots_.assign(live, nullptr);
    if (kind_ == Kind::memzone) {
      // One name per slot: a slot's memzone is freed before it is reserved again.
      names_.resize(live);
      for (std::size_t i = 0; i < live; ++i) std::snprintf(names_[i].data(), names_[i].size(), "ncb%zu", i);
    }
    for (std::size_t i = 0; i < live; ++i)
      if (!get(i)) {
        *why = kind_ == Kind::memzone
                   ? "rte_memzone_reserve_aligned(" + std::to_string(size) + ") failed: " + rte_strerror(rte_errno)
                   : "rte_malloc_socket(" + std::to_string(size) + ") failed: heap too small";
        return false;
      }
    return true;
  }
  bool cycle(std::size_t i) override {
    put(i);
    return get(i);
  }
  void drain() override {
    for (std::size_t i = 0; i < slots_.size(); ++i)
      if (slots_[i] != nullptr) put(i);
    slots_.clear();
    heap_after_ = heap_bytes();
  }
  std::string config(std::size_t size, std::size_t align) const override {
    std::string s;
    const std::string a = std::to_string(align) + (align_for(align) == 64 ? "" : " (A6)");
    if (kind_ == Kind::memzone)
      s = "rte_memzone_reserve_aligned(name, " + std::to_string(size) + ", " + socket_name(socket_) +
          ", RTE_MEMZONE_IOVA_CONTIG, align " + a + ") + rte_memzone_free";
    else if (kind_ == Kind::zmalloc_align64)
      s = "rte_zmalloc_socket(NULL, " + std::to_string(size) + ", align " + a + ", " + socket_name(socket_) +
          ") + rte_free (zeroed: DPDK's zeroing allocator)";
    else
      s = "rte_malloc_socket(NULL, " + std::to_string(size) + ", align " + a + ", " + socket_name(socket_) +
          ") + rte_free";
    return s + "; 1024 live; " + eal_config(eal_, heap_before_, heap_after_);
  }

 private:
  bool get(std::size_t i) {
    if (kind_ == Kind::memzone) {
      const rte_memzone* mz =
          rte_memzone_reserve_aligned(names_[i].data(), size_, socket_, RTE_MEMZONE_IOVA_CONTIG, align_);
      zones_.resize(slots_.size());
      zones_[i] = mz;
      slots_[i] = mz != nullptr ? mz->addr : nullptr;
    } else if (kind_ == Kind::zmalloc_align64) {
      slots_[i] = rte_zmalloc_socket(nullptr, size_, align_, socket_);
    } else {
      slots_[i] = rte_malloc_socket(nullptr, size_, align_, socket_);
    }
    return slots_[i] != nullptr;
  }
  void put(std::size_t i) {
    if (kind_ == Kind::memzone) rte_memzone_free(zones_[i]);
    else rte_free(slots_[i]);
    slots_[i] = nullptr;
  }

  Kind kind_;
  std::string eal_;
  int socket_ = 0;
  std::size_t size_ = 0;
  unsigned align_ = 0;
  std::size_t heap_before_ = 0, heap_after_ = 0;
  std::vector<void*> slots_;
  std::vector<const rte_memzone*> zones_;
  std::vector<std::array<char, RTE_MEMZONE_NAMESIZE>> names_;
};

// ---- the pool workload's peer: rte_mempool with a per-lcore cache
class MempoolPeer final : public PoolPeer {
 public:
  static constexpr unsigned kCache = 256;
  static constexpr unsigned kElements = 4095;  // 2^12 - 1: the ring's best size
  const char* name() const override { return "dpdk-mempool"; }
  bool init(const PoolBenchOptions&, std::string* why) override {
    if (!eal_up(why)) return false;
    eal_ = *why;
    socket_ = pick_socket();
    if (socket_ == -2) {
      *why = "rte_malloc_socket(4K) failed after EAL init";
      return false;
    }
    return true;
  }
  bool setup(std::size_t object, unsigned threads, std::size_t live, std::string* why) override {
    if (threads * live + threads * kCache * 3 / 2 > kElements) {
      *why = "the mempool's " + std::to_string(kElements) + " elements cannot hold " +
             std::to_string(threads * live) + " live objects and the caches";
      return false;
    }
    object_ = object;
    heap_before_ = heap_bytes();
    char name[RTE_MEMPOOL_NAMESIZE];
    std::snprintf(name, sizeof name, "ncbmp%u", seq_++);
    mp_ = rte_mempool_create(name, kElements, static_cast<unsigned>(object), kCache, 0, nullptr, nullptr,
                             nullptr, nullptr, socket_, 0);
    if (mp_ == nullptr) {
      *why = std::string("rte_mempool_create failed: ") + rte_strerror(rte_errno);
      return false;
    }
    ops_ = rte_mempool_get_ops(mp_->ops_index)->name;
    return true;
  }
  void teardown() override {
    if (mp_ != nullptr) rte_mempool_free(mp_);
    mp_ = nullptr;
  }
  bool thread_enter(std::string* why) override {
    if (rte_thread_register() != 0) {
      *why = std::string("rte_thread_register failed: ") + rte_strerror(rte_errno);
      return false;
    }
    if (rte_lcore_id() == LCORE_ID_ANY) {
      *why = "rte_thread_register gave the thread no lcore id";
      return false;
    }
    return true;
  }
  void thread_exit() override { rte_thread_unregister(); }

  class MpSlots final : public Slots {
   public:
    MpSlots(rte_mempool* mp, std::size_t live) : mp_(mp), slots_(live, nullptr) {}
    bool fill(std::string* why) override {
      for (void*& s : slots_)
        if (rte_mempool_get(mp_, &s) != 0) {
          s = nullptr;
          *why = "rte_mempool_get failed while filling";
          return false;
        }
      return true;
    }
    bool round(const std::uint32_t* idx, std::size_t n) override {
      bool ok = true;
      for (std::size_t k = 0; k < n; ++k) {
        void*& s = slots_[idx[k]];
        rte_mempool_put(mp_, s);
        ok &= rte_mempool_get(mp_, &s) == 0;
      }
      return ok;
    }
    void drain() override {
      for (void*& s : slots_)
        if (s != nullptr) rte_mempool_put(mp_, s), s = nullptr;
    }

   private:
    rte_mempool* mp_;
    std::vector<void*> slots_;
  };
  std::unique_ptr<Slots> make_slots(std::size_t live) override { return std::make_unique<MpSlots>(mp_, live); }

  std::string config(std::size_t object, unsigned threads) const override {
    std::string s = "rte_mempool_create(n " + std::to_string(kElements) + ", elt " + std::to_string(object) +
                    ", cache " + std::to_string(kCache) + " per lcore, " + socket_name(socket_) +
                    ", flags 0: ops " + ops_ + ") + rte_mempool_get/rte_mempool_put; ";
    s += threads == 1 ? "the thread" : "each thread";
    s += " registered with rte_thread_register() (its own lcore id, so its own cache); " + eal_ +
         "; the EAL preallocates its memory (-m 1024): heap " + mib(heap_before_);
    return s;
  }

 private:
  std::string eal_, ops_;
  int socket_ = 0;
  unsigned seq_ = 0;
  std::size_t object_ = 0;
  std::size_t heap_before_ = 0;
  rte_mempool* mp_ = nullptr;
};

#else
class DpdkPeer final : public AllocPeer {
 public:
  explicit DpdkPeer(const char* n) : name_(n) {}
  const char* name() const override { return name_; }
  bool init(const AllocOptions&, std::string* why) override {
    *why = "built without DPDK (libdpdk not found by pkg-config)";
    return false;
  }
  bool fill(std::size_t, std::size_t, std::size_t, std::string*) override { return false; }
  bool cycle(std::size_t) override { return false; }
  void drain() override {}
  std::string config(std::size_t, std::size_t) const override { return "built without DPDK"; }

 private:
  const char* name_;
};

class MempoolPeer final : public PoolPeer {
 public:
  const char* name() const override { return "dpdk-mempool"; }
  bool init(const PoolBenchOptions&, std::string* why) override {
    *why = "built without DPDK (libdpdk not found by pkg-config)";
    return false;
  }
  bool setup(std::size_t, unsigned, std::size_t, std::string*) override { return false; }
  void teardown() override {}
  std::unique_ptr<Slots> make_slots(std::size_t) override { return nullptr; }
  std::string config(std::size_t, unsigned) const override { return "built without DPDK"; }
};
#endif

}  // namespace

std::unique_ptr<AllocPeer> make_dpdk_peer(const std::string& name) {
#ifdef NUMACMA_HAVE_DPDK
  if (name == "dpdk") return std::make_unique<DpdkPeer>(Kind::malloc_a6);
  if (name == "dpdk-align64") return std::make_unique<DpdkPeer>(Kind::malloc_align64);
  if (name == "dpdk-memzone") return std::make_unique<DpdkPeer>(Kind::memzone);
  if (name == "dpdk-zmalloc") return std::make_unique<DpdkPeer>(Kind::zmalloc_align64);
#else
  if (name == "dpdk") return std::make_unique<DpdkPeer>("dpdk");
  if (name == "dpdk-align64") return std::make_unique<DpdkPeer>("dpdk-align64");
  if (name == "dpdk-memzone") return std::make_unique<DpdkPeer>("dpdk-memzone");
  if (name == "dpdk-zmalloc") return std::make_unique<DpdkPeer>("dpdk-zmalloc");
#endif
  return nullptr;
}

std::unique_ptr<PoolPeer> make_dpdk_pool_peer() { return std::make_unique<MempoolPeer>(); }

}  // namespace numacma::bench
