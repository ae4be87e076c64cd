/* numacma/numacma.h — C API, named after the kernel's so a C driver ports by
 * renaming dma_alloc_coherent -> ncma_alloc_coherent.
 *
 *   ncma_pool *p = ncma_pool_create("cma=64M cma_pernuma=16M", NULL);
 *   ncma_device *d = ncma_device_pci(p, "0000:81:00.0");
 *   uint64_t dma;
 *   void *q = ncma_alloc_coherent(p, d, 65536, &dma);
 *   ...
 *   ncma_free_coherent(p, d, 65536, q, dma);
 *
 * Functions that fail return NULL (or a negative ncma error code) and leave
 * the reason in a thread-local slot read by ncma_last_error() /
 * ncma_last_error_message(). ncma_strerror(code) names a code. Thread-safe
 * as the C++ Pool is.
 */
#ifndef NUMACMA_NUMACMA_H
#define NUMACMA_NUMACMA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ncma_pool ncma_pool;
typedef struct ncma_device ncma_device;

/* Error codes (the C++ numacma::Errc values, negated). */
enum {
  NCMA_OK = 0,
  NCMA_EINVAL = -1,
  NCMA_ENOMEM = -2,
  NCMA_ENOENT = -3,
  NCMA_EUNREACHABLE = -4,
  NCMA_ENOTCONTIG = -5,
  NCMA_EBADFREE = -6,
  NCMA_EIO = -7,
  NCMA_EUNSUPPORTED = -8,
  NCMA_EPERM = -9
};

/* Options; NULL fields/zero take the defaults (backing "auto", policy
 * "kernel", sysfs root "/sys"). */
typedef struct ncma_pool_options {
  const char *backing;     /* "auto" | "hugetlb" | "anon" | "sim" */
  const char *policy;      /* "kernel" | "nearest" */
  const char *sysfs_root;  /* "/sys" */
} ncma_pool_options;

ncma_pool *ncma_pool_create(const char *params, const ncma_pool_options *options);
void ncma_pool_destroy(ncma_pool *pool);

/* A PCI device by BDF (node from sysfs), or one by hand. Free with
 * ncma_device_destroy. */
ncma_device *ncma_device_pci(ncma_pool *pool, const char *bdf);
ncma_device *ncma_device_node(int node, const char *name);
void ncma_device_set_dma_mask(ncma_device *dev, uint64_t mask);
int ncma_device_get_node(const ncma_device *dev);
void ncma_device_destroy(ncma_device *dev);

/* dma_alloc_coherent: the CPU address, or NULL (reason in ncma_last_error). */
void *ncma_alloc_coherent(ncma_pool *pool, const ncma_device *dev, size_t size,
                          uint64_t *dma_handle);
/* dma_free_coherent: 0, or a negative NCMA_E* code when (size, cpu, dma)
 * is not a live buffer (F2: detected, never corrupting). */
int ncma_free_coherent(ncma_pool *pool, const ncma_device *dev, size_t size, void *cpu,
                       uint64_t dma_handle);

int ncma_last_error(void);
const char *ncma_last_error_message(void);
const char *ncma_strerror(int code);

#ifdef __cplusplus
}
#endif

#endif /* NUMACMA_NUMACMA_H */
