// src/capi/capi.cpp — the C API (numacma/numacma.h) over the C++ Pool.
//
//   ncma_pool   = a numacma::Pool          ncma_device = a numacma::Device
//   ncma_alloc_coherent -> PoolImpl::alloc (no RAII handle: the C caller frees)
//   errors -> a thread-local (code, message) read by ncma_last_error*()
#include <cstring>
#include <new>
#include <string>

#include "capi/capi.hpp"
#include "pool/pool_impl.hpp"

namespace {

static_assert(NCMA_ADDR_PHYSICAL == static_cast<int>(numacma::AddressKind::physical));
static_assert(NCMA_ADDR_IOVA_VFIO == static_cast<int>(numacma::AddressKind::iova_vfio));
static_assert(NCMA_ADDR_VIRTUAL_ONLY == static_cast<int>(numacma::AddressKind::virtual_only));
static_assert(NCMA_ADDR_SIMULATED == static_cast<int>(numacma::AddressKind::simulated));
static_assert(NCMA_ADDR_IOVA_EXTERNAL == static_cast<int>(numacma::AddressKind::iova_external));

thread_local int g_code = NCMA_OK;
thread_local std::string g_message;

}  // namespace

namespace numacma::capi {

void set_error(const numacma::Error& e) {
  g_code = -static_cast<int>(e.code);
  g_message = e.message;
}
void set_error(int code, const char* msg) {
  g_code = code;
  g_message = msg;
}
void clear_error() {
  g_code = NCMA_OK;
  g_message.clear();
}

}  // namespace numacma::capi

using numacma::capi::clear_error;
using numacma::capi::set_error;

