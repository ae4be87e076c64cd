// `numacma status [NAME] [--json] [--svg FILE] [--prometheus]`: what a
// shared pool (numacma reserve) holds now — its areas, the processes
// holding buffers, the per-node counters beside numastat. NAME omitted:
// every reservation under <run dir>/pools. The renderers are pure
// (status_render.hpp); this file only gathers and prints.
#include <algorithm>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli_util.hpp"
#include "commands.hpp"
#include "numacma/shared.hpp"
#include "os/os.hpp"
#include "status_render.hpp"
#include "topology/topology.hpp"

namespace numacma::cli {
namespace {

struct StatusArgs {
  std::string name;
  bool json = false;
  bool prometheus = false;
  std::string svg;  ///< "" none, "-" stdout
  std::string sysfs_root = "/sys";
};

/** One reservation: its status, or why it could not be read. */
struct Entry {
  std::optional<PoolStatus> status;
  PoolFailure failed;
};

/** Reports a failed numacma::status of NAME / reserved_pools and returns false. */
bool report(const Error& e, const std::string& name) {
  if (e.code == Errc::not_found && !name.empty())
    failure("status", "no reservation named " + name + " under " + run_dir() +
                          "/pools (numacma reserve " + name + " PARAMS)");
  else if (e.code == Errc::invalid_argument)
    usage_error("status", e.message);
  else
    failure("status", e.message);
  return false;
}

/** The statuses asked for: NAME's, or every reservation's. Without NAME a
 *  reservation that cannot be read (corrupt, its keeper gone, refused) is an
 *  entry of its own, and the others are still listed. */
bool gather(const StatusArgs& a, std::vector<Entry>& out) {
  if (!a.name.empty()) {
    Result<PoolStatus> st = status(a.name);
    if (!st) return report(st.error(), a.name);
    out.push_back({std::move(*st), {}});
    return true;
  }
  Result<std::vector<std::string>> names = reserved_pools();
  if (!names) {
    if (names.error().code == Errc::not_found) return true;  // no run directory yet: no reservations
    return report(names.error(), "");
  }
  for (const std::string& n : *names) {
    Result<PoolStatus> st = status(n);
    if (st) {
      out.push_back({std::move(*st), {}});
      continue;
    }
    if (st.error().code == Errc::not_found) {
      // Released since it was listed (gone from the list now), or a
      // directory whose keeper is not running (still listed): that one is broken.
      Result<std::vector<std::string>> again = reserved_pools();
      if (!again || std::find(again->begin(), again->end(), n) == again->end()) continue;
    }
    out.push_back({std::nullopt, PoolFailure{n, st.error().code, st.error().message}});
  }
  return true;
}

bool write_svg(const StatusArgs& a, const std::vector<PoolStatus>& pools) {
  if (pools.size() != 1) {
    std::string names;
    for (const PoolStatus& p : pools) names += (names.empty() ? "" : ", ") + p.name;
    if (pools.empty())
      failure("status", "--svg: no reservations under " + run_dir() + "/pools");
    else
      usage_error("status", "--svg draws one pool: name it (" + names + ")");
    return false;
  }
  // The reservation's own topology: the tree it was reserved over.
  const std::string& root = pools.front().sysfs_root.empty() ? a.sysfs_root : pools.front().sysfs_root;
  Result<topo::Topology> t = topo::Topology::from_sysfs(root);
  if (!t) {
    failure("status", "--svg: " + t.error().message);
    return false;
  }
  const std::string svg = status_svg(pools.front(), *t);
  if (a.svg == "-") {
    std::fputs(svg.c_str(), stdout);
    return true;
  }
  if (Status w = os::write_new_file(a.svg, svg); !w) {
    failure("status", "--svg: " + w.error().message);
    return false;
  }
  return true;
}

void run(const StatusArgs& a, bool root_given) {
  if (a.json && a.prometheus) return usage_error("status", "--json and --prometheus: choose one");
  if (a.svg == "-" && (a.json || a.prometheus))
    return usage_error("status", "--svg - writes to stdout: not with --json or --prometheus");
  std::vector<Entry> entries;
  if (!gather(a, entries)) return;
  std::vector<PoolStatus> pools;
  std::vector<PoolFailure> failed;
  for (const Entry& e : entries) {
    if (e.status) pools.push_back(*e.status);
    else failed.push_back(e.failed);
  }
  // --sysfs-root is the reservation's own: a different tree is refused
  // rather than drawn under the pool's name.
  if (root_given)
    for (const PoolStatus& p : pools)
      if (!p.sysfs_root.empty() && p.sysfs_root != a.sysfs_root)
        return usage_error("status", "--sysfs-root " + a.sysfs_root + ": pool " + p.name +
                                         " was reserved over " + p.sysfs_root +
                                         ", whose topology it is drawn with (leave --sysfs-root out)");
  if (!a.svg.empty() && !write_svg(a, pools)) return;
  if (a.svg == "-") return;

  if (a.prometheus) {
    std::fputs(status_prometheus(pools, failed).c_str(), stdout);
  } else if (a.json) {
    nlohmann::ordered_json j = nlohmann::ordered_json::array();
    for (const Entry& e : entries) j.push_back(e.status ? status_json(*e.status) : status_error_json(e.failed));
    std::printf("%s\n", (a.name.empty() ? j : j[0]).dump().c_str());
  } else if (!a.svg.empty()) {
    // The picture was asked for; the tables would only repeat it.
    std::printf("wrote %s\n", a.svg.c_str());
  } else if (entries.empty()) {
    std::printf("no reservations under %s/pools\n", run_dir().c_str());
  } else {
    for (std::size_t i = 0; i < entries.size(); ++i)
      std::printf("%s%s", i == 0 ? "" : "\n",
                  (entries[i].status ? status_text(*entries[i].status) : status_error_text(entries[i].failed)).c_str());
  }
  if (!failed.empty()) {
    std::fflush(stdout);
    std::string names;
    for (const PoolFailure& f : failed) names += (names.empty() ? "" : ", ") + f.name;
    failure("status", std::to_string(failed.size()) + " of " + std::to_string(entries.size()) +
                          " reservation(s) could not be read: " + names);
  }
}

}  // namespace

void register_status(CLI::App& app) {
  auto args = std::make_shared<StatusArgs>();
  CLI::App* sub = app.add_subcommand(
      "status", "a shared pool's areas, holders and per-node counters (numacma reserve)");
  sub->add_option("NAME", args->name, "the reservation (default: every one)");
  sub->add_flag("--json", args->json,
                "one JSON object (an array of them without NAME) instead of tables");
  sub->add_flag("--prometheus", args->prometheus,
                "the counters in the Prometheus text format (node_exporter's textfile collector)");
  sub->add_option("--svg", args->svg,
                  "draw the nodes, distances, PCI devices and each area's occupancy to FILE "
                  "('-': stdout)")
      ->type_name("FILE");
  CLI::Option* root = sub->add_option("--sysfs-root", args->sysfs_root,
                                      "the reservation's sysfs root, which the picture draws (that is "
                                      "the default; another tree is refused)")
                           ->type_name("DIR");
  sub->callback([args, root] { run(*args, root->count() > 0); });
}

}  // namespace numacma::cli
