// `numacma reserve NAME PARAMS...`, `numacma release NAME [--force]`,
// `numacma reap NAME`: reservations that outlive the process and that every
// process with access attaches to (Pool::attach, --pool NAME; docs/shared.md).
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli_util.hpp"
#include "commands.hpp"
#include "numacma/shared.hpp"
#include "os/os.hpp"
#include "pool_args.hpp"
#include "reserve_config.hpp"

namespace numacma::cli {
namespace {

struct ReserveArgs {
  std::string name;
  std::string config;  ///< --config FILE (packaging/systemd/example.conf)
  std::vector<std::string> params;
  PoolArgs pool;
  std::string group;
  bool json = false;
};

void reserve_run(const ReserveArgs& a, const CLI::App& sub) {
  PoolArgs pa = a.pool;
  for (const std::string& p : a.params) pa.params += (pa.params.empty() ? "" : " ") + p;
  // --config FILE first; what the command line gives explicitly wins.
  ReserveOptions file;
  if (!a.config.empty()) {
    Result<std::string> text = os::read_file(a.config);
    if (!text) return failure("reserve", "--config: " + text.error().message);
    Result<ReserveConfig> c = parse_reserve_config(*text);
    if (!c) return usage_error("reserve", a.config + ": " + c.error().message);
    file = c->options;
  }
  const auto given = [&](const char* opt) { return sub.count(opt) > 0; };
  if (pa.params.empty()) pa.params = file.params;
  if (pa.params.empty()) return usage_error("reserve", "PARAMS are required (e.g. cma=64M cma_pernuma=16M)");
  Result<PoolOptions> po = to_pool_options(pa);
  if (!po) return usage_error("reserve", po.error().message);
  ReserveOptions o;
  o.params = po->params;
  o.backing = given("--backing") || a.config.empty() ? po->backing : file.backing;
  o.policy = given("--policy") || a.config.empty() ? po->policy : file.policy;
  o.arch = po->arch;
  o.kernel = given("--kernel") || a.config.empty() ? po->kernel : file.kernel;
  o.cma_size_pernuma = pa.cma_size_pernuma || file.cma_size_pernuma;
  o.sysfs_root = po->sysfs_root;
  o.order_per_bit = given("--order-per-bit") || a.config.empty() ? po->order_per_bit : file.order_per_bit;
  o.device_areas = po->device_areas;
  if (!given("--device-area")) o.device_areas = file.device_areas;
  o.group = given("--group") ? a.group : file.group;
  o.compact = pa.compact || file.compact;
  Result<std::vector<ReservationNote>> notes = reserve(a.name, o);
  if (!notes) {
    if (notes.error().code == Errc::invalid_argument) return usage_error("reserve", notes.error().message);
    return failure("reserve", notes.error().message);
  }
  Result<PoolStatus> st = status(a.name);
  if (!st) return failure("reserve", st.error().message);
  if (a.json) {
    nlohmann::json areas = nlohmann::json::array(), ns = nlohmann::json::array();
    for (const SharedAreaStatus& s : st->areas)
      areas.push_back({{"name", s.area.name},
                       {"node", s.area.node},
                       {"backing", s.area.backing},
                       {"pages", s.area.pages},
                       {"segments", s.area.segments},
                       {"longest_segment", s.longest_segment}});
    for (const ReservationNote& n : *notes) ns.push_back({{"area", n.area}, {"node", n.node}, {"message", n.message}});
    std::printf("%s\n", nlohmann::json{{"pool", a.name}, {"dir", st->dir}, {"areas", areas}, {"notes", ns}}
                            .dump()
                            .c_str());
    return;
  }
  std::printf("reserved '%s' (%s): %zu area(s)\n", a.name.c_str(), st->dir.c_str(), st->areas.size());
  Table t({"area", "node", "backing", "size", "segments", "longest_segment"});
  for (const SharedAreaStatus& s : st->areas)
    t.add({s.area.name, std::to_string(s.area.node), s.area.backing, human_size(s.area.pages * 4096),
           std::to_string(s.area.segments), human_size(s.longest_segment * 4096)});
  t.print();
  for (const ReservationNote& n : *notes)
    std::printf("note: %s (node %d): %s\n", n.area.c_str(), n.node, n.message.c_str());
}

}  // namespace

void register_shared(CLI::App& app) {
  {
    auto a = std::make_shared<ReserveArgs>();
    CLI::App* sub = app.add_subcommand(
        "reserve", "reserve areas that outlive this process, for every process to attach (--pool NAME)");
    sub->add_option("name", a->name, "the reservation's name")->required();
    sub->add_option("params", a->params, "kernel-style parameters, e.g. cma=64M cma_pernuma=16M");
    add_pool_options(sub, a->pool, "auto");
    sub->add_option("--group", a->group, "the members of this group (name or gid) may attach too");
    sub->add_option("--config", a->config,
                    "KEY=VALUE file (params, backing, group, policy, order_per_bit, compact, device_area); "
                    "options given here win over it");
    sub->add_flag("--json", a->json, "one JSON object instead of a table");
    sub->callback([a, sub] {
      if (!a->pool.vfio.empty()) return usage_error("reserve", "--vfio: a reservation has no VFIO container");
      if (!a->pool.pool_name.empty()) return usage_error("reserve", "--pool: name the reservation as NAME");
      reserve_run(*a, *sub);
    });
  }
  {
    auto name = std::make_shared<std::string>();
    auto force = std::make_shared<bool>(false);
    CLI::App* sub = app.add_subcommand("release", "free a reservation (refused while a live process holds buffers)");
    sub->add_option("name", *name, "the reservation's name")->required();
    sub->add_flag("--force", *force, "free it even while processes hold buffers (they must not touch them again)");
    sub->callback([name, force] {
      if (Status s = release(*name, *force); !s) {
        if (s.error().code == Errc::invalid_argument) return usage_error("release", s.error().message);
        return failure("release", s.error().message);
      }
      std::printf("released '%s'\n", name->c_str());
    });
  }
  {
    auto name = std::make_shared<std::string>();
    auto json = std::make_shared<bool>(false);
    CLI::App* sub = app.add_subcommand("reap", "give back now what the keeper could not yet (buffers of processes that are gone)");
    sub->add_option("name", *name, "the reservation's name")->required();
    sub->add_flag("--json", *json, "one JSON object");
    sub->callback([name, json] {
      Result<ReapReport> r = reap(*name);
      if (!r) {
        if (r.error().code == Errc::invalid_argument) return usage_error("reap", r.error().message);
        return failure("reap", r.error().message);
      }
      if (*json) {
        std::printf("%s\n", nlohmann::json{{"pool", *name},
                                           {"dead_holders", r->dead_holders},
                                           {"buffers", r->buffers},
                                           {"pages", r->pages},
                                           {"recovered_locks", r->recovered_locks},
                                           {"ns", r->ns}}
                                .dump()
                                .c_str());
        return;
      }
      std::printf("reaped '%s': %llu dead process(es), %llu buffer(s), %s; %llu lock(s) repaired; %.3f ms\n",
                  name->c_str(), (unsigned long long)r->dead_holders, (unsigned long long)r->buffers,
                  human_pages(r->pages).c_str(), (unsigned long long)r->recovered_locks, r->ns / 1e6);
    });
  }
}

}  // namespace numacma::cli
