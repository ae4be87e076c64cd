// src/capi/capi.hpp — what the C handles are, for the libraries that extend
// the C API (src/dpdk: numacma/dpdk.h): an ncma_pool is a numacma::Pool, an
// ncma_device a numacma::Device, and their errors go to the same thread-local
// slot that ncma_last_error() reads.
#pragma once

#include "numacma/numacma.h"
#include "numacma/numacma.hpp"

struct ncma_pool {
  numacma::Pool pool;
};
struct ncma_device {
  numacma::Device dev;
};
struct ncma_dma_pool {
  numacma::DmaPool dp;
};

namespace numacma::capi {

/** The slot ncma_last_error() / ncma_last_error_message() read. */
void set_error(const Error& e);
void set_error(int code, const char* msg);
void clear_error();

}  // namespace numacma::capi
