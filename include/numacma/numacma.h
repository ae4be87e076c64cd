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
typedef struct ncma_dma_pool ncma_dma_pool;

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
  NCMA_EPERM = -9,
  NCMA_EBUSY = -10,
  NCMA_ECORRUPT = -11
};

/* A device the pool drives through VFIO and the coherent DMA mask its driver
 * declares (dma_set_mask_and_coherent); mask 0 means 64 bits. */
typedef struct ncma_vfio_device_spec {
  const char *bdf;   /* "0000:05:00.0", bound to vfio-pci */
  uint64_t dma_mask;
} ncma_vfio_device_spec;

/* Options; NULL fields/zero take the defaults (backing "auto", policy
 * "kernel", sysfs root "/sys", no VFIO, any kind of address). */
typedef struct ncma_pool_options {
  const char *backing;     /* "auto" | "hugetlb" | "anon" | "sim" */
  const char *policy;      /* "kernel" | "nearest" */
  /* "/sys"; any other tree is a fixture: "auto" means "sim" there, and
   * "hugetlb" / "anon" are refused (NCMA_EINVAL). */
  const char *sysfs_root;
  /* VFIO devices sharing one IOMMU container: n_vfio > 0 puts the pool in
   * vfio mode (every DMA handle is an IOVA mapped for these devices). */
  const ncma_vfio_device_spec *vfio;
  size_t n_vfio;
  /* Non-zero: creation fails unless a device could use the pool's DMA
   * handles (NCMA_ADDR_PHYSICAL, _IOVA_VFIO or _IOVA_EXTERNAL): NCMA_EINVAL
   * for a sim pool, NCMA_EUNSUPPORTED for one whose handles would be
   * virtual addresses, the message saying what to do. Added in 0.1: a
   * caller built against an older header passes a shorter struct, so
   * rebuild (the library's SOVERSION is 0 until the API settles). */
  int require_device_usable;
  /* Whose per-NUMA CMA rules (docs/semantics.md, "Kernel profiles"): NULL or
   * "6.12" (pernuma<N> and numa<N>), or "7.2" (one numa<N> per node);
   * anything else is NCMA_EINVAL. Added in 0.2, as require_device_usable. */
  const char *kernel;
  /* Non-zero: 7.2's CONFIG_CMA_SIZE_PERNUMA (with neither cma_pernuma= nor
   * numa_cma= and more than one node, every node gets an area of the
   * default area's size); NCMA_EINVAL with kernel 6.12. */
  int cma_size_pernuma;
  /* vfio mode: NULL or "auto" (iommufd when /dev/iommu and the devices'
   * cdevs exist, else the type1 container), "iommufd", "type1", or
   * "noiommu": VFIO's no-IOMMU mode, UNSAFE (the devices can write anywhere
   * in memory; physical addresses, hugetlb backing, CAP_SYS_RAWIO; never
   * chosen by "auto"); anything else is NCMA_EINVAL. Added in 0.2. */
  const char *iommu;
} ncma_pool_options;

/* What a pool's DMA handles are (ncma_pool_address_kind; docs/backings.md):
 * physical addresses, IOVAs of the pool's VFIO container (both usable by a
 * device), virtual addresses (IOVA = VA: only where the caller maps them
 * into an IOMMU itself), or the sim backing's simulated ones. */
enum {
  NCMA_ADDR_PHYSICAL = 0,
  NCMA_ADDR_IOVA_VFIO = 1,
  NCMA_ADDR_VIRTUAL_ONLY = 2,
  NCMA_ADDR_SIMULATED = 3,
  NCMA_ADDR_IOVA_EXTERNAL = 4 /* IOVAs in an IOMMU another framework owns (numacma/dpdk.h) */
};

ncma_pool *ncma_pool_create(const char *params, const ncma_pool_options *options);
/* Attaches to the areas reserved under NAME (`numacma reserve NAME PARAMS`;
 * docs/shared.md): allocations follow the same rules, concurrently with
 * every other attached process. NULL on failure (ncma_last_error: NCMA_ENOENT
 * no such reservation, NCMA_EPERM no access to its files, NCMA_ECORRUPT a
 * state file that does not validate). ncma_pool_destroy detaches: buffers
 * still held go back to their areas; the reservation itself stays. */
ncma_pool *ncma_pool_attach(const char *name);
/* Destroys a pool (or detaches an attached one). */
void ncma_pool_destroy(ncma_pool *pool);
/* The pool's kind of DMA address (NCMA_ADDR_*), or NCMA_EINVAL for NULL. */
int ncma_pool_address_kind(const ncma_pool *pool);
/* "physical", "iova_vfio", "virtual_only", "simulated", "iova_external";
 * "unknown" otherwise. */
const char *ncma_address_kind_name(int kind);

/* A PCI device by BDF (node from sysfs), or one by hand. Free with
 * ncma_device_destroy. */
ncma_device *ncma_device_pci(ncma_pool *pool, const char *bdf);
ncma_device *ncma_device_node(int node, const char *name);
void ncma_device_set_dma_mask(ncma_device *dev, uint64_t mask);
int ncma_device_get_node(const ncma_device *dev);
void ncma_device_destroy(ncma_device *dev);

