/* fwd.c — numacma-dpdk-fwd: DPDK's l2fwd / testpmd io-mode forwarder with
 * every port's mbufs, and the rings of a PMD that allocates them at queue
 * setup, in numacma memory on the port's node (numacma/dpdk.h, docs/dpdk.md;
 * a PMD that allocates its rings at probe, like net_virtio, keeps them in
 * DPDK's own memory). Ports forward in pairs, in the order the port mask
 * enables them (0 <-> 1, 2 <-> 3; a lone last port to itself), packets
 * unchanged, one rx and one tx queue per port, all on the main lcore.
 *
 * usage: numacma-dpdk-fwd [EAL options] -- [-p PORTMASK] [--pool "PARAMS"]
 *                         [--packets N] [--mask PORT:BITS]...
 *   -p PORTMASK      hex mask of the ports to forward (default: every port)
 *   --pool PARAMS    the numacma pool's parameters (default "cma=64M cma_pernuma=64M")
 *   --packets N      stop after N packets forwarded (default 0: until SIGINT/SIGTERM)
 *   --mask PORT:BITS the coherent DMA mask of PORT's device, BITS 1-64 (default 64)
 *
 * What numacma changes is three calls per application (ncma_dpdk_register)
 * and per port (ncma_dpdk_socket, ncma_dpdk_pktmbuf_pool_create); the rest
 * is DPDK as its own examples use it. Exit 0 when it forwarded what it was
 * asked to and tore everything down; 1 on any failure (each says why); 2 for
 * bad usage. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

#include <numacma/dpdk.h>
#include <numacma/numacma.h>

#define BURST 32
#define RX_DESC 1024
#define TX_DESC 1024
/* Per port: its rx ring, what its peer's tx ring holds of it, a burst in
 * flight and the mempool's lcore cache (l2fwd's sizing, per port). */
#define MBUFS 4095
#define MBUF_CACHE 256
#define MAX_PORTS (RTE_MAX_ETHPORTS < 64 ? RTE_MAX_ETHPORTS : 64) /* a 64-bit port mask */

struct port {
  uint16_t id;
  unsigned peer; /* index in app.ports of the port it sends to */
  char name[RTE_ETH_NAME_MAX_LEN];
  int node;   /* where numacma places the port's memory: its device's node, -1 none */
  int socket; /* the queue socket: a DPDK heap of that memory */
  struct rte_mempool *mp;
  int touched, started;
  uint64_t rx, tx, dropped;
};

struct app {
  /* options */
  uint64_t portmask;
  const char *params;
  uint64_t packets;
  unsigned mask_bits[MAX_PORTS]; /* 0: not set */
  /* state, torn down by finish() in reverse */
  int eal;
  ncma_pool *pool;
  int registered;
  struct port ports[MAX_PORTS];
  unsigned n_ports;
};

static struct app app;
static volatile sig_atomic_t quit;

static void on_signal(int sig) {
  (void)sig;
  quit = 1;
}

static const char *prog = "numacma-dpdk-fwd";

static void print_usage(FILE *to) {
  fprintf(to,
          "usage: %s [EAL options] -- [-p PORTMASK] [--pool \"PARAMS\"] [--packets N] [--mask PORT:BITS]...\n"
          "  -p PORTMASK       hex mask of the ports to forward (default: every port)\n"
          "  --pool PARAMS     numacma pool parameters (default \"cma=64M cma_pernuma=64M\")\n"
          "  --packets N       stop after N packets forwarded (0: until SIGINT/SIGTERM)\n"
          "  --mask PORT:BITS  coherent DMA mask of PORT's device, BITS 1-64 (repeatable)\n",
          prog);
}

static int usage(const char *why) {
  fprintf(stderr, "%s: %s\n", prog, why);
  print_usage(stderr);
  return 2;
}

/* A whole unsigned number in BASE, nothing after it; -1 if not. */
static int parse_u64(const char *s, int base, uint64_t *out) {
  char *end = NULL;
  if (s == NULL || *s == '\0' || *s == '-' || *s == '+') return -1;
  errno = 0;
  unsigned long long v = strtoull(s, &end, base);
  if (errno != 0 || end == s || *end != '\0') return -1;
  *out = v;
  return 0;
}

