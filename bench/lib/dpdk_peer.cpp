// bench/lib/dpdk_peer.cpp — the dpdk peer: rte_malloc_socket / rte_free on the
// first NUMA socket, after rte_eal_init. Built only with libdpdk
// (NUMACMA_HAVE_DPDK); otherwise the peer reports itself skipped.
//
// EAL: hugepages with --in-memory (no files, no shared config) when the host
// has 512 free 2 MiB pages, else --no-huge --no-shconf (anonymous memory, the
// same rte_malloc heap code); -l 0: one lcore; the thread's CPU affinity is restored afterwards.
#include <sched.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "bench.hpp"

#ifdef NUMACMA_HAVE_DPDK
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_malloc.h>
#include <rte_memory.h>
#endif

namespace numacma::bench {

namespace {

#ifdef NUMACMA_HAVE_DPDK
long free_hugepages_2m() {
  std::ifstream f("/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages");
  long n = 0;
  return (f >> n) ? n : 0;
}

/** rte_eal_init once per process; the outcome is remembered. */
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

class DpdkPeer final : public AllocPeer {
 public:
  const char* name() const override { return "dpdk"; }
  bool init(const AllocOptions&, std::string* why) override {
    if (!eal_up(why)) return false;
    socket_ = 0;
    void* probe = rte_malloc_socket(nullptr, 4096, 4096, socket_);
    if (probe == nullptr) {
      socket_ = SOCKET_ID_ANY;
      probe = rte_malloc_socket(nullptr, 4096, 4096, socket_);
    }
    if (probe == nullptr) {
      *why = "rte_malloc_socket(4K) failed after EAL init";
      return false;
    }
    rte_free(probe);
    return true;
  }
  bool fill(std::size_t live, std::size_t size, std::size_t align, std::string* why) override {
    size_ = size;
    align_ = static_cast<unsigned>(align);
    slots_.assign(live, nullptr);
    for (auto& s : slots_)
      if ((s = rte_malloc_socket(nullptr, size, align_, socket_)) == nullptr) {
        *why = "rte_malloc_socket(" + std::to_string(size) + ") failed: heap too small";
        return false;
      }
    return true;
  }
  bool cycle(std::size_t i) override {
    rte_free(slots_[i]);
    return (slots_[i] = rte_malloc_socket(nullptr, size_, align_, socket_)) != nullptr;
  }
  void drain() override {
    for (void* p : slots_) rte_free(p);
    slots_.clear();
  }

 private:
  int socket_ = 0;
  std::size_t size_ = 0;
  unsigned align_ = 0;
  std::vector<void*> slots_;
};
#else
class DpdkPeer final : public AllocPeer {
 public:
  const char* name() const override { return "dpdk"; }
  bool init(const AllocOptions&, std::string* why) override {
    *why = "built without DPDK (libdpdk not found by pkg-config)";
    return false;
  }
  bool fill(std::size_t, std::size_t, std::size_t, std::string*) override { return false; }
  bool cycle(std::size_t) override { return false; }
  void drain() override {}
};
#endif

}  // namespace

std::unique_ptr<AllocPeer> make_dpdk_peer() { return std::make_unique<DpdkPeer>(); }

}  // namespace numacma::bench
