/* C consumer of the installed package, built with
 * cc main.c $(pkg-config --cflags --libs numacma).
 * usage: consumer_c <sysfs-root of a fixture with node 1> */
#include <stdio.h>

#include <numacma/numacma.h>

int main(int argc, char **argv) {
  if (argc != 2) return 2;
  ncma_pool_options opts = {"sim", "kernel", argv[1], NULL, 0, 0};
  ncma_pool *pool = ncma_pool_create("cma_pernuma=4M", &opts);
  if (!pool) {
    fprintf(stderr, "pool: %s\n", ncma_last_error_message());
    return 1;
  }
  ncma_device *dev = ncma_device_node(1, "consumer");
  uint64_t dma;
  void *cpu = ncma_alloc_coherent(pool, dev, 8192, &dma);
  if (!cpu) {
    fprintf(stderr, "alloc: %s\n", ncma_last_error_message());
    return 1;
  }
  int rc = ncma_free_coherent(pool, dev, 8192, cpu, dma);
  if (rc != 0) fprintf(stderr, "free: %s\n", ncma_strerror(rc));
  ncma_device_destroy(dev);
  ncma_pool_destroy(pool);
  if (rc == 0) printf("consumer_c: node 1 dma 0x%llx\n", (unsigned long long)dma);
  return rc != 0;
}
