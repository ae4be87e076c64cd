// numacma-dpdkcheck — the DPDK guest check (tests/vm, topology dpdk2): two
// virtio-net (or two e1000e) ports bound to vfio-pci behind an emulated Intel
// IOMMU, on two nodes, joined by a QEMU hub. DPDK's own PMD drives them
// (net_virtio, net_e1000_em); the memory comes from numacma (numacma/dpdk.h):
//
//   numacma-dpdkcheck BDF0 NODE0 BDF1 NODE1 PACKETS [--mask32 PORT | --mask-below-area PORT]
//                     [--pool NAME]
//
//   1. rte_eal_init (hugepages on both nodes, IOVA-as-VA, VFIO), a pool with a
//      per-NUMA area on each node (--pool: the reservation NAME, attached),
//      ncma_dpdk_register
//   2. per port: numacma's node for it (its PCI node), its heap socket and
//      mbuf pool; every mbuf on that node (move_pages) and in that node's
//      area (its IOVA in the area's range, the area's used pages); with
//      --mask32 PORT that port's IOVAs all below 4 GiB; with
//      --mask-below-area PORT that port's mask is the largest 2^k - 1 below
//      its node's per-NUMA area, which it then cannot reach (A8): no mbuf
//      there, every IOVA under the mask, in the default area (A5), and the
//      device still receives every frame at those IOVAs
//   3. PACKETS frames from port 0 to port 1, each payload checked in order
//      (the device wrote them through the IOMMU at numacma's IOVAs)
//   4. each port's rings on the device's node: net_virtio's (allocated at
//      probe, on the device's socket, in DPDK's own memory, not numacma's), or
//      a PMD's that allocates them at queue setup (net_e1000_em, on e1000e
//      ports): inside the port's node's area, from its numacma heap
//   5. teardown in the documented order; every area's used pages back to 0
//   with --pool, numacma::status(NAME) (what `numacma status` prints, read
//   from the reservation's state) counts each port's mbufs in its node's area
//   while they live, as the process's own stats do, and 0 after the teardown
// Prints "dpdkcheck: PASS ..." and exits 0, or a FAIL line per problem and 1.
#include <numaif.h>
#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_memzone.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "numacma/dpdk.hpp"
#include "numacma/numacma.hpp"
#include "numacma/shared.hpp"

