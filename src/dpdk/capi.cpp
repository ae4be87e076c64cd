// src/dpdk/capi.cpp — numacma/dpdk.h over numacma/dpdk.hpp: ncma_pool is a
// numacma::Pool, errors go to ncma_last_error's slot (src/capi/capi.hpp).
#include "capi/capi.hpp"
#include "numacma/dpdk.hpp"

namespace {

using numacma::capi::clear_error;
using numacma::capi::set_error;

int status(const numacma::Status& s) {
  if (s) {
    clear_error();
    return NCMA_OK;
  }
  set_error(s.error());
  return -static_cast<int>(s.error().code);
}

int null_pool() {
  set_error(NCMA_EINVAL, "numacma dpdk: pool is NULL");
  return NCMA_EINVAL;
}

}  // namespace

extern "C" {

int ncma_dpdk_register(ncma_pool* pool) {
  return pool != nullptr ? status(numacma::dpdk::register_pool(pool->pool)) : null_pool();
}

int ncma_dpdk_unregister(ncma_pool* pool) {
  return pool != nullptr ? status(numacma::dpdk::unregister_pool(pool->pool)) : null_pool();
}

int ncma_dpdk_set_dma_mask(ncma_pool* pool, uint16_t port_id, uint64_t mask) {
  return pool != nullptr ? status(numacma::dpdk::set_dma_mask(pool->pool, port_id, mask)) : null_pool();
}

int ncma_dpdk_set_port_memory(ncma_pool* pool, size_t bytes) {
  return pool != nullptr ? status(numacma::dpdk::set_port_memory(pool->pool, bytes)) : null_pool();
}

int ncma_dpdk_socket(ncma_pool* pool, uint16_t port_id) {
  if (pool == nullptr) return null_pool();
  numacma::Result<int> s = numacma::dpdk::socket(pool->pool, port_id);
  if (!s) return status(std::move(s).error());
  clear_error();
  return *s;
}

int ncma_dpdk_port_node(ncma_pool* pool, uint16_t port_id, int* node) {
  if (pool == nullptr) return null_pool();
  if (node == nullptr) {
    set_error(NCMA_EINVAL, "ncma_dpdk_port_node: node is NULL");
    return NCMA_EINVAL;
  }
  numacma::Result<numacma::Device> d = numacma::dpdk::port_device(pool->pool, port_id);
  if (!d) return status(std::move(d).error());
  *node = d->node;
  clear_error();
  return NCMA_OK;
}

struct rte_mempool* ncma_dpdk_pktmbuf_pool_create(ncma_pool* pool, uint16_t port_id, const char* name,
                                                  unsigned n, unsigned cache_size, uint16_t priv_size,
                                                  uint16_t data_room_size) {
  if (pool == nullptr) {
    null_pool();
    return nullptr;
  }
  if (name == nullptr) {
    set_error(NCMA_EINVAL, "ncma_dpdk_pktmbuf_pool_create: name is NULL");
    return nullptr;
  }
  numacma::Result<rte_mempool*> mp = numacma::dpdk::pktmbuf_pool_create(pool->pool, port_id, name, n, cache_size,
                                                                        priv_size, data_room_size);
  if (!mp) {
    set_error(mp.error());
    return nullptr;
  }
  clear_error();
  return *mp;
}

}  // extern "C"
