// tools/numacma/status_render.hpp — the outputs of `numacma status`, as pure
// functions of a numacma::PoolStatus (include/numacma/shared.hpp). Nothing
// here reads a file or makes a system call: cmd_status.cpp gathers the
// status (and, for the SVG, the topology) and prints what these return, so
// the unit tests feed hand-built statuses.
//
//   PoolStatus --+-- status_text        tables: areas, holders, nodes
//                +-- status_json        {"pool","areas","holders","nodes", ...}
//                +-- status_prometheus  text exposition format 0.0.4
//   Topology  ---+-- status_svg         nodes, distances, PCI devices, and
//                                       one occupancy strip per area
//
// Every output is deterministic: same status in, same bytes out.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "numacma/shared.hpp"
#include "topology/topology.hpp"

namespace numacma::cli {

/** A reservation whose status could not be read (corrupt, its keeper not
 *  running, no permission): its name, the code and the message. */
struct PoolFailure {
  std::string name;
  Errc code = Errc::io_error;
  std::string message;
};

/** The contracted object, keys in this order (extra keys after them):
 *    {"pool", "areas":[{"name","node","pages","used","maxchunk","segments",
 *       "alloc_pages_success","alloc_pages_fail","release_pages_success",
 *       "kind","backing","bytes","longest_segment","recoveries","reaped_pages"}],
 *     "holders":[{"pid","comm","alive","pages":{AREA:pages},
 *       "pages_total","buffers","start_time"}],
 *     "nodes":[{"node","local","fallback","pages","other_node","default","failed",
 *       "numastat":{"numa_hit","numa_miss","numa_foreign","local_node","other_node"},
 *       "hugepages_total","hugepages_free"}],
 *     "dir","params","backing","policy","uid","gid","mode","sysfs_root"}
 *  fallback = other_node + default (pages is its own count: a single page
 *  from pages is A3's normal path). Values the host could not read (-1 in
 *  the status) are null. mode is the octal text, "0600". Ordered JSON so
 *  the printed keys follow the contract. */
nlohmann::ordered_json status_json(const PoolStatus& st);

/** The default output: a title line, then tables of areas, holders and
 *  per-node counters (numastat and hugepages beside the pool's own). */
std::string status_text(const PoolStatus& st);

/** Prometheus text exposition format 0.0.4 (node_exporter's textfile
 *  collector): one # HELP and # TYPE per family, then its samples, for
 *  every pool given; named as Prometheus's conventions say (amounts of
 *  memory in _bytes, counters in _total). numastat and hugepages are the
 *  machine's, not a pool's: written once per node, without a pool label.
 *  Each failed pool is a comment line first ("# numacma: pool NAME skipped:
 *  MESSAGE"), no samples. Empty input: "". */
std::string status_prometheus(const std::vector<PoolStatus>& pools,
                              const std::vector<PoolFailure>& failed = {});

/** {"pool": NAME, "error": MESSAGE, "code": "corrupt"}: a failed pool's
 *  entry in `numacma status --json`'s array. */
nlohmann::ordered_json status_error_json(const PoolFailure& f);

/** "pool NAME: CANNOT BE READ (code): MESSAGE\n". */
std::string status_error_text(const PoolFailure& f);

/** A self-contained SVG of the machine and the pool: one column per NUMA
 *  node (its id, memory, CPUs, PCI devices), the distance matrix, and under
 *  each node its areas as occupancy strips (free light grey, each run in
 *  its holder's colour, dead holders hatched), with a legend of holders.
 *  Runs narrower than a pixel are drawn 1 px wide. Areas on a node that the
 *  topology lacks get a column of their own. */
std::string status_svg(const PoolStatus& st, const topo::Topology& topology);

/** Text with &, <, >, " and ' as XML entities. */
std::string xml_escape(std::string_view text);

/** A Prometheus label value with \, " and newline escaped. */
std::string prom_label_escape(std::string_view text);

}  // namespace numacma::cli
