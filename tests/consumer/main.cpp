// Consumer of the installed package: one buffer on node 1 of a sim topology.
// usage: consumer <sysfs-root of a fixture with node 1>
#include <cstdio>

#include <numacma/numacma.hpp>

int main(int argc, char** argv) {
  if (argc != 2) return std::fprintf(stderr, "usage: consumer SYSFS_ROOT\n"), 2;
  numacma::PoolOptions opts;
  opts.params = "cma=8M cma_pernuma=4M";
  opts.backing = "sim";
  opts.sysfs_root = argv[1];
  auto pool = numacma::Pool::create(opts);
  if (!pool) return std::fprintf(stderr, "pool: %s\n", pool.error().message.c_str()), 1;
  auto buf = pool->alloc_coherent(numacma::Device::on_node(1, "consumer"), 8192);
  if (!buf) return std::fprintf(stderr, "alloc: %s\n", buf.error().message.c_str()), 1;
  if (buf->area_name() != "pernuma1" || buf->node() != 1)
    return std::fprintf(stderr, "wrong area %s node %d\n", buf->area_name().c_str(), buf->node()), 1;
  std::printf("consumer: %s node %d\n", buf->area_name().c_str(), buf->node());
  return 0;
}
