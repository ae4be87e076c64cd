// bench/lib/cmdq.cpp — a device command queue in a numacma buffer.
//
//   buffer (one alloc_coherent of 8 KiB on the queue's node):
//     [0, 64)      tail       (driver -> device: commands written up to here)
//     [64, 128)    head       (device -> driver: commands consumed up to here)
//     [128, 192)   completion (device writes the SYNC command's argument)
//     [4096, 8192) ring of 256 commands of 16 bytes {u32 op, u32 seq, u64 arg}
//
//   driver thread (pinned to a CPU of node C): write batch-1 NOPs and a SYNC,
//     publish the tail (release), spin until completion == the SYNC's argument
//   device thread (pinned to a CPU of node D): spin on the tail (acquire),
//     consume every command, on SYNC store its argument to completion (release)
//
// One sample = one batch's round trip, from the first command written to the
// completion seen. The queue sits on the device's node (local) and then on
// every other node with memory; ratio = median / local median.
#include <pthread.h>
#include <sched.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>

#include "bench.hpp"
#include "targets.hpp"
#include "numacma/numacma.hpp"
#include "topology/topology.hpp"

namespace numacma::bench {

namespace {

struct Cmd {
  std::uint32_t op;  // 1 NOP, 2 SYNC
  std::uint32_t seq;
  std::uint64_t arg;
};
static_assert(sizeof(Cmd) == 16);
constexpr std::uint32_t kRing = 256;
constexpr std::size_t kBufBytes = 8192;

bool pin(int cpu) {
  cpu_set_t s;
  CPU_ZERO(&s);
  CPU_SET(cpu, &s);
  return pthread_setaffinity_np(pthread_self(), sizeof s, &s) == 0;
}

std::atomic<std::uint64_t>* word(void* base, std::size_t off) {
  return reinterpret_cast<std::atomic<std::uint64_t>*>(static_cast<char*>(base) + off);
}

/** Runs `rounds` batches; returns the per-batch round trips in ns (empty on failure). */
std::vector<double> run_queue(void* buf, int driver_cpu, int device_cpu, unsigned batch,
                              unsigned rounds) {
  std::memset(buf, 0, kBufBytes);
  auto* tail = word(buf, 0);
  auto* head = word(buf, 64);
  auto* done = word(buf, 128);
  auto* ring = reinterpret_cast<Cmd*>(static_cast<char*>(buf) + 4096);
  std::atomic<bool> stop{false}, pinned_ok{true};
  const bool same_cpu = driver_cpu == device_cpu;

  std::thread device([&] {
    if (!pin(device_cpu)) pinned_ok = false;
    std::uint64_t h = 0;
    volatile std::uint64_t sink = 0;
    while (!stop.load(std::memory_order_relaxed)) {
      const std::uint64_t t = tail->load(std::memory_order_acquire);
      if (t == h) {
        if (same_cpu) sched_yield();
        continue;
      }
      for (; h != t; ++h) {
        const Cmd& c = ring[h % kRing];
        if (c.op == 2) done->store(c.arg, std::memory_order_release);
        else sink = sink + c.arg;
      }
      head->store(h, std::memory_order_release);
    }
  });

  std::vector<double> ns;
  ns.reserve(rounds);
  std::thread driver([&] {
    if (!pin(driver_cpu)) pinned_ok = false;
    using clock = std::chrono::steady_clock;
    std::uint64_t t = 0;
    for (unsigned r = 0; r < rounds + rounds / 10; ++r) {  // the first 10 % warm up
      const std::uint64_t token = r + 1;
      const auto t0 = clock::now();
      for (unsigned i = 0; i + 1 < batch; ++i)
        ring[(t + i) % kRing] = Cmd{1, static_cast<std::uint32_t>(t + i), i};
      ring[(t + batch - 1) % kRing] = Cmd{2, static_cast<std::uint32_t>(t + batch - 1), token};
      t += batch;
      tail->store(t, std::memory_order_release);
      while (done->load(std::memory_order_acquire) != token)
        if (same_cpu) sched_yield();
      const auto t1 = clock::now();
      if (r >= rounds / 10) ns.push_back(std::chrono::duration<double, std::nano>(t1 - t0).count());
    }
    (void)head;
  });
  driver.join();
  stop = true;
  device.join();
  if (!pinned_ok) ns.clear();
  return ns;
}

}  // namespace

CmdqReport run_cmdq(const CmdqOptions& o) {
  CmdqReport rep;
  const unsigned rounds = kCmdqRounds.pick(o.rounds, o.quick);
  const unsigned batch = std::max(2u, std::min(o.batch, kRing));
  Result<topo::Topology> t = topo::Topology::from_sysfs(o.sysfs_root);
  if (!t) {
    rep.ok = false;
    rep.error = t.error().message;
    return rep;
  }
  std::vector<const topo::NodeInfo*> cpu_nodes, mem_nodes;
  for (const auto& n : t->nodes()) {
    if (!n.cpus.empty()) cpu_nodes.push_back(&n);
    if (n.has_memory) mem_nodes.push_back(&n);
  }
  if (cpu_nodes.empty() || mem_nodes.empty()) {
    rep.ok = false;
    rep.error = "no node with CPUs or no node with memory";
    return rep;
  }
  const topo::NodeInfo& cnode = *cpu_nodes.front();
  const topo::NodeInfo& dnode = *cpu_nodes.back();
  const int driver_cpu = cnode.cpus.front();
  int device_cpu = dnode.cpus.back();
  if (device_cpu == driver_cpu && dnode.cpus.size() > 1) device_cpu = dnode.cpus[dnode.cpus.size() - 2];

  PoolOptions po;
  po.params = "cma_pernuma=4M";
  po.backing = o.backing;
  po.sysfs_root = o.sysfs_root;
  for (const std::string& bdf : o.vfio) po.vfio.push_back(VfioDeviceSpec{bdf, ~std::uint64_t{0}});
  Result<Pool> pool = Pool::create(po);
  if (!pool) {
    rep.ok = false;
    rep.error = "Pool::create(cma_pernuma=4M): " + pool.error().message;
    return rep;
  }
  // Queue on the device's node first (local), then on every other node with memory.
  std::vector<int> queue_nodes = {dnode.id};
  for (const auto* n : mem_nodes)
    if (n->id != dnode.id) queue_nodes.push_back(n->id);
  if (t->nodes().size() == 1)
    rep.note = "one NUMA node on this host: only the local figure (driver CPU " +
               std::to_string(driver_cpu) + ", device CPU " + std::to_string(device_cpu) +
               ", queue on node " + std::to_string(dnode.id) + ")";
  double local = 0;
  for (int q : queue_nodes) {
    Result<DmaBuffer> b = pool->alloc_coherent(Device::on_node(q, "cmdq"), kBufBytes);
    if (!b) {
      rep.ok = false;
      rep.error = "alloc_coherent(queue on node " + std::to_string(q) + "): " + b.error().message;
      return rep;
    }
    std::vector<double> ns = run_queue(b->cpu(), driver_cpu, device_cpu, batch, rounds);
    if (ns.empty()) {
      rep.ok = false;
      rep.error = "could not pin the driver/device threads to CPUs " + std::to_string(driver_cpu) +
                  "/" + std::to_string(device_cpu);
      return rep;
    }
    const Summary s = summarize(ns);
    CmdqResult r;
    r.driver_node = cnode.id;
    r.driver_cpu = driver_cpu;
    r.device_node = dnode.id;
    r.device_cpu = device_cpu;
    r.queue_node = b->node();
    r.area = b->area_name();
    r.median_ns = s.median;
    r.p99_ns = s.p99;
    r.local = q == dnode.id;
    if (r.local) local = s.median;
    r.ratio = local > 0 ? s.median / local : 0;
    rep.results.push_back(r);
  }
  return rep;
}

Output cmdq_output(const CmdqOptions& o, const CmdqReport& r) {
  Section s;
  s.intro = {"numacma bench cmdq: batches of " + std::to_string(o.batch) +
                 " commands (16 bytes) ending in SYNC; round trip until",
             "the completion word is seen; ratio = median / median with the queue on the device's node; " +
                 std::to_string(kCmdqRounds.pick(o.rounds, o.quick)) + " batches"};
  if (!r.note.empty()) s.intro.push_back(r.note);
  s.intro.push_back("");
  for (const CmdqResult& x : r.results) {
    Row w;
    w.bench = "cmdq";
    w.cases = {json_col("driver_node", x.driver_node), json_col("driver_cpu", x.driver_cpu),
               text_col("driver (node/cpu)", std::to_string(x.driver_node) + "/" + std::to_string(x.driver_cpu)),
               json_col("device_node", x.device_node), json_col("device_cpu", x.device_cpu),
               text_col("device (node/cpu)", std::to_string(x.device_node) + "/" + std::to_string(x.device_cpu)),
               {"queue_node", x.queue_node, "queue node", std::to_string(x.queue_node) + (x.local ? " (local)" : "")},
               json_col("local", x.local), col("area", x.area, x.area), json_col("batch", o.batch)};
    w.peer = "numacma";
    w.config = "Pool::create(cma_pernuma=4M, backing " + o.backing + " (asked)" + (o.vfio.empty() ? "" : ", vfio") +
               "); the ring: alloc_coherent(Device::on_node(" + std::to_string(x.queue_node) + "), area " + x.area +
               "); driver thread on CPU " + std::to_string(x.driver_cpu) + ", device thread on CPU " +
               std::to_string(x.device_cpu);
    w.median_ns = x.median_ns;
    w.p99_ns = x.p99_ns;
    w.ratio = x.ratio;
    if (!r.note.empty()) w.extra = {json_col("note", r.note)};
    w.skipped_field = SkippedField::never;
    s.rows.push_back(std::move(w));
  }
  return {{std::move(s)}};
}

}  // namespace numacma::bench
