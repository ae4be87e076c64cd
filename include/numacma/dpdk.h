/* numacma/dpdk.h — DPDK's rings and mbufs on numacma's areas, with DPDK's own
 * drivers doing the DMA (library numacma_dpdk, pkg-config numacma-dpdk;
 * docs/dpdk.md). Three calls switch an application:
 *
 *   rte_eal_init(argc, argv);
 *   ncma_pool *pool = ncma_pool_create("cma_pernuma=64M", NULL);
 *   ncma_dpdk_register(pool);                        // after rte_eal_init
 *   int socket = ncma_dpdk_socket(pool, port);       // the port's area, as a DPDK heap
 *   struct rte_mempool *mp = ncma_dpdk_pktmbuf_pool_create(pool, port, "mb0", 8191, 256, 0,
 *                                                          RTE_MBUF_DEFAULT_BUF_SIZE);
 *   rte_eth_rx_queue_setup(port, 0, 1024, socket, NULL, mp);
 *   rte_eth_tx_queue_setup(port, 0, 1024, socket, NULL);
 *
 * Each call returns 0 / a socket id / a mempool, or a negative NCMA_E* code /
 * NULL with the reason in ncma_last_error() and ncma_last_error_message(), as
 * the rest of the C API (numacma/numacma.h). Thread-safe. Order of the end:
 * rte_mempool_free of its mempools, rte_eth_dev_close of its ports,
 * ncma_dpdk_unregister, ncma_pool_destroy, then rte_eal_cleanup. */
#ifndef NUMACMA_DPDK_H
#define NUMACMA_DPDK_H

#include <stddef.h>
#include <stdint.h>

#include "numacma/numacma.h"

#ifdef __cplusplus
extern "C" {
#endif

struct rte_mempool;

/* Makes the pool's memory usable for DMA by DPDK's devices. After
 * rte_eal_init, before the pool's first allocation (a pool made for DPDK).
 *  - DPDK in IOVA-as-VA mode (the default with VFIO, and with --no-huge):
 *    numacma chooses every IOVA itself, lowest first, never one of DPDK's own
 *    (its memory's virtual address ranges), and maps each area once in
 *    DPDK's VFIO container (rte_vfio_container_dma_map) when DPDK drives
 *    devices through VFIO; the pool's address kind becomes
 *    NCMA_ADDR_IOVA_EXTERNAL. An attached (reserved) pool moves in this
 *    process only: its IOVAs are this process's, other processes keep theirs,
 *    and `numacma status` shows what DPDK took from the reservation.
 *  - IOVA-as-PA: the pool's DMA handles must be physical addresses
 *    (NCMA_ADDR_PHYSICAL: hugetlb areas, root); they are used as they are.
 * Errors: NCMA_EINVAL (NULL, EAL not initialised), NCMA_EBUSY (registered
 * already, or buffers of this process live), NCMA_EUNSUPPORTED (PA mode with a pool whose
 * handles are not physical; a sim pool). */
int ncma_dpdk_register(ncma_pool *pool);
/* Gives the ports' heaps back to the pool (their queues must be released:
 * rte_eth_dev_close) and forgets the registration; the areas stay mapped
 * until the pool is destroyed. NCMA_EINVAL when not registered, NCMA_EBUSY
 * while a port's heap still holds DPDK allocations. */
int ncma_dpdk_unregister(ncma_pool *pool);

/* The coherent DMA mask of the port's device (DPDK keeps none per device),
 * before its first ncma_dpdk_socket / ncma_dpdk_pktmbuf_pool_create. 0 or
 * NCMA_EINVAL (mask 0, bad port) / NCMA_EBUSY (the port has memory already). */
int ncma_dpdk_set_dma_mask(ncma_pool *pool, uint16_t port_id, uint64_t mask);
/* Bytes of the heap each port gets at its first ncma_dpdk_socket (default
 * NCMA_DPDK_PORT_MEMORY): its PMD's descriptor rings and software rings. */
#define NCMA_DPDK_PORT_MEMORY ((size_t)8 << 20)
int ncma_dpdk_set_port_memory(ncma_pool *pool, size_t bytes);

/* The socket id to give rte_eth_rx_queue_setup / rte_eth_tx_queue_setup for
 * this port: a DPDK heap of memory that ncma_alloc_coherent gave for the
 * port's device, so from the area numacma's rules pick (its PCI node's
 * per-NUMA area, then the kernel's fallback order; a device with no node,
 * a vdev included, takes the kernel's NUMA_NO_NODE rules). The same id on
 * every call for the port. >= 0, or NCMA_EINVAL (pool not registered, port
 * invalid), NCMA_ENOMEM / NCMA_EUNREACHABLE (no memory for the heap). */
int ncma_dpdk_socket(ncma_pool *pool, uint16_t port_id);
/* The NUMA node numacma places the port's memory for, in *node (-1: none,
 * the NUMA_NO_NODE rules). 0 or NCMA_EINVAL. */
int ncma_dpdk_port_node(ncma_pool *pool, uint16_t port_id, int *node);

/* rte_pktmbuf_pool_create's mempool, its mbufs in memory that
 * ncma_alloc_coherent gave for the port's device (IOVA-contiguous chunks);
 * rte_mempool_free gives it back to its areas. NULL on error (bad input,
 * no memory; the reason in ncma_last_error_message). */
struct rte_mempool *ncma_dpdk_pktmbuf_pool_create(ncma_pool *pool, uint16_t port_id,
                                                  const char *name, unsigned n,
                                                  unsigned cache_size, uint16_t priv_size,
                                                  uint16_t data_room_size);

#ifdef __cplusplus
}
#endif

#endif /* NUMACMA_DPDK_H */