namespace {

int g_fail = 0;
void bad(const std::string& what) {
  std::printf("FAIL: %s\n", what.c_str());
  g_fail = 1;
}

constexpr std::uint16_t kEtherType = 0x88b5;  // local experimental
constexpr unsigned kPayload = 96, kBurst = 32, kWindow = 128;

int node_of(const void* p) {
  void* page = reinterpret_cast<void*>(reinterpret_cast<std::uintptr_t>(p) & ~std::uintptr_t{4095});
  int status = -1;
  if (move_pages(0, 1, &page, nullptr, &status, 0) != 0) return -2;
  return status;
}

const numacma::AreaReport* pernuma(const numacma::Stats& st, int node) {
  for (const auto& a : st.areas)
    if (a.kind == "pernuma" && a.node == node) return &a;
  return nullptr;
}

enum class Mask { none, bits32, below_area };

struct Port {
  std::uint16_t id;
  int want_node;
  Mask mode = Mask::none;
  std::uint64_t mask = ~std::uint64_t{0};
  int socket = -1;
  rte_mempool* mp = nullptr;
};

const numacma::AreaReport* area_of(const numacma::Stats& st, std::uint64_t iova) {
  for (const auto& a : st.areas)
    if (iova >= a.base_dma && iova < a.base_dma + a.pages * 4096) return &a;
  return nullptr;
}

std::uint8_t pattern(std::uint32_t seq, unsigned i) { return static_cast<std::uint8_t>(seq * 7 + i * 13); }

/** Every mbuf of the port's pool: on its node and in its node's area, under
 *  its mask; with Mask::below_area none in that area, all in the default one. */
void check_mbufs(const numacma::Pool& pool, const Port& p) {
  const numacma::Stats st = pool.stats();
  const numacma::AreaReport* a = pernuma(st, p.want_node);
  if (a == nullptr) return bad("no pernuma area on node " + std::to_string(p.want_node));
  std::vector<rte_mbuf*> m(2047);
  if (rte_pktmbuf_alloc_bulk(p.mp, m.data(), 2047) != 0) return bad("rte_pktmbuf_alloc_bulk");
  unsigned off_node = 0, off_area = 0, in_default = 0, high = 0;
  std::uint64_t top = 0;
  for (rte_mbuf* b : m) {
    off_node += node_of(b->buf_addr) != p.want_node;
    off_area += !(b->buf_iova >= a->base_dma && b->buf_iova + b->buf_len <= a->base_dma + a->pages * 4096);
    const numacma::AreaReport* where = area_of(st, b->buf_iova);
    in_default += where != nullptr && where->kind == "default";
    high += b->buf_iova + b->buf_len - 1 > p.mask;
    top = std::max<std::uint64_t>(top, b->buf_iova + b->buf_len - 1);
  }
  rte_pktmbuf_free_bulk(m.data(), 2047);
  const std::string port = "port " + std::to_string(p.id);
  std::printf("%s: 2047 mbufs, %u off node %d, %u outside %s (IOVA 0x%llx+%llu pages, %llu used), %u in the "
              "default area, highest IOVA 0x%llx, mask 0x%llx\n",
              port.c_str(), off_node, p.want_node, off_area, a->name.c_str(),
              static_cast<unsigned long long>(a->base_dma), static_cast<unsigned long long>(a->pages),
              static_cast<unsigned long long>(a->used), in_default, static_cast<unsigned long long>(top),
              static_cast<unsigned long long>(p.mask));
  if (high) bad(port + ": " + std::to_string(high) + " mbufs above its DMA mask");
  if (p.mode == Mask::below_area) {
    if (off_area != 2047) bad(port + ": mbufs in " + a->name + ", which its mask cannot reach");
    if (in_default != 2047) bad(port + ": mbufs outside the default area (A5 after an unreachable area)");
    if (a->used != 0) bad(a->name + " counts pages its device cannot reach");
    return;
  }
  if (off_node) bad(port + ": mbufs off the device's node");
  if (off_area) bad(port + ": mbufs outside its node's area");
  if (a->used < 2047ULL * RTE_MBUF_DEFAULT_BUF_SIZE / 4096) bad(a->name + " does not count the mbufs");
}

/** The port's mask for its mode: 32 bits, or the largest 2^k - 1 below its
 *  node's per-NUMA area (which must then leave the default area reachable). */
bool choose_mask(const numacma::Pool& pool, Port& p) {
  if (p.mode == Mask::bits32) p.mask = 0xffffffffULL;
  if (p.mode != Mask::below_area) return true;
  const numacma::Stats st = pool.stats();
  const numacma::AreaReport* a = pernuma(st, p.want_node);
  const numacma::AreaReport* d = nullptr;
  for (const auto& x : st.areas)
    if (x.kind == "default") d = &x;
  if (a == nullptr || d == nullptr) return bad("no pernuma or default area"), false;
  if (a->base_dma < 2) return bad(a->name + " starts at IOVA 0: no mask lies below it"), false;
  p.mask = (std::uint64_t{1} << (63 - __builtin_clzll(a->base_dma))) - 1;
  std::printf("port %u: mask 0x%llx, below %s at 0x%llx; %s at 0x%llx+%llu pages\n", p.id,
              static_cast<unsigned long long>(p.mask), a->name.c_str(), static_cast<unsigned long long>(a->base_dma),
              d->name.c_str(), static_cast<unsigned long long>(d->base_dma), static_cast<unsigned long long>(d->pages));
  if (d->base_dma + d->pages * 4096 - 1 > p.mask)
    return bad("the default area lies above the mask too: the check proves nothing here"), false;
  return true;
}

bool setup(numacma::Pool& pool, Port& p) {
  if (!choose_mask(pool, p)) return false;
  if (p.mode != Mask::none) {
    if (auto s = numacma::dpdk::set_dma_mask(pool, p.id, p.mask); !s) return bad(s.error().message), false;
  }
  auto dev = numacma::dpdk::port_device(pool, p.id);
  if (!dev) return bad(dev.error().message), false;
  std::printf("port %u: %s, numacma places its memory for node %d\n", p.id, dev->name.c_str(), dev->node);
  if (dev->node != p.want_node) bad("port " + std::to_string(p.id) + ": node " + std::to_string(dev->node) +
                                    ", expected " + std::to_string(p.want_node));
  auto s = numacma::dpdk::socket(pool, p.id);
  if (!s) return bad(s.error().message), false;
  p.socket = *s;
  auto mp = numacma::dpdk::pktmbuf_pool_create(pool, p.id, "mb" + std::to_string(p.id), 2047, 64, 0,
                                               RTE_MBUF_DEFAULT_BUF_SIZE);
  if (!mp) return bad(mp.error().message), false;
  p.mp = *mp;
  check_mbufs(pool, p);  // all of them, before the rx queue holds some
  struct rte_eth_conf conf {};
  if (rte_eth_dev_configure(p.id, 1, 1, &conf) != 0) return bad("rte_eth_dev_configure"), false;
  if (rte_eth_rx_queue_setup(p.id, 0, 256, static_cast<unsigned>(p.socket), nullptr, p.mp) != 0 ||
      rte_eth_tx_queue_setup(p.id, 0, 256, static_cast<unsigned>(p.socket), nullptr) != 0)
    return bad("queue setup on port " + std::to_string(p.id)), false;
  if (rte_eth_dev_start(p.id) != 0) return bad("rte_eth_dev_start"), false;
  (void)rte_eth_promiscuous_enable(p.id);
  return true;
}

void send_and_check(const Port& tx, const Port& rx, std::uint32_t count) {
  struct rte_ether_addr src {};
  (void)rte_eth_macaddr_get(tx.id, &src);
  std::uint32_t sent = 0, got = 0, wrong = 0, foreign = 0;
  const std::uint64_t deadline = rte_get_timer_cycles() + 120 * rte_get_timer_hz();
  while (got < count && rte_get_timer_cycles() < deadline) {
    rte_mbuf* out[kBurst];
    unsigned n = 0;
    while (n < kBurst && sent + n < count && sent + n - got < kWindow) {
      rte_mbuf* m = rte_pktmbuf_alloc(tx.mp);
      if (m == nullptr) break;
      auto* eth = rte_pktmbuf_mtod(m, struct rte_ether_hdr*);
      std::memset(&eth->dst_addr, 0xff, sizeof eth->dst_addr);
      eth->src_addr = src;
      eth->ether_type = rte_cpu_to_be_16(kEtherType);
      auto* pl = reinterpret_cast<std::uint8_t*>(eth + 1);
      const std::uint32_t seq = sent + n;
      std::memcpy(pl, &seq, 4);
      for (unsigned i = 4; i < kPayload; ++i) pl[i] = pattern(seq, i);
      m->data_len = m->pkt_len = sizeof(*eth) + kPayload;
      out[n++] = m;
    }
    const std::uint16_t done = n ? rte_eth_tx_burst(tx.id, 0, out, static_cast<std::uint16_t>(n)) : 0;
    for (unsigned i = done; i < n; ++i) rte_pktmbuf_free(out[i]);
    sent += done;
    rte_mbuf* in[kBurst];
    const std::uint16_t r = rte_eth_rx_burst(rx.id, 0, in, kBurst);
    for (std::uint16_t i = 0; i < r; ++i) {
      const auto* eth = rte_pktmbuf_mtod(in[i], const struct rte_ether_hdr*);
      if (eth->ether_type != rte_cpu_to_be_16(kEtherType)) {
        ++foreign;  // the guest's own traffic, if any
        rte_pktmbuf_free(in[i]);
        continue;
      }
      if (in[i]->pool != rx.mp) bad("a received mbuf is not from port " + std::to_string(rx.id) + "'s pool");
      const auto* pl = reinterpret_cast<const std::uint8_t*>(eth + 1);
      std::uint32_t seq;
      std::memcpy(&seq, pl, 4);
      bool ok = seq == got && in[i]->pkt_len >= sizeof(*eth) + kPayload;
      for (unsigned k = 4; ok && k < kPayload; ++k) ok = pl[k] == pattern(seq, k);
      wrong += !ok;
      ++got;
      rte_pktmbuf_free(in[i]);
    }
  }
  std::printf("sent %u from port %u, received %u on port %u, %u wrong, %u foreign\n", sent, tx.id, got, rx.id,
              wrong, foreign);
  if (got != count) bad("received " + std::to_string(got) + " of " + std::to_string(count));
  if (wrong) bad(std::to_string(wrong) + " payloads wrong or out of order");
}

/** Each port's descriptor rings, by the memzones that hold them:
 *  - net_virtio's ("port<N>_vq..."), allocated at probe on the device's
 *    socket: DPDK's own memory (no public DPDK API puts memory of numacma's
 *    under a device's socket), which must still be on the device's node;
 *  - a PMD's that allocates them at queue setup (rte_eth_dma_zone_reserve:
 *    "eth_p<N>_q<Q>_rx_ring" / "_tx_ring", net_e1000_em does) on the socket
 *    it was given: numacma's port heap, so inside the port's node's area
 *    (counted in its used pages with the heap) and on that node. */
void check_rings(const numacma::Pool& pool, const Port& p) {
  struct Arg {
    const Port* port;
    const numacma::AreaReport* area;
    unsigned found, off_node, outside;
  } arg{&p, nullptr, 0, 0, 0};
  const numacma::Stats st = pool.stats();
  arg.area = pernuma(st, p.want_node);
  if (arg.area == nullptr) return bad("no pernuma area on node " + std::to_string(p.want_node));
  rte_memzone_walk(
      [](const struct rte_memzone* mz, void* a) {
        auto* x = static_cast<Arg*>(a);
        const std::string virtio = "port" + std::to_string(x->port->id) + "_vq";
        const std::string setup = "eth_p" + std::to_string(x->port->id) + "_q";
        const bool own = std::strncmp(mz->name, virtio.c_str(), virtio.size()) == 0;
        const bool ours = std::strncmp(mz->name, setup.c_str(), setup.size()) == 0;
        if (!own && !ours) return;
        const int node = node_of(mz->addr);
        ++x->found;
        if (node != x->port->want_node) ++x->off_node;
        const numacma::AreaReport& ar = *x->area;
        const bool inside = mz->iova >= ar.base_dma && mz->iova + mz->len <= ar.base_dma + ar.pages * 4096;
        if (ours && (!inside || mz->socket_id != x->port->socket)) ++x->outside;
        std::printf("  ring %s: socket %d, node %d, IOVA 0x%llx, %s\n", mz->name, mz->socket_id, node,
                    static_cast<unsigned long long>(mz->iova),
                    own ? "net_virtio's, from DPDK's own memory"
                        : (inside ? ("allocated at queue setup, from numacma's " + ar.name + " (counted there)").c_str()
                                  : "allocated at queue setup, OUTSIDE the port's node's area"));
      },
      &arg);
  const std::string port = "port " + std::to_string(p.id);
  if (arg.found == 0) bad(port + ": no ring memzone found");
  if (arg.off_node != 0) bad(port + ": " + std::to_string(arg.off_node) + " rings off the device's node");
  if (arg.outside != 0)
    bad(port + ": " + std::to_string(arg.outside) + " rings allocated at queue setup outside the port's heap and area");
}

/** With --pool: what numacma::status (the reservation's state, as another
 *  process sees it) says of each port's node's area; `live`: the mbuf pools
 *  exist (their pages counted, as the process's own stats count them), else
 *  every area is back to 0. */
void check_status(const std::string& name, const numacma::Pool& pool, const Port* ports, bool live) {
  if (name.empty()) return;
  auto st = numacma::status(name);
  if (!st) return bad("status " + name + ": " + st.error().message);
  const numacma::Stats own = pool.stats();
  for (const numacma::SharedAreaStatus& a : st->areas) {
    std::printf("status %s: %s node %d: %llu of %llu pages used\n", name.c_str(), a.area.name.c_str(), a.area.node,
                static_cast<unsigned long long>(a.area.used), static_cast<unsigned long long>(a.area.pages));
    if (!live && a.area.used != 0) bad("status: " + a.area.name + " still counts pages after the teardown");
  }
  if (!live) return;
  for (int i = 0; i < 2; ++i) {
    const numacma::AreaReport* mine = pernuma(own, ports[i].want_node);
    const numacma::SharedAreaStatus* seen = nullptr;
    for (const auto& a : st->areas)
      if (mine != nullptr && a.area.name == mine->name) seen = &a;
    if (mine == nullptr || seen == nullptr) return bad("status: no area for port " + std::to_string(i) + "'s node");
    if (seen->area.used < 2047ULL * RTE_MBUF_DEFAULT_BUF_SIZE / 4096)
      bad("status: " + seen->area.name + " does not count port " + std::to_string(i) + "'s mbufs");
    if (seen->area.used != mine->used)
      bad("status: " + seen->area.name + " counts " + std::to_string(seen->area.used) + " pages, the process " +
          std::to_string(mine->used));
  }
}

/** Steps 1-5 over an initialised EAL; the pool is gone when it returns. */
void check(char** argv, int mask_port, Mask mode, const std::string& reserved) {
  if (rte_eth_dev_count_avail() != 2) bad("expected 2 ports, DPDK has " + std::to_string(rte_eth_dev_count_avail()));
  numacma::PoolOptions o;
  o.params = "cma=16M cma_pernuma=48M";
  o.backing = "anon";
  auto pool = reserved.empty() ? numacma::Pool::create(o) : numacma::Pool::attach(reserved);
  if (!pool) return bad(pool.error().message);
  if (auto s = numacma::dpdk::register_pool(*pool); !s) return bad(s.error().message);
  Port ports[2] = {{0, std::atoi(argv[2])}, {1, std::atoi(argv[4])}};
  for (Port& p : ports) {
    if (p.id == mask_port) p.mode = mode;
    if (!setup(*pool, p)) return;
  }
  send_and_check(ports[0], ports[1], static_cast<std::uint32_t>(std::strtoul(argv[5], nullptr, 10)));
  for (const Port& p : ports) check_rings(*pool, p);
  if (mode == Mask::none) check_status(reserved, *pool, ports, true);
  for (const Port& p : ports) {
    (void)rte_eth_dev_stop(p.id);
    (void)rte_eth_dev_close(p.id);
    rte_mempool_free(p.mp);
  }
  if (auto s = numacma::dpdk::unregister_pool(*pool); !s) bad(s.error().message);
  for (const auto& a : pool->stats().areas)
    if (a.used != 0) bad(a.name + ": " + std::to_string(a.used) + " pages still used after teardown");
  check_status(reserved, *pool, ports, false);
}

}  // namespace