extern "C" {

ncma_pool* ncma_pool_create(const char* params, const ncma_pool_options* options) {
  numacma::PoolOptions o;
  o.params = params != nullptr ? params : "";
  if (options != nullptr) {
    if (options->backing != nullptr) o.backing = options->backing;
    if (options->sysfs_root != nullptr) o.sysfs_root = options->sysfs_root;
    if (options->policy != nullptr) {
      if (std::strcmp(options->policy, "kernel") == 0) {
        o.policy = numacma::Policy::kernel;
      } else if (std::strcmp(options->policy, "nearest") == 0) {
        o.policy = numacma::Policy::nearest;
      } else {
        set_error(NCMA_EINVAL, "policy must be \"kernel\" or \"nearest\"");
        return nullptr;
      }
    }
    if (options->n_vfio > 0 && options->vfio == nullptr) {
      set_error(NCMA_EINVAL, "ncma_pool_options: n_vfio > 0 but vfio is NULL");
      return nullptr;
    }
    for (size_t i = 0; i < options->n_vfio; ++i) {
      const ncma_vfio_device_spec& v = options->vfio[i];
      if (v.bdf == nullptr) {
        set_error(NCMA_EINVAL, "ncma_pool_options: a VFIO device with a NULL bdf");
        return nullptr;
      }
      o.vfio.push_back({v.bdf, v.dma_mask == 0 ? ~uint64_t{0} : v.dma_mask});
    }
    o.require_device_usable = options->require_device_usable != 0;
    if (options->kernel != nullptr) {
      if (std::strcmp(options->kernel, "6.12") == 0) {
        o.kernel = numacma::Kernel::v6_12;
      } else if (std::strcmp(options->kernel, "7.2") == 0) {
        o.kernel = numacma::Kernel::v7_2;
      } else {
        set_error(NCMA_EINVAL, "kernel must be \"6.12\" or \"7.2\"");
        return nullptr;
      }
    }
    o.cma_size_pernuma = options->cma_size_pernuma != 0;
    if (options->iommu != nullptr) {
      if (std::strcmp(options->iommu, "auto") == 0) {
        o.iommu = numacma::Iommu::automatic;
      } else if (std::strcmp(options->iommu, "iommufd") == 0) {
        o.iommu = numacma::Iommu::iommufd;
      } else if (std::strcmp(options->iommu, "type1") == 0) {
        o.iommu = numacma::Iommu::type1;
      } else if (std::strcmp(options->iommu, "noiommu") == 0) {
        o.iommu = numacma::Iommu::noiommu;
      } else {
        set_error(NCMA_EINVAL, "iommu must be \"auto\", \"iommufd\", \"type1\" or \"noiommu\"");
        return nullptr;
      }
    }
  }
  numacma::Result<numacma::Pool> p = numacma::Pool::create(o);
  if (!p) {
    set_error(p.error());
    return nullptr;
  }
  auto* out = new (std::nothrow) ncma_pool{std::move(*p)};
  if (out == nullptr) set_error(NCMA_ENOMEM, "out of memory");
  else clear_error();
  return out;
}

ncma_pool* ncma_pool_attach(const char* name) {
  if (name == nullptr) {
    set_error(NCMA_EINVAL, "ncma_pool_attach: NULL name");
    return nullptr;
  }
  numacma::Result<numacma::Pool> p = numacma::Pool::attach(name);
  if (!p) {
    set_error(p.error());
    return nullptr;
  }
  auto* out = new (std::nothrow) ncma_pool{std::move(*p)};
  if (out == nullptr) set_error(NCMA_ENOMEM, "out of memory");
  else clear_error();
  return out;
}

void ncma_pool_destroy(ncma_pool* pool) { delete pool; }

int ncma_pool_address_kind(const ncma_pool* pool) {
  if (pool == nullptr) {
    set_error(NCMA_EINVAL, "ncma_pool_address_kind: NULL pool");
    return NCMA_EINVAL;
  }
  clear_error();
  // The C values are the C++ enumerators' (static_asserts below).
  return static_cast<int>(pool->pool.address_kind());
}

const char* ncma_address_kind_name(int kind) {
  if (kind < NCMA_ADDR_PHYSICAL || kind > NCMA_ADDR_IOVA_EXTERNAL) return "unknown";
  return numacma::address_kind_name(static_cast<numacma::AddressKind>(kind));
}

ncma_device* ncma_device_pci(ncma_pool* pool, const char* bdf) {
  if (pool == nullptr || bdf == nullptr) {
    set_error(NCMA_EINVAL, "ncma_device_pci: NULL pool or bdf");
    return nullptr;
  }
  numacma::Result<numacma::Device> d = numacma::Device::from_pci(bdf, pool->pool);
  if (!d) {
    set_error(d.error());
    return nullptr;
  }
  clear_error();
  return new (std::nothrow) ncma_device{std::move(*d)};
}

ncma_device* ncma_device_node(int node, const char* name) {
  clear_error();
  return new (std::nothrow)
      ncma_device{numacma::Device::on_node(node, name != nullptr ? name : "dev")};
}

void ncma_device_set_dma_mask(ncma_device* dev, uint64_t mask) {
  if (dev != nullptr) dev->dev.coherent_dma_mask = mask;
}

int ncma_device_get_node(const ncma_device* dev) {
  return dev != nullptr ? dev->dev.node : numacma::kNoNode;
}

void ncma_device_destroy(ncma_device* dev) { delete dev; }

void* ncma_alloc_coherent(ncma_pool* pool, const ncma_device* dev, size_t size,
                          uint64_t* dma_handle) {
  if (pool == nullptr || dev == nullptr || dma_handle == nullptr) {
    set_error(NCMA_EINVAL, "ncma_alloc_coherent: NULL pool, device or dma_handle");
    return nullptr;
  }
  numacma::detail::PoolImpl* impl = numacma::detail::impl_of(pool->pool);
  if (impl == nullptr) {
    set_error(NCMA_EINVAL, "ncma_alloc_coherent: an empty pool");
    return nullptr;
  }
  // The calling CPU: a device with no node gets pages on its node (A3, A7).
  const int cpu = dev->dev.node == numacma::kNoNode ? impl->backing->calling_cpu() : -1;
  numacma::Result<numacma::detail::RawBuffer> r = impl->alloc(dev->dev, size, cpu);
  if (!r) {
    set_error(r.error());
    return nullptr;
  }
  clear_error();
  *dma_handle = r->dma;
  return r->cpu;
}

int ncma_free_coherent(ncma_pool* pool, const ncma_device* dev, size_t size, void* cpu,
                       uint64_t dma_handle) {
  if (pool == nullptr || dev == nullptr) {
    set_error(NCMA_EINVAL, "ncma_free_coherent: NULL pool or device");
    return NCMA_EINVAL;
  }
  numacma::Status s = pool->pool.free_coherent(dev->dev, size, cpu, dma_handle);
  if (!s) {
    set_error(s.error());
    return g_code;
  }
  clear_error();
  return NCMA_OK;
}

}  // extern "C"

// ---- VFIO ------------------------------------------------------------------

