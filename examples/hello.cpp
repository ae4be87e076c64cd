// hello.cpp — a 64 KiB coherent DMA buffer from node 0's per-NUMA area.
// usage: hello [auto|hugetlb|anon|sim] [sysfs-root]
#include <cstdio>

#include <numacma/numacma.hpp>

int main(int argc, char** argv) {
  numacma::PoolOptions opts;
  opts.params = "cma=16M cma_pernuma=4M";
  opts.backing = argc > 1 ? argv[1] : "auto";
  opts.sysfs_root = argc > 2 ? argv[2] : "/sys";
  auto pool = numacma::Pool::create(opts);
  if (!pool) return std::fprintf(stderr, "pool: %s\n", pool.error().message.c_str()), 1;

  numacma::Device nic = numacma::Device::on_node(0, "nic0");  // or Device::from_pci(bdf, *pool)
  auto buf = pool->alloc_coherent(nic, 64 * 1024);
  if (!buf) return std::fprintf(stderr, "alloc: %s\n", buf.error().message.c_str()), 1;

  std::printf("area %s node %d dma 0x%llx\n", buf->area_name().c_str(), buf->node(),
              static_cast<unsigned long long>(buf->dma_addr()));
  return 0;  // buf goes back to its area, then the pool is released
}
