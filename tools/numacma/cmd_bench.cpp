// PLACEHOLDER until the benchmark issue lands: `numacma bench` is registered
// but reports that it is not built yet.
#include <cstdio>

#include "commands.hpp"

namespace numacma::cli {

void register_bench(CLI::App& app) {
  auto* cmd = app.add_subcommand("bench", "Benchmarks (not built yet)");
  cmd->callback([] {
    std::fprintf(stderr, "numacma bench: not built yet\n");
    exit_code() = 1;
  });
}

}  // namespace numacma::cli
