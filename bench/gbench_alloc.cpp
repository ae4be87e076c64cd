// bench/gbench_alloc.cpp — Google Benchmark view of the alloc workload:
// one benchmark per peer and size (BM_alloc_free/<peer>/<size>), each
// iteration one alloc+free pair on a set of 1024 live buffers, slots taken in
// the same fixed-seed random order as `numacma bench alloc`.
//
//   numacma_gbench [--benchmark_filter=numacma] [google benchmark flags]
#include <benchmark/benchmark.h>

#include <map>
#include <memory>
#include <string>

#include "bench.hpp"

namespace nb = numacma::bench;

namespace {

constexpr std::size_t kLive = 1024;

struct PeerState {
  std::unique_ptr<nb::AllocPeer> peer;
  bool ok = false;
  std::string why;
};

PeerState& peer(const std::string& name) {
  static std::map<std::string, PeerState> peers;
  auto it = peers.find(name);
  if (it == peers.end()) {
    PeerState s;
    s.peer = nb::make_peer(name);
    if (s.peer) s.ok = s.peer->init(nb::AllocOptions{}, &s.why);
    else s.why = "unknown peer";
    it = peers.emplace(name, std::move(s)).first;
  }
  return it->second;
}

void BM_alloc_free(benchmark::State& state, std::string name, std::size_t size) {
  PeerState& p = peer(name);
  if (!p.ok) {
    state.SkipWithError(("skipped: " + p.why).c_str());
    return;
  }
  std::string why;
  const std::size_t align = p.peer->align_for(nb::a6_alignment(size));
  if (!p.peer->fill(kLive, size, align, &why)) {
    p.peer->drain();
    state.SkipWithError(why.c_str());
    return;
  }
  static const std::vector<std::uint32_t> order = nb::slot_order(kLive, 64);
  std::size_t k = 0;
  bool ok = true;
  for (auto _ : state) {
    ok &= p.peer->cycle(order[k]);
    if (++k == order.size()) k = 0;
  }
  p.peer->drain();
  if (!ok) state.SkipWithError("an allocation failed");
  state.SetLabel("align " + std::to_string(align));
}

}  // namespace

int main(int argc, char** argv) {
  for (const char* name : {"numacma", "dpdk", "dpdk-align64", "dpdk-memzone", "glibc", "libnuma"})
    for (std::size_t size : {4096u, 16384u, 65536u, 262144u})
      benchmark::RegisterBenchmark(("BM_alloc_free/" + std::string(name) + "/" + std::to_string(size)).c_str(),
                                   BM_alloc_free, std::string(name), size);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