static int parse_args(int argc, char **argv) {
  static const struct option longopts[] = {{"pool", required_argument, NULL, 'P'},
                                           {"packets", required_argument, NULL, 'n'},
                                           {"mask", required_argument, NULL, 'm'},
                                           {"help", no_argument, NULL, 'h'},
                                           {NULL, 0, NULL, 0}};
  char why[160];
  int opt;
  app.params = "cma=64M cma_pernuma=64M";
  optind = 1; /* the EAL's getopt ran before */
  opterr = 0;
  while ((opt = getopt_long(argc, argv, ":p:h", longopts, NULL)) != -1) {
    switch (opt) {
      case 'p':
        if (parse_u64(optarg, 16, &app.portmask) != 0 || app.portmask == 0) {
          snprintf(why, sizeof why, "-p %s: a non-zero hex port mask, e.g. 0x3", optarg);
          return usage(why);
        }
        break;
      case 'P':
        app.params = optarg;
        break;
      case 'n':
        if (parse_u64(optarg, 10, &app.packets) != 0) {
          snprintf(why, sizeof why, "--packets %s: a number of packets (0: until a signal)", optarg);
          return usage(why);
        }
        break;
      case 'm': {
        const char *colon = strchr(optarg, ':');
        char port[16];
        uint64_t p, bits;
        if (colon == NULL || (size_t)(colon - optarg) >= sizeof port) return usage("--mask: PORT:BITS, e.g. 0:32");
        memcpy(port, optarg, (size_t)(colon - optarg));
        port[colon - optarg] = '\0';
        if (parse_u64(port, 10, &p) != 0 || p >= MAX_PORTS || parse_u64(colon + 1, 10, &bits) != 0 || bits < 1 ||
            bits > 64) {
          snprintf(why, sizeof why, "--mask %s: PORT below %d and BITS from 1 to 64, e.g. 0:32", optarg, MAX_PORTS);
          return usage(why);
        }
        app.mask_bits[p] = (unsigned)bits;
        break;
      }
      case 'h':
        return -1;
      case ':':
        snprintf(why, sizeof why, "%s needs an argument", argv[optind - 1]);
        return usage(why);
      default:
        snprintf(why, sizeof why, "unknown option %s", argv[optind - 1]);
        return usage(why);
    }
  }
  if (optind < argc) {
    snprintf(why, sizeof why, "unexpected argument %s", argv[optind]);
    return usage(why);
  }
  return 0;
}

static int ncma_fail(const char *what) {
  fprintf(stderr, "%s: %s: %s: %s\n", prog, what, ncma_strerror(ncma_last_error()), ncma_last_error_message());
  return 1;
}

static int rte_fail(const char *what, uint16_t port, int rc) {
  fprintf(stderr, "%s: port %u: %s: %s\n", prog, port, what, rte_strerror(rc < 0 ? -rc : rc));
  return 1;
}

/* The ports the mask enables, paired in order; each mask named applies to one. */
static int choose_ports(void) {
  uint16_t id;
  char why[160];
  if (app.portmask == 0) app.portmask = ~(uint64_t)0;
  RTE_ETH_FOREACH_DEV(id) {
    if (id >= MAX_PORTS || (app.portmask & ((uint64_t)1 << id)) == 0) continue;
    struct port *p = &app.ports[app.n_ports++];
    p->id = id;
    if (rte_eth_dev_get_name_by_port(id, p->name) != 0) snprintf(p->name, sizeof p->name, "port%u", id);
  }
  for (unsigned b = 0; b < 64; ++b) {
    if ((app.portmask >> b & 1) == 0 || app.portmask == ~(uint64_t)0) continue;
    if (b >= MAX_PORTS || !rte_eth_dev_is_valid_port((uint16_t)b)) {
      snprintf(why, sizeof why, "-p 0x%" PRIx64 ": port %u is not a DPDK port (%u available)", app.portmask, b,
               rte_eth_dev_count_avail());
      return usage(why);
    }
  }
  for (unsigned i = 0; i < MAX_PORTS; ++i) {
    if (app.mask_bits[i] == 0) continue;
    if (i >= 64 || (app.portmask >> i & 1) == 0 || !rte_eth_dev_is_valid_port((uint16_t)i)) {
      snprintf(why, sizeof why, "--mask %u:%u: port %u is not forwarded", i, app.mask_bits[i], i);
      return usage(why);
    }
  }
  if (app.n_ports == 0) return usage("no DPDK port to forward (give the EAL a device or a --vdev)");
  for (unsigned i = 0; i < app.n_ports; ++i) app.ports[i].peer = i % 2 == 0 ? (i + 1 < app.n_ports ? i + 1 : i) : i - 1;
  return 0;
}

/* One port on numacma memory: its mask, its node, its queue socket, its
 * mbufs; then DPDK's usual configure, queue setup and start. */
