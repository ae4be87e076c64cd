// `numacma replay TRACE|-`: runs a trace (docs/design.md format) through a real
// Pool and prints one decision per request, then the stats. With --json: one
// JSON object a line, as docs/design.md "replay output". A malformed line is an
// error object naming the line (also counted on stderr) and the replay goes
// on. Requests the pool refuses are decisions, not errors: the exit code is 0
// whenever the trace could be read and the pool built.
#include <fstream>
#include <iostream>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "cli_util.hpp"
#include "commands.hpp"
#include "os/os.hpp"
#include "pool/replay.hpp"
#include "pool_args.hpp"

namespace numacma::cli {
namespace {

struct ReplayArgs {
  PoolArgs pool;
  std::string trace;
  bool json = false;
};

void print_decision(const nlohmann::json& d, std::size_t line_no) {
  const std::string op = d.value("op", "");
  const std::string id = d.value("id", "");
  if (op == "error") {
    std::printf("%5zu  ERROR  %s\n", line_no, d.value("error", "").c_str());
  } else if (op == "cpu") {
    std::printf("%5zu  cpu    %d: the CPU of the alloc lines without cpu=\n", line_no, d.value("cpu", 0));
  } else if (!d.value("ok", false)) {
    // The message starts with what went wrong ("no memory: ..."); --json adds the code.
    std::printf("%5zu  %-5s  %-8s FAILED %s\n", line_no, op.c_str(), id.c_str(),
                d.value("error", "").c_str());
  } else if (op == "alloc") {
    std::printf("%5zu  alloc  %-8s -> %-10s node %-3d dma %s  %s  %s%s\n", line_no, id.c_str(),
                d.value("area", "").c_str(), d.value("node", -1), d.value("dma_addr", "").c_str(),
                human_pages(d.value("pages", std::uint64_t{0})).c_str(), d.value("served", "").c_str(),
                d.value("iova", false) ? " (iova)" : "");
  } else {
    std::printf("%5zu  free   %-8s -> %s\n", line_no, id.c_str(), d.value("area", "").c_str());
  }
}

void run(const ReplayArgs& a) {
  if (a.pool.params.empty() && a.pool.pool_name.empty())
    return usage_error("replay", "--params or --pool is required");
  std::optional<Pool> pool = create_pool("replay", a.pool);
  if (!pool) return;
  std::ifstream file;
  std::istream* in = &std::cin;
  if (a.trace != "-") {
    // The stream reads it; the OS says why it cannot be opened.
    if (Status s = os::can_read(a.trace); !s) return failure("replay", "trace: " + s.error().message);
    file.open(a.trace);
    if (!file) return failure("replay", "trace: cannot read " + a.trace);
    in = &file;
  }
  std::size_t bad_lines = 0;
  {
    replay::Replayer r(*pool);
    std::string line;
    for (std::size_t n = 1; std::getline(*in, line); ++n) {
      nlohmann::json d = r.feed(line, n);
      if (d.is_null()) continue;
      if (d.value("op", "") == "error") ++bad_lines;
      if (a.json) {
        std::printf("%s\n", d.dump().c_str());
      } else {
        print_decision(d, n);
      }
    }
    if (a.json) {
      std::printf("%s\n", r.stats_json().dump().c_str());
    } else {
      std::printf("\n%zu buffer(s) still live at the end of the trace: counted in the stats below, "
                  "freed when the replay ends\n\n", r.live());
      print_stats_tables(*pool);
    }
  }
  std::fflush(stdout);
  if (bad_lines != 0 && !a.json)
    std::fprintf(stderr, "numacma replay: %zu malformed line(s) skipped (see ERROR above)\n", bad_lines);
}

}  // namespace

void register_replay(CLI::App& app) {
  auto args = std::make_shared<ReplayArgs>();
  CLI::App* sub = app.add_subcommand(
      "replay", "run a trace of alloc/free requests through a real Pool and print each decision");
  add_pool_options(sub, args->pool, "sim");
  sub->add_option("--params", args->pool.params,
                  "kernel-style parameters, e.g. \"cma=64M cma_pernuma=16M\" (or --pool NAME)");
  sub->add_flag("--json", args->json, "one JSON object a line (docs/design.md replay output)");
  sub->add_option("trace", args->trace, "trace file, or - for stdin")->required();
  sub->callback([args] { run(*args); });
}

}  // namespace numacma::cli
