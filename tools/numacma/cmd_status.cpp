// `numacma status [NAME] [--json] [--svg FILE] [--prometheus]`: what a
// shared pool (numacma reserve) holds now — its areas, the processes
// holding buffers, the per-node counters beside numastat. NAME omitted:
// every reservation under <run dir>/pools. The renderers are pure
// (status_render.hpp); this file only gathers and prints.
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli_util.hpp"
#include "commands.hpp"
#include "numacma/shared.hpp"
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

/** Reports a failed numacma::status / reserved_pools and returns false. */
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

/** The statuses asked for: NAME's, or every reservation's. */
bool gather(const StatusArgs& a, std::vector<PoolStatus>& out) {
  if (!a.name.empty()) {
    Result<PoolStatus> st = status(a.name);
    if (!st) return report(st.error(), a.name);
    out.push_back(std::move(*st));
    return true;
  }
  Result<std::vector<std::string>> names = reserved_pools();
  if (!names) return report(names.error(), "");
  for (const std::string& n : *names) {
    Result<PoolStatus> st = status(n);
    if (!st && st.error().code == Errc::not_found) continue;  // released since it was listed
    if (!st) return report(st.error(), n);
    out.push_back(std::move(*st));
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
  Result<topo::Topology> t = topo::Topology::from_sysfs(a.sysfs_root);
  if (!t) {
    failure("status", "--svg: " + t.error().message);
    return false;
  }
  const std::string svg = status_svg(pools.front(), *t);
  if (a.svg == "-") {
    std::fputs(svg.c_str(), stdout);
    return true;
  }
  std::ofstream f(a.svg, std::ios::binary | std::ios::trunc);
  f << svg;
  f.close();
  if (!f) {
    failure("status", "--svg: cannot write " + a.svg);
    return false;
  }
  return true;
}

void run(const StatusArgs& a) {
  if (a.json && a.prometheus) return usage_error("status", "--json and --prometheus: choose one");
  if (a.svg == "-" && (a.json || a.prometheus))
    return usage_error("status", "--svg - writes to stdout: not with --json or --prometheus");
  std::vector<PoolStatus> pools;
  if (!gather(a, pools)) return;
  if (!a.svg.empty() && !write_svg(a, pools)) return;
  if (a.svg == "-") return;

  if (a.prometheus) {
    std::fputs(status_prometheus(pools).c_str(), stdout);
  } else if (a.json) {
    nlohmann::ordered_json j = nlohmann::ordered_json::array();
    for (const PoolStatus& p : pools) j.push_back(status_json(p));
    std::printf("%s\n", (a.name.empty() ? j : j[0]).dump().c_str());
  } else if (!a.svg.empty()) {
    // The picture was asked for; the tables would only repeat it.
    std::printf("wrote %s\n", a.svg.c_str());
  } else if (pools.empty()) {
    std::printf("no reservations under %s/pools\n", run_dir().c_str());
  } else {
    for (std::size_t i = 0; i < pools.size(); ++i)
      std::printf("%s%s", i == 0 ? "" : "\n", status_text(pools[i]).c_str());
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
  sub->add_option("--sysfs-root", args->sysfs_root,
                  "sysfs root for the picture's topology (default /sys)")
      ->type_name("DIR");
  sub->callback([args] { run(*args); });
}

}  // namespace numacma::cli