int main(int argc, char** argv) {
  const auto usage = [&] {
    std::fprintf(stderr,
                 "usage: %s BDF0 NODE0 BDF1 NODE1 PACKETS [--mask32 PORT | --mask-below-area PORT] [--pool NAME]\n",
                 argv[0]);
    return 2;
  };
  if (argc < 6) return usage();
  int mask_port = -1;
  Mask mode = Mask::none;
  std::string reserved;
  for (int i = 6; i < argc; i += 2) {
    if (i + 1 >= argc) return usage();
    if (std::strcmp(argv[i], "--mask32") == 0 || std::strcmp(argv[i], "--mask-below-area") == 0) {
      mode = std::strcmp(argv[i], "--mask32") == 0 ? Mask::bits32 : Mask::below_area;
      mask_port = std::atoi(argv[i + 1]);
    } else if (std::strcmp(argv[i], "--pool") == 0) {
      reserved = argv[i + 1];
    } else {
      std::fprintf(stderr, "%s: unknown option %s\n", argv[0], argv[i]);
      return usage();
    }
  }
  // rte_eal_init writes into its arguments: copies, not literals.
  std::vector<std::string> eal = {argv[0], "-l", "0", "--socket-mem", "64,64", "--no-shconf", "--iova-mode=va",
                                  "--legacy-mem", "-a", argv[1], "-a", argv[3], "--log-level=*:notice"};
  std::vector<char*> eal_argv;
  for (std::string& a : eal) eal_argv.push_back(a.data());
  if (rte_eal_init(static_cast<int>(eal_argv.size()), eal_argv.data()) < 0) {
    std::printf("FAIL: rte_eal_init: %s\n", rte_strerror(rte_errno));
    return 1;
  }
  check(argv, mask_port, mode, reserved);
  rte_eal_cleanup();
  std::printf("dpdkcheck: %s\n", g_fail ? "FAIL" : "PASS");
  return g_fail;
}
