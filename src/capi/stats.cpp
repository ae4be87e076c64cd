// src/capi/stats.cpp — ncma_pool_area_count / ncma_pool_area_stats: a pool's
// areas as Pool::stats() reports them, for C programs (and numacma_dpdk's).
#include <algorithm>
#include <cstring>
#include <string>

#include "capi/capi.hpp"

namespace {

template <std::size_t N>
void copy_name(char (&to)[N], const std::string& from) {
  const std::size_t n = std::min(from.size(), N - 1);
  std::memcpy(to, from.data(), n);
  to[n] = '\0';
}

}  // namespace

using numacma::capi::clear_error;
using numacma::capi::set_error;

int ncma_pool_area_count(const ncma_pool* pool) {
  if (pool == nullptr) {
    set_error(NCMA_EINVAL, "ncma_pool_area_count: NULL pool");
    return NCMA_EINVAL;
  }
  clear_error();
  return static_cast<int>(pool->pool.stats().areas.size());
}

int ncma_pool_area_stats(const ncma_pool* pool, unsigned index, ncma_area_stats* out) {
  if (pool == nullptr || out == nullptr) {
    set_error(NCMA_EINVAL, "ncma_pool_area_stats: NULL pool or out");
    return NCMA_EINVAL;
  }
  const numacma::Stats st = pool->pool.stats();
  if (index >= st.areas.size()) {
    const std::string why = "ncma_pool_area_stats: area " + std::to_string(index) + " of " +
                            std::to_string(st.areas.size());
    set_error(NCMA_EINVAL, why.c_str());
    return NCMA_EINVAL;
  }
  const numacma::AreaReport& a = st.areas[index];
  *out = ncma_area_stats{};
  copy_name(out->name, a.name);
  copy_name(out->kind, a.kind);
  out->node = a.node;
  out->base_dma = a.base_dma;
  out->pages = a.pages;
  out->used = a.used;
  out->maxchunk = a.maxchunk;
  out->alloc_pages_success = a.alloc_pages_success;
  out->alloc_pages_fail = a.alloc_pages_fail;
  out->release_pages_success = a.release_pages_success;
  out->total_pages = a.total_pages();
  out->available_pages = a.available_pages();
  clear_error();
  return 0;
}