static int setup_port(struct port *p) {
  char name[RTE_MEMPOOL_NAMESIZE];
  if (app.mask_bits[p->id] != 0) {
    const unsigned bits = app.mask_bits[p->id];
    const uint64_t mask = bits == 64 ? ~(uint64_t)0 : ((uint64_t)1 << bits) - 1;
    if (ncma_dpdk_set_dma_mask(app.pool, p->id, mask) != 0) return ncma_fail("ncma_dpdk_set_dma_mask");
  }
  if (ncma_dpdk_port_node(app.pool, p->id, &p->node) != 0) return ncma_fail("ncma_dpdk_port_node");
  p->socket = ncma_dpdk_socket(app.pool, p->id);
  if (p->socket < 0) return ncma_fail("ncma_dpdk_socket");
  snprintf(name, sizeof name, "numacma_fwd_p%u", p->id);
  p->mp = ncma_dpdk_pktmbuf_pool_create(app.pool, p->id, name, MBUFS, MBUF_CACHE, 0, RTE_MBUF_DEFAULT_BUF_SIZE);
  if (p->mp == NULL) return ncma_fail("ncma_dpdk_pktmbuf_pool_create");

  struct rte_eth_conf conf;
  uint16_t nb_rxd = RX_DESC, nb_txd = TX_DESC;
  int rc;
  memset(&conf, 0, sizeof conf);
  p->touched = 1;
  if ((rc = rte_eth_dev_configure(p->id, 1, 1, &conf)) != 0) return rte_fail("rte_eth_dev_configure", p->id, rc);
  if ((rc = rte_eth_dev_adjust_nb_rx_tx_desc(p->id, &nb_rxd, &nb_txd)) != 0)
    return rte_fail("rte_eth_dev_adjust_nb_rx_tx_desc", p->id, rc);
  /* The socket numacma gave, not rte_eth_dev_socket_id(): the rings of a
   * PMD that allocates them here come from the port's numacma heap. */
  if ((rc = rte_eth_rx_queue_setup(p->id, 0, nb_rxd, (unsigned)p->socket, NULL, p->mp)) != 0)
    return rte_fail("rte_eth_rx_queue_setup", p->id, rc);
  if ((rc = rte_eth_tx_queue_setup(p->id, 0, nb_txd, (unsigned)p->socket, NULL)) != 0)
    return rte_fail("rte_eth_tx_queue_setup", p->id, rc);
  if ((rc = rte_eth_dev_start(p->id)) != 0) return rte_fail("rte_eth_dev_start", p->id, rc);
  p->started = 1;
  rc = rte_eth_promiscuous_enable(p->id);
  if (rc != 0 && rc != -ENOTSUP) return rte_fail("rte_eth_promiscuous_enable", p->id, rc);

  printf("port %u (%s): numacma places its memory for node %d%s; DPDK's socket for it %d\n", p->id, p->name, p->node,
         p->node < 0 ? " (no node: the NUMA_NO_NODE rules)" : "", rte_eth_dev_socket_id(p->id));
  printf("port %u (%s): queues on socket %d (numacma heap), %u rx + %u tx descriptors, mbuf pool %s (%u mbufs)\n",
         p->id, p->name, p->socket, nb_rxd, nb_txd, p->mp->name, p->mp->size);
  return 0;
}

/* What DPDK took from numacma, area by area (the ports' heaps and mbufs). */
static void print_areas(void) {
  const int n = ncma_pool_area_count(app.pool);
  ncma_area_stats a;
  for (int i = 0; i < n; ++i)
    if (ncma_pool_area_stats(app.pool, (unsigned)i, &a) == 0)
      printf("area %s (%s, node %d): %" PRIu64 " of %" PRIu64 " pages used\n", a.name, a.kind, a.node, a.used,
             a.pages);
}

/* io mode: what a port receives goes out of its peer as it is. */
static uint64_t forward(void) {
  struct rte_mbuf *bufs[BURST];
  uint64_t done = 0;
  while (!quit && (app.packets == 0 || done < app.packets)) {
    for (unsigned i = 0; i < app.n_ports && !quit; ++i) {
      struct port *p = &app.ports[i];
      struct port *peer = &app.ports[p->peer];
      uint16_t want = BURST;
      if (app.packets != 0) {
        if (done >= app.packets) break;
        if (app.packets - done < want) want = (uint16_t)(app.packets - done);
      }
      const uint16_t n = rte_eth_rx_burst(p->id, 0, bufs, want);
      if (n == 0) continue;
      p->rx += n;
      const uint16_t sent = rte_eth_tx_burst(peer->id, 0, bufs, n);
      peer->tx += sent;
      done += sent;
      if (sent < n) {
        rte_pktmbuf_free_bulk(bufs + sent, n - sent);
        peer->dropped += n - sent;
      }
    }
  }
  return done;
}

