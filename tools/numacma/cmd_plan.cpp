// `numacma plan PARAMS...`: the areas that kernel-style parameters would
// reserve on this topology (docs/semantics.md R1-R6), and what cannot be placed.
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli_util.hpp"
#include "commands.hpp"
#include "config/params.hpp"
#include "pool_args.hpp"
#include "topology/topology.hpp"

namespace numacma::cli {
namespace {

struct PlanArgs {
  std::string sysfs_root = "/sys";
  std::vector<std::string> params;
  unsigned order_per_bit = 0;
  std::string arch;
  std::string kernel = "6.12";
  bool cma_size_pernuma = false;
  bool json = false;
};

void run(const PlanArgs& a) {
  std::string text;
  for (const auto& p : a.params) text += (text.empty() ? "" : " ") + p;
  Result<config::Params> params = config::parse_params(text);
  if (!params) return usage_error("plan", params.error().message);
  config::Arch arch = config::host_arch();
  if (!a.arch.empty()) {
    Result<config::Arch> parsed = config::parse_arch(a.arch);
    if (!parsed) return usage_error("plan", parsed.error().message);
    arch = *parsed;
  }
  Result<topo::Topology> t = topo::Topology::from_sysfs(a.sysfs_root);
  if (!t) return failure("plan", t.error().message);
  Result<config::KernelProfile> kernel = config::parse_kernel_profile(a.kernel);
  if (!kernel) return usage_error("plan", kernel.error().message);
  if (a.cma_size_pernuma && *kernel != config::KernelProfile::v7_2)
    return usage_error("plan", "--cma-size-pernuma is kernel 7.2's CONFIG_CMA_SIZE_PERNUMA: add --kernel 7.2");
  const config::ReservationPlan plan =
      config::make_plan(*params, *t, 4096, a.order_per_bit, arch, {*kernel, a.cma_size_pernuma});
  std::uint64_t total = 0;
  for (const auto& area : plan.areas) total += area.bytes;
  if (a.json) {
    nlohmann::json areas = nlohmann::json::array(), skipped = nlohmann::json::array(),
                   notes = nlohmann::json::array();
    for (const auto& area : plan.areas)
      areas.push_back({{"name", area.name},
                       {"kind", config::area_kind_name(area.kind)},
                       {"node", area.node},
                       {"bytes", area.bytes},
                       {"phys_base", hex(area.phys_base)}});
    for (const auto& n : plan.not_placed)
      skipped.push_back({{"name", n.name}, {"node", n.node}, {"reason", n.reason}});
    for (const auto& n : params->notes) notes.push_back(n);
    std::printf("%s\n", nlohmann::json{{"params", text},
                                       {"arch", config::arch_name(arch)},
                                       {"kernel", config::kernel_profile_name(*kernel)},
                                       {"areas", areas},
                                       {"not_placed", skipped},
                                       {"notes", notes},
                                       {"total_bytes", total}}
                            .dump()
                            .c_str());
    return;
  }
  std::printf("plan for \"%s\" on %s (%s, kernel %s): %zu area(s), %s in all\n\n", text.c_str(),
              a.sysfs_root.c_str(), config::arch_name(arch), config::kernel_profile_name(*kernel), plan.areas.size(),
              human_size(total).c_str());
  Table tab({"area", "kind", "node", "size", "phys_base"});
  for (const auto& area : plan.areas)
    tab.add({area.name, config::area_kind_name(area.kind), std::to_string(area.node),
             human_size(area.bytes), hex(area.phys_base)});
  tab.print();
  if (!plan.not_placed.empty()) {
    std::printf("\nnot placed:\n");
    for (const auto& n : plan.not_placed)
      std::printf("  %s (node %d): %s\n", n.name.c_str(), n.node, n.reason.c_str());
  }
  if (!params->notes.empty()) std::printf("\n");
  for (const auto& n : params->notes) std::printf("note: %s\n", n.c_str());
}

}  // namespace

void register_plan(CLI::App& app) {
  auto args = std::make_shared<PlanArgs>();
  CLI::App* sub = app.add_subcommand(
      "plan", "the areas that kernel-style parameters (cma= cma_pernuma= numa_cma=) would reserve");
  sub->add_option("--sysfs-root", args->sysfs_root, "sysfs root to read (default /sys)");
  sub->add_option("--order-per-bit", args->order_per_bit, "pages per bitmap bit, as a power of 2")
      ->check(CLI::Range(0u, 9u));
  sub->add_option("--arch", args->arch, "x86_64 | arm64: whose placement rules (default: this machine's)")
      ->check(CLI::IsMember({"x86_64", "arm64"}));
  add_kernel_options(sub, args->kernel, args->cma_size_pernuma);
  sub->add_flag("--json", args->json, "one JSON object instead of a table");
  sub->add_option("params", args->params, "e.g. cma=64M cma_pernuma=16M numa_cma=1:32M")
      ->required();
  sub->callback([args] { run(*args); });
}

}  // namespace numacma::cli