namespace {

/** 0 or the error's code (and the thread's last error). */
int status_code(const numacma::Status& s) {
  if (!s) {
    set_error(s.error());
    return g_code;
  }
  clear_error();
  return NCMA_OK;
}

/** The VfioDevice of a pool, or nullopt with the error set. */
numacma::Result<numacma::VfioDevice> vfio_dev(ncma_pool* pool, const char* bdf) {
  if (pool == nullptr || bdf == nullptr)
    return numacma::make_error(numacma::Errc::invalid_argument, "NULL pool or bdf");
  return pool->pool.vfio_device(bdf);
}

template <class F>
int with_vfio(ncma_pool* pool, const char* bdf, F&& f) {
  numacma::Result<numacma::VfioDevice> d = vfio_dev(pool, bdf);
  if (!d) {
    set_error(d.error());
    return g_code;
  }
  return f(*d);
}

template <class T>
int value_code(numacma::Result<T> r, T* out) {
  if (!r) {
    set_error(r.error());
    return g_code;
  }
  if (out != nullptr) *out = *r;
  clear_error();
  return NCMA_OK;
}

}  // namespace

extern "C" {

ncma_device* ncma_device_vfio(ncma_pool* pool, const char* bdf) {
  if (pool == nullptr || bdf == nullptr) {
    set_error(NCMA_EINVAL, "ncma_device_vfio: NULL pool or bdf");
    return nullptr;
  }
  numacma::Result<numacma::Device> d = numacma::Device::from_vfio(bdf, pool->pool);
  if (!d) {
    set_error(d.error());
    return nullptr;
  }
  clear_error();
  return new (std::nothrow) ncma_device{std::move(*d)};
}

int ncma_vfio_attach(ncma_pool* pool, const char* bdf, uint64_t dma_mask) {
  if (pool == nullptr || bdf == nullptr) {
    set_error(NCMA_EINVAL, "ncma_vfio_attach: NULL pool or bdf");
    return NCMA_EINVAL;
  }
  return status_code(pool->pool.vfio_attach({bdf, dma_mask == 0 ? ~uint64_t{0} : dma_mask}));
}

int ncma_vfio_bar_read32(ncma_pool* pool, const char* bdf, unsigned bar, uint64_t offset,
                         uint32_t* value) {
  return with_vfio(pool, bdf, [&](const numacma::VfioDevice& d) {
    return value_code(d.read32(bar, offset), value);
  });
}

int ncma_vfio_bar_write32(ncma_pool* pool, const char* bdf, unsigned bar, uint64_t offset,
                          uint32_t value) {
  return with_vfio(pool, bdf, [&](const numacma::VfioDevice& d) {
    return status_code(d.write32(bar, offset, value));
  });
}

int ncma_vfio_bar_read64(ncma_pool* pool, const char* bdf, unsigned bar, uint64_t offset,
                         uint64_t* value) {
  return with_vfio(pool, bdf, [&](const numacma::VfioDevice& d) {
    return value_code(d.read64(bar, offset), value);
  });
}

int ncma_vfio_bar_write64(ncma_pool* pool, const char* bdf, unsigned bar, uint64_t offset,
                          uint64_t value) {
  return with_vfio(pool, bdf, [&](const numacma::VfioDevice& d) {
    return status_code(d.write64(bar, offset, value));
  });
}

int ncma_vfio_config_read(ncma_pool* pool, const char* bdf, uint32_t offset, void* out, size_t len) {
  return with_vfio(pool, bdf, [&](const numacma::VfioDevice& d) {
    return status_code(d.config_read(offset, out, len));
  });
}

int ncma_vfio_config_write(ncma_pool* pool, const char* bdf, uint32_t offset, const void* in,
                           size_t len) {
  return with_vfio(pool, bdf, [&](const numacma::VfioDevice& d) {
    return status_code(d.config_write(offset, in, len));
  });
}

int ncma_vfio_enable_bus_master(ncma_pool* pool, const char* bdf) {
  return with_vfio(pool, bdf, [&](const numacma::VfioDevice& d) {
    return status_code(d.enable_bus_master());
  });
}

int ncma_vfio_bind(const char* bdf, const char* sysfs_root) {
  return ncma_vfio_bind_flags(bdf, sysfs_root, 0);
}

int ncma_vfio_bind_flags(const char* bdf, const char* sysfs_root, unsigned flags) {
  if (bdf == nullptr) {
    set_error(NCMA_EINVAL, "ncma_vfio_bind: NULL bdf");
    return NCMA_EINVAL;
  }
  if ((flags & ~NCMA_VFIO_BIND_FORCE) != 0) {
    set_error(NCMA_EINVAL, ("ncma_vfio_bind_flags: unknown flags " + std::to_string(flags)).c_str());
    return NCMA_EINVAL;
  }
  numacma::VfioBindOptions o;
  o.sysfs_root = sysfs_root != nullptr ? sysfs_root : "/sys";
  o.force = (flags & NCMA_VFIO_BIND_FORCE) != 0;
  return status_code(numacma::vfio_bind(bdf, o));
}

int ncma_vfio_unbind(const char* bdf, const char* sysfs_root) {
  if (bdf == nullptr) {
    set_error(NCMA_EINVAL, "ncma_vfio_unbind: NULL bdf");
    return NCMA_EINVAL;
  }
  return status_code(numacma::vfio_unbind(bdf, sysfs_root != nullptr ? sysfs_root : "/sys"));
}

ncma_dma_pool* ncma_dma_pool_create(ncma_pool* pool, const char* name, const ncma_device* dev,
                                    size_t size, size_t align, size_t boundary) {
  if (pool == nullptr || dev == nullptr) {
    set_error(NCMA_EINVAL, "ncma_dma_pool_create: NULL pool or device");
    return nullptr;
  }
  numacma::Result<numacma::DmaPool> r = numacma::DmaPool::create(
      pool->pool, dev->dev, name != nullptr ? name : "", size, align, boundary);
  if (!r) {
    set_error(r.error());
    return nullptr;
  }
  auto* out = new (std::nothrow) ncma_dma_pool{std::move(*r)};
  if (out == nullptr) set_error(NCMA_ENOMEM, "ncma_dma_pool_create: out of memory");
  return out;
}

namespace {
void* dma_pool_alloc(ncma_dma_pool* dp, uint64_t* dma_handle, bool zero, const char* what) {
  if (dp == nullptr || dma_handle == nullptr) {
    set_error(NCMA_EINVAL, what);
    return nullptr;
  }
  numacma::Result<numacma::DmaBlock> b = zero ? dp->dp.zalloc() : dp->dp.alloc();
  if (!b) {
    set_error(b.error());
    return nullptr;
  }
  void* cpu = b->cpu();
  *dma_handle = b->dma_addr();
  b->detach();
  return cpu;
}
}  // namespace

void* ncma_dma_pool_alloc(ncma_dma_pool* dp, uint64_t* dma_handle) {
  return dma_pool_alloc(dp, dma_handle, false, "ncma_dma_pool_alloc: NULL pool or dma_handle");
}

void* ncma_dma_pool_zalloc(ncma_dma_pool* dp, uint64_t* dma_handle) {
  return dma_pool_alloc(dp, dma_handle, true, "ncma_dma_pool_zalloc: NULL pool or dma_handle");
}

int ncma_dma_pool_free(ncma_dma_pool* dp, void* vaddr, uint64_t dma) {
  if (dp == nullptr) {
    set_error(NCMA_EINVAL, "ncma_dma_pool_free: NULL pool");
    return NCMA_EINVAL;
  }
  return status_code(dp->dp.free(vaddr, dma));
}

int ncma_dma_pool_destroy(ncma_dma_pool* dp) {
  if (dp == nullptr) return NCMA_OK;  // as dma_pool_destroy(NULL)
  // A C caller frees blocks through this handle only: with blocks still
  // allocated, keep it (the kernel warns "busy" and leaks the pages; here
  // the caller can free them and destroy again).
  const numacma::DmaPoolStats st = dp->dp.stats();
  if (st.blocks_live > 0) {
    set_error(NCMA_EBUSY, ("dma_pool " + st.name + ": " + std::to_string(st.blocks_live) +
                           " block(s) still allocated; nothing destroyed: free them and destroy "
                           "again")
                              .c_str());
    return NCMA_EBUSY;
  }
  const int rc = status_code(dp->dp.destroy());
  delete dp;
  return rc;
}

int ncma_last_error(void) { return g_code; }
const char* ncma_last_error_message(void) { return g_message.c_str(); }

const char* ncma_strerror(int code) {
  if (code > 0 || code < NCMA_ECORRUPT) return "not an ncma error code";
  return numacma::errc_name(static_cast<numacma::Errc>(-code));
}

}  // extern "C"