/* The end, in this order: the ports' queues (stop, close: rx rings give
 * their mbufs back, tx rings the ones they still hold, the rings go back to
 * the port heaps), the mempools (their chunks back to the pool's areas),
 * the registration (the port heaps back to the pool), the pool, the EAL. */
static int finish(int rc) {
  for (unsigned i = 0; i < app.n_ports; ++i) {
    struct port *p = &app.ports[i];
    int r;
    if (p->started && (r = rte_eth_dev_stop(p->id)) != 0) rc = rte_fail("rte_eth_dev_stop", p->id, r);
    if (p->touched && (r = rte_eth_dev_close(p->id)) != 0) rc = rte_fail("rte_eth_dev_close", p->id, r);
  }
  for (unsigned i = 0; i < app.n_ports; ++i) rte_mempool_free(app.ports[i].mp);
  int keep_pool = 0;
  if (app.registered && ncma_dpdk_unregister(app.pool) != 0) {
    rc = ncma_fail("ncma_dpdk_unregister");
    keep_pool = 1; /* DPDK still holds memory of it: never unmap that */
    fprintf(stderr, "%s: the pool is left as it is\n", prog);
  }
  if (app.pool != NULL && !keep_pool) ncma_pool_destroy(app.pool);
  if (app.eal && rte_eal_cleanup() != 0) {
    fprintf(stderr, "%s: rte_eal_cleanup: %s\n", prog, rte_strerror(rte_errno));
    rc = 1;
  }
  return rc;
}

int main(int argc, char **argv) {
  const int eal_args = rte_eal_init(argc, argv);
  if (eal_args < 0) {
    fprintf(stderr, "%s: rte_eal_init: %s\n", prog, rte_strerror(rte_errno));
    return 1;
  }
  app.eal = 1;
  int rc = parse_args(argc - eal_args, argv + eal_args);
  if (rc == -1) { /* --help */
    printf("%s: forwards packets between DPDK ports, their mbufs in numacma memory on each port's node\n", prog);
    print_usage(stdout);
    return finish(0);
  }
  if (rc != 0) return finish(rc);
  if ((rc = choose_ports()) != 0) return finish(rc);
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);

  /* The pool, made for DPDK: registered before its first allocation. */
  app.pool = ncma_pool_create(app.params, NULL);
  if (app.pool == NULL) return finish(ncma_fail("ncma_pool_create"));
  if (ncma_dpdk_register(app.pool) != 0) return finish(ncma_fail("ncma_dpdk_register"));
  app.registered = 1;
  printf("pool \"%s\" registered with DPDK: IOVA as %s, DMA addresses %s\n", app.params,
         rte_eal_iova_mode() == RTE_IOVA_PA ? "PA" : "VA",
         ncma_address_kind_name(ncma_pool_address_kind(app.pool)));

  for (unsigned i = 0; i < app.n_ports; ++i)
    if ((rc = setup_port(&app.ports[i])) != 0) return finish(rc);
  print_areas();
  for (unsigned i = 0; i < app.n_ports; i += 2)
    if (app.ports[i].peer == i)
      printf("forwarding port %u -> port %u\n", app.ports[i].id, app.ports[i].id);
    else
      printf("forwarding port %u <-> port %u\n", app.ports[i].id, app.ports[app.ports[i].peer].id);
  if (app.packets != 0)
    printf("io mode on lcore %u, until %" PRIu64 " packets are forwarded\n", rte_lcore_id(), app.packets);
  else
    printf("io mode on lcore %u, until SIGINT or SIGTERM\n", rte_lcore_id());
  fflush(stdout);

  const uint64_t done = forward();
  for (unsigned i = 0; i < app.n_ports; ++i) {
    const struct port *p = &app.ports[i];
    printf("port %u (%s, node %d): rx %" PRIu64 ", tx %" PRIu64 ", dropped %" PRIu64 "\n", p->id, p->name, p->node,
           p->rx, p->tx, p->dropped);
  }
  printf("forwarded %" PRIu64 " packets%s\n", done, quit ? " (stopped by a signal)" : "");
  fflush(stdout); /* before the EAL's own messages of the end */
  return finish(0);
}