/* VFIO (docs/vfio.md). ncma_device_vfio: a device of the pool's container,
 * node from sysfs, mask as declared. ncma_vfio_attach: adds a device to the
 * container after creation. ncma_vfio_bar_read32/write32 (and 64): register
 * access to BAR `bar`; ncma_vfio_config_read/write: PCI config space;
 * ncma_vfio_enable_bus_master: memory space + bus master on. Each returns 0
 * or a negative NCMA_E* code. ncma_vfio_bind/unbind: bind a device to
 * vfio-pci and give it back to its previous driver (sysfs_root NULL: "/sys").
 * A device the machine uses (a disk of it mounted, used as swap or held by
 * dm/md/LVM; an interface of it up or with addresses or routes) is refused
 * with NCMA_EBUSY, the message naming each use, before anything is
 * written; ncma_vfio_bind_flags with NCMA_VFIO_BIND_FORCE binds it anyway,
 * except the device of the root file system, which is never unbound. A bdf
 * may be "DDDD:BB:DD.F" or lspci's "BB:DD.F" (domain 0000). */
ncma_device *ncma_device_vfio(ncma_pool *pool, const char *bdf);
int ncma_vfio_attach(ncma_pool *pool, const char *bdf, uint64_t dma_mask);
int ncma_vfio_bar_read32(ncma_pool *pool, const char *bdf, unsigned bar, uint64_t offset,
                         uint32_t *value);
int ncma_vfio_bar_write32(ncma_pool *pool, const char *bdf, unsigned bar, uint64_t offset,
                          uint32_t value);
int ncma_vfio_bar_read64(ncma_pool *pool, const char *bdf, unsigned bar, uint64_t offset,
                         uint64_t *value);
int ncma_vfio_bar_write64(ncma_pool *pool, const char *bdf, unsigned bar, uint64_t offset,
                          uint64_t value);
int ncma_vfio_config_read(ncma_pool *pool, const char *bdf, uint32_t offset, void *out, size_t len);
int ncma_vfio_config_write(ncma_pool *pool, const char *bdf, uint32_t offset, const void *in,
                           size_t len);
int ncma_vfio_enable_bus_master(ncma_pool *pool, const char *bdf);
int ncma_vfio_bind(const char *bdf, const char *sysfs_root);
#define NCMA_VFIO_BIND_FORCE 0x1u /* bind although in use (never the root file system's device) */
int ncma_vfio_bind_flags(const char *bdf, const char *sysfs_root, unsigned flags);
int ncma_vfio_unbind(const char *bdf, const char *sysfs_root);

/* dma_alloc_coherent: the CPU address, or NULL (reason in ncma_last_error). */
void *ncma_alloc_coherent(ncma_pool *pool, const ncma_device *dev, size_t size,
                          uint64_t *dma_handle);
/* dma_free_coherent: 0, or a negative NCMA_E* code when (size, cpu, dma)
 * is not a live buffer (F2: detected, never corrupting). */
int ncma_free_coherent(ncma_pool *pool, const ncma_device *dev, size_t size, void *cpu,
                       uint64_t dma_handle);

/* One area of a pool, as Pool::stats() reports it (docs/api.md): what the
 * pool, and anything built on it (numacma_dpdk's heaps and mbuf pools), holds
 * of it. name and kind are NUL-terminated, a name longer than 63 bytes cut at
 * 63; node is the node the area's memory is on. */
typedef struct ncma_area_stats {
  char name[64];
  char kind[16]; /* "default", "pernuma", "numa", "device" */
  int node;
  uint64_t base_dma;              /* the area's first DMA address */
  uint64_t pages;                 /* 4 KiB pages */
  uint64_t used;                  /* pages allocated now */
  uint64_t maxchunk;              /* longest free run, pages */
  uint64_t alloc_pages_success;   /* the kernel's CMA counters */
  uint64_t alloc_pages_fail;
  uint64_t release_pages_success;
  uint64_t total_pages;           /* what newer kernels (6.15) add to */
  uint64_t available_pages;       /* /sys/kernel/mm/cma: pages, pages - used */
} ncma_area_stats;
/* The number of areas (>= 0), or NCMA_EINVAL for NULL. */
int ncma_pool_area_count(const ncma_pool *pool);
/* Area `index` (0 .. count-1) into *out: 0, or NCMA_EINVAL (NULL, index out
 * of range). */
int ncma_pool_area_stats(const ncma_pool *pool, unsigned index, ncma_area_stats *out);

/* dma_pool (mm/dmapool.c; docs/api.md): fixed-size blocks carved from
 * coherent pages allocated for `dev` (so from its node and area), aligned to
 * `align` (0: 1), never crossing `boundary` (0: the page). create: NULL on
 * bad input (size 0, align or boundary not a power of two, boundary smaller
 * than the block). alloc/zalloc: the block's CPU address and *dma_handle, or
 * NULL. free: 0, or NCMA_EBADFREE for a double free, another pool's block or
 * a wrong dma (counted, never corrupting). destroy: 0, or NCMA_EBUSY with
 * the count when blocks are still allocated: then nothing is destroyed (free
 * them and call it again). Any thread may free any block of the pool. */
ncma_dma_pool *ncma_dma_pool_create(ncma_pool *pool, const char *name, const ncma_device *dev,
                                    size_t size, size_t align, size_t boundary);
void *ncma_dma_pool_alloc(ncma_dma_pool *dp, uint64_t *dma_handle);
void *ncma_dma_pool_zalloc(ncma_dma_pool *dp, uint64_t *dma_handle);
int ncma_dma_pool_free(ncma_dma_pool *dp, void *vaddr, uint64_t dma);
int ncma_dma_pool_destroy(ncma_dma_pool *dp);

int ncma_last_error(void);
const char *ncma_last_error_message(void);
const char *ncma_strerror(int code);

#ifdef __cplusplus
}
#endif

#endif /* NUMACMA_NUMACMA_H */
