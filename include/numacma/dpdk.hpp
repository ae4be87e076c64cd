// numacma/dpdk.hpp — the C++ side of numacma/dpdk.h (library numacma_dpdk):
// the same calls over a numacma::Pool, errors as Status / Result. A
// registered Pool must not be moved (it is known by its address) and must
// outlive every mempool made from it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "numacma/dpdk.h"
#include "numacma/numacma.hpp"

namespace numacma::dpdk {

/** ncma_dpdk_register. */
Status register_pool(Pool& pool);
/** ncma_dpdk_unregister. */
Status unregister_pool(Pool& pool);
/** ncma_dpdk_set_dma_mask. */
Status set_dma_mask(Pool& pool, std::uint16_t port_id, std::uint64_t mask);
/** ncma_dpdk_set_port_memory. */
Status set_port_memory(Pool& pool, std::size_t bytes);
/** ncma_dpdk_socket. */
Result<int> socket(Pool& pool, std::uint16_t port_id);
/** The device numacma allocates for on the port's behalf (name: the PCI BDF
 *  or the vdev's name; node; mask). */
Result<Device> port_device(Pool& pool, std::uint16_t port_id);
/** ncma_dpdk_pktmbuf_pool_create. */
Result<rte_mempool*> pktmbuf_pool_create(Pool& pool, std::uint16_t port_id, const std::string& name,
                                         unsigned n, unsigned cache_size, std::uint16_t priv_size,
                                         std::uint16_t data_room_size);

}  // namespace numacma::dpdk
