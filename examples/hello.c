/* hello.c — the same 64 KiB coherent buffer through the C API.
 * usage: hello_c [auto|hugetlb|anon|sim] [sysfs-root] */
#include <stdio.h>

#include <numacma/numacma.h>

int main(int argc, char **argv) {
  const char *params = "cma=16M cma_pernuma=4M";
  ncma_pool_options opts = {argc > 1 ? argv[1] : "auto", "kernel", argc > 2 ? argv[2] : "/sys",
                            NULL, 0 /* no VFIO devices */,
                            0 /* any kind of DMA address */};
  ncma_pool *pool = ncma_pool_create(params, &opts);
  if (!pool) {
    fprintf(stderr, "pool: %s: %s\n", ncma_strerror(ncma_last_error()), ncma_last_error_message());
    return 1;
  }
  ncma_device *nic = ncma_device_node(0, "nic0"); /* or ncma_device_pci(pool, bdf) */
  uint64_t dma;
  void *cpu = ncma_alloc_coherent(pool, nic, 65536, &dma);
  if (!cpu) {
    fprintf(stderr, "alloc: %s: %s\n", ncma_strerror(ncma_last_error()), ncma_last_error_message());
    return 1;
  }
  printf("%s: node %d dma 0x%llx\n", params, ncma_device_get_node(nic), (unsigned long long)dma);

  int rc = ncma_free_coherent(pool, nic, 65536, cpu, dma);
  if (rc != 0) fprintf(stderr, "free: %s\n", ncma_strerror(rc));
  ncma_device_destroy(nic);
  ncma_pool_destroy(pool);
  return rc != 0;
}
