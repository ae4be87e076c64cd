// src/dpdk/dpdk.cpp — numacma/dpdk.hpp: a pool registered with DPDK, each
// port's heap, the mbuf pools.
//
//   register   VA mode: Pool::use_external_iommu(DPDK's IOMMU, IOVAs beside
//              DPDK's own: iommu.hpp); PA mode: physical handles as they are
//   port       its device as numacma sees it: a PCI port's BDF and sysfs node
//              (Device::from_pci), anything else NUMA_NO_NODE; the mask set
//              for it (64 bits by default)
//   socket     at the first call: alloc_coherent(port device, port memory),
//              a DPDK heap over it (rte_malloc_heap_create + _memory_add with
//              each page's IOVA); the heap's socket id from then on
//   mempool    rte_mempool_create_empty + rte_pktmbuf_pool_init, populated
//              with alloc_coherent chunks (rte_mempool_populate_iova), each
//              freed back by the mempool's free callback
//
// One registry of registered pools (by address), under one mutex.
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_log.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>
#include <rte_mbuf_pool_ops.h>
#include <rte_mempool.h>
#include <rte_bus.h>
#include <rte_dev.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "dpdk/iommu.hpp"
#include "numacma/dpdk.hpp"

namespace numacma::dpdk {

namespace {

constexpr std::size_t kPage = 4096;
constexpr std::uint64_t kIovaTop = (std::uint64_t{1} << 39) - 1;  // VT-d's narrowest width
constexpr std::size_t kMinChunk = std::size_t{1} << 20;         // mempool chunks halve down to this

struct Port {
  bool have_device = false;
  Device dev;
  std::uint64_t mask = ~std::uint64_t{0};
  std::string heap;
  int socket = -1;
  struct Chunk {
    void* cpu;
    std::uint64_t iova;
    std::size_t bytes;
  };
  std::vector<Chunk> chunks;  // the heap's memory: one run, or runs of at least kMinChunk
};

/** A smaller run may do where this one failed: no free run that long, or
 *  (physical addresses) none that contiguous. */
bool retry_smaller(const Error& e, std::size_t bytes) {
  return (e.code == Errc::no_memory || e.code == Errc::not_contiguous) && bytes / 2 >= kMinChunk;
}

struct Registered {
  unsigned id = 0;
  std::size_t port_bytes = NCMA_DPDK_PORT_MEMORY;
  std::map<std::uint16_t, Port> ports;
};

std::mutex g_mu;
std::map<const Pool*, Registered> g_pools;
unsigned g_next_id = 0;

Error fail(Errc c, const std::string& what, const std::string& why) {
  return make_error(c, what + ": " + why);
}

std::string rte_why() { return std::string(rte_strerror(rte_errno)) + " (rte_errno " + std::to_string(rte_errno) + ")"; }

/** REQUIRES g_mu. */
Result<Registered*> registered(const Pool& pool, const char* what) {
  const auto it = g_pools.find(&pool);
  if (it == g_pools.end())
    return fail(Errc::invalid_argument, what, "the pool is not registered with DPDK (ncma_dpdk_register first)");
  return &it->second;
}

Status valid_port(std::uint16_t port, const char* what) {
  if (rte_eth_dev_is_valid_port(port)) return {};
  return fail(Errc::invalid_argument, what,
              "port " + std::to_string(port) + " is not a DPDK port (" +
                  std::to_string(rte_eth_dev_count_avail()) + " available)");
}

/** The port's device as numacma sees it. REQUIRES g_mu. */
Result<Port*> port_of(Pool& pool, Registered& r, std::uint16_t port, const char* what) {
  if (Status s = valid_port(port, what); !s) return std::move(s).error();
  Port& p = r.ports[port];
  if (p.have_device) return &p;
  struct rte_eth_dev_info info {};
  if (rte_eth_dev_info_get(port, &info) != 0 || info.device == nullptr)
    return fail(Errc::io_error, what, "rte_eth_dev_info_get(port " + std::to_string(port) + ") failed");
  const struct rte_bus* bus = rte_dev_bus(info.device);
  const std::string bus_name = bus != nullptr ? rte_bus_name(bus) : "";
  const std::string name = rte_dev_name(info.device);
  if (bus_name == "pci") {
    Result<Device> d = Device::from_pci(name, pool);
    if (!d)
      return fail(d.error().code, what, "port " + std::to_string(port) + " (" + name + "): " + d.error().message);
    p.dev = std::move(*d);
  } else {
    p.dev = Device::on_node(kNoNode, name);  // a vdev: the kernel's NUMA_NO_NODE rules
  }
  p.dev.coherent_dma_mask = p.mask;
  p.have_device = true;
  return &p;
}

struct Chunk {
  Pool* pool;
  Device dev;
  void* cpu;
  std::uint64_t iova;
  std::size_t bytes;
};

void free_chunk(struct rte_mempool_memhdr*, void* opaque) {
  auto* c = static_cast<Chunk*>(opaque);
  (void)c->pool->free_coherent(c->dev, c->bytes, c->cpu, c->iova);
  delete c;
}

std::size_t round_up(std::size_t v, std::size_t to) { return (v + to - 1) / to * to; }

}  // namespace

Status register_pool(Pool& pool) {
  const char* what = "ncma_dpdk_register";
  if (rte_eal_iova_mode() == RTE_IOVA_DC)
    return fail(Errc::invalid_argument, what, "the DPDK EAL is not initialised (call rte_eal_init first)");
  std::lock_guard<std::mutex> lock(g_mu);
  if (g_pools.count(&pool) != 0) return fail(Errc::busy, what, "the pool is registered already");
  if (rte_eal_iova_mode() == RTE_IOVA_PA) {
    if (pool.address_kind() != AddressKind::physical)
      return fail(Errc::unsupported, what,
                  std::string("DPDK runs in IOVA-as-PA mode and the pool's DMA addresses are ") +
                      address_kind_name(pool.address_kind()) +
                      ", not physical: create the pool with hugetlb areas as root (backing hugetlb), "
                      "or run DPDK with --iova-mode=va");
    if (detail::dpdk_uses_vfio_iommu())
      return fail(Errc::unsupported, what,
                  "DPDK runs in IOVA-as-PA mode behind an IOMMU (VFIO): run it with --iova-mode=va, "
                  "where numacma maps its areas in DPDK's container");
  } else {
    ExternalIommuSpec spec;
    spec.iommu = detail::dpdk_iommu(detail::dpdk_uses_vfio_iommu());
    spec.usable = {{0, kIovaTop}};
    spec.reserved = detail::dpdk_iova_ranges();
    spec.owner = "DPDK";
    if (Status s = pool.use_external_iommu(std::move(spec)); !s)
      return fail(s.error().code, what, s.error().message);
  }
  Registered& r = g_pools[&pool];
  r.id = g_next_id++;
  return {};
}

Status unregister_pool(Pool& pool) {
  const char* what = "ncma_dpdk_unregister";
  std::lock_guard<std::mutex> lock(g_mu);
  Result<Registered*> r = registered(pool, what);
  if (!r) return std::move(r).error();
  for (auto& [id, p] : (*r)->ports) {
    if (p.heap.empty()) continue;
    // DPDK unmaps each page of the heap from its VFIO container as it goes;
    // the pages are inside the area's one mapping, which VFIO does not split
    // (EINVAL, nothing unmapped: the area stays mapped until the pool goes).
    // Those expected refusals are not logged.
    const int eal_level = rte_log_get_level(RTE_LOGTYPE_EAL);
    (void)rte_log_set_level(RTE_LOGTYPE_EAL, RTE_LOG_CRIT);
    // A run DPDK gave back is freed at once, so a call that finds a later run
    // busy leaves only what DPDK still holds, and the next call goes on from there.
    std::string why;
    while (!p.chunks.empty()) {
      const Port::Chunk c = p.chunks.back();
      if (rte_malloc_heap_memory_remove(p.heap.c_str(), c.cpu, c.bytes) != 0) {
        why = rte_why();
        break;
      }
      (void)pool.free_coherent(p.dev, c.bytes, c.cpu, c.iova);
      p.chunks.pop_back();
    }
    (void)rte_log_set_level(RTE_LOGTYPE_EAL, static_cast<std::uint32_t>(eal_level));
    if (!p.chunks.empty())
      return fail(Errc::busy, what, "port " + std::to_string(id) + "'s heap " + p.heap +
                                        " still holds DPDK allocations (close the port first: "
                                        "rte_eth_dev_close): " + why);
    (void)rte_malloc_heap_destroy(p.heap.c_str());
    p.heap.clear();
    p.socket = -1;
  }
  g_pools.erase(&pool);
  return {};
}

Status set_dma_mask(Pool& pool, std::uint16_t port, std::uint64_t mask) {
  const char* what = "ncma_dpdk_set_dma_mask";
  if (mask == 0) return fail(Errc::invalid_argument, what, "DMA mask 0");
  std::lock_guard<std::mutex> lock(g_mu);
  Result<Registered*> r = registered(pool, what);
  if (!r) return std::move(r).error();
  if (Status s = valid_port(port, what); !s) return s;
  Port& p = (*r)->ports[port];
  if (p.socket >= 0)
    return fail(Errc::busy, what, "port " + std::to_string(port) + " has its heap already: set its mask first");
  p.mask = mask;
  p.dev.coherent_dma_mask = mask;
  return {};
}

Status set_port_memory(Pool& pool, std::size_t bytes) {
  const char* what = "ncma_dpdk_set_port_memory";
  if (bytes < kPage * 16)
    return fail(Errc::invalid_argument, what, std::to_string(bytes) + " bytes: at least 64 KiB");
  std::lock_guard<std::mutex> lock(g_mu);
  Result<Registered*> r = registered(pool, what);
  if (!r) return std::move(r).error();
  (*r)->port_bytes = round_up(bytes, kPage);
  return {};
}

Result<Device> port_device(Pool& pool, std::uint16_t port) {
  std::lock_guard<std::mutex> lock(g_mu);
  Result<Registered*> r = registered(pool, "ncma_dpdk_port_node");
  if (!r) return std::move(r).error();
  Result<Port*> p = port_of(pool, **r, port, "ncma_dpdk_port_node");
  if (!p) return std::move(p).error();
  return (*p)->dev;
}

Result<int> socket(Pool& pool, std::uint16_t port) {
  const char* what = "ncma_dpdk_socket";
  std::lock_guard<std::mutex> lock(g_mu);
  Result<Registered*> r = registered(pool, what);
  if (!r) return std::move(r).error();
  Result<Port*> pp = port_of(pool, **r, port, what);
  if (!pp) return std::move(pp).error();
  Port& p = **pp;
  if (p.socket >= 0) return p.socket;
  char name[32];
  std::snprintf(name, sizeof name, "numacma%u-port%u", (*r)->id, static_cast<unsigned>(port));
  if (rte_malloc_heap_create(name) != 0)
    return fail(Errc::io_error, what, std::string("rte_malloc_heap_create(") + name + "): " + rte_why());
  // The heap's memory in one run when the area has one; else in runs halved
  // down to kMinChunk (hugetlb areas in IOVA-as-PA mode are contiguous only
  // hugepage by hugepage). Each run is its own piece of the heap, with each
  // page's IOVA.
  std::vector<DmaBuffer> runs;
  auto undo = [&](Errc code, const std::string& why) {
    for (const DmaBuffer& b : runs) (void)rte_malloc_heap_memory_remove(name, b.cpu(), b.size());
    (void)rte_malloc_heap_destroy(name);
    return fail(code, what, why);  // runs free themselves
  };
  const std::size_t total = (*r)->port_bytes;
  std::size_t left = total, run = total;
  while (left > 0) {
    run = std::min(run, left);
    Result<DmaBuffer> b = pool.alloc_coherent(p.dev, run);
    if (!b && retry_smaller(b.error(), run)) {
      run = round_up(run / 2, kPage);
      continue;
    }
    if (!b)
      return undo(b.error().code, "port " + std::to_string(port) + " (" + p.dev.name + ", node " +
                                      std::to_string(p.dev.node) + "): " + std::to_string(run >> 10) + " of " +
                                      std::to_string(total >> 10) + " KiB for its heap: " + b.error().message);
    std::vector<rte_iova_t> iovas(run / kPage);
    for (std::size_t i = 0; i < iovas.size(); ++i) iovas[i] = b->dma_addr() + i * kPage;
    if (rte_malloc_heap_memory_add(name, b->cpu(), run, iovas.data(), static_cast<unsigned>(iovas.size()), kPage) !=
        0)
      return undo(Errc::io_error, std::string("rte_malloc_heap_memory_add(") + name + "): " + rte_why());
    runs.push_back(std::move(*b));
    left -= run;
  }
  p.heap = name;
  for (DmaBuffer& b : runs) {
    p.chunks.push_back({b.cpu(), b.dma_addr(), b.size()});
    b.detach();  // the heap's now; unregister_pool frees it
  }
  p.socket = rte_malloc_heap_get_socket(name);
  return p.socket;
}

Result<rte_mempool*> pktmbuf_pool_create(Pool& pool, std::uint16_t port, const std::string& name, unsigned n,
                                         unsigned cache_size, std::uint16_t priv_size,
                                         std::uint16_t data_room_size) {
  const char* what = "ncma_dpdk_pktmbuf_pool_create";
  if (n == 0) return fail(Errc::invalid_argument, what, "n = 0 mbufs");
  if (name.empty()) return fail(Errc::invalid_argument, what, "no name");
  if (RTE_ALIGN(priv_size, RTE_MBUF_PRIV_ALIGN) != priv_size)
    return fail(Errc::invalid_argument, what, "priv_size " + std::to_string(priv_size) + " is not a multiple of " +
                                                  std::to_string(RTE_MBUF_PRIV_ALIGN));
  Device dev;
  {
    std::lock_guard<std::mutex> lock(g_mu);
    Result<Registered*> r = registered(pool, what);
    if (!r) return std::move(r).error();
    Result<Port*> p = port_of(pool, **r, port, what);
    if (!p) return std::move(p).error();
    dev = (*p)->dev;
  }
  const unsigned elt_size = static_cast<unsigned>(sizeof(struct rte_mbuf)) + priv_size + data_room_size;
  struct rte_mempool* mp = rte_mempool_create_empty(name.c_str(), n, elt_size, cache_size,
                                                    sizeof(struct rte_pktmbuf_pool_private), SOCKET_ID_ANY, 0);
  if (mp == nullptr) return fail(Errc::invalid_argument, what, "rte_mempool_create_empty(" + name + "): " + rte_why());
  if (rte_mempool_set_ops_byname(mp, rte_mbuf_best_mempool_ops(), nullptr) != 0) {
    const std::string why = rte_why();
    rte_mempool_free(mp);
    return fail(Errc::io_error, what, "rte_mempool_set_ops_byname: " + why);
  }
  struct rte_pktmbuf_pool_private priv {};
  priv.mbuf_data_room_size = data_room_size;
  priv.mbuf_priv_size = priv_size;
  rte_pktmbuf_pool_init(mp, &priv);

  const std::size_t obj = mp->header_size + mp->elt_size + mp->trailer_size;
  std::size_t chunk = 0;
  while (mp->populated_size < n) {
    // Room for one object more than is left (the alignment DPDK may take),
    // and never one page: a one-page buffer never comes from an area (A3).
    const std::size_t want =
        std::max(round_up((n - mp->populated_size + 1) * obj + RTE_MEMPOOL_ALIGN, kPage), 2 * kPage);
    chunk = chunk == 0 ? want : std::min(chunk, want);
    Result<DmaBuffer> b = pool.alloc_coherent(dev, chunk);
    if (!b && retry_smaller(b.error(), chunk)) {
      chunk = round_up(chunk / 2, kPage);  // no run that long: smaller chunks
      continue;
    }
    if (!b) {
      rte_mempool_free(mp);  // gives back the chunks added so far
      return fail(b.error().code, what, name + ": " + std::to_string(chunk >> 10) + " KiB for " + dev.name +
                                            " (node " + std::to_string(dev.node) + "): " + b.error().message);
    }
    auto* c = new Chunk{&pool, dev, b->cpu(), b->dma_addr(), chunk};
    const int added = rte_mempool_populate_iova(mp, static_cast<char*>(c->cpu), c->iova, chunk, free_chunk, c);
    if (added <= 0) {
      (void)b->release();
      delete c;
      rte_mempool_free(mp);
      return fail(Errc::io_error, what, name + ": rte_mempool_populate_iova: " +
                                            (added == 0 ? std::string("no room for one mbuf") : rte_strerror(-added)));
    }
    b->detach();  // the mempool's now: free_chunk gives it back
  }
  rte_mempool_obj_iter(mp, rte_pktmbuf_init, nullptr);
  return mp;
}

}  // namespace numacma::dpdk
