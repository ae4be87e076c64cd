// numacma — command-line tool. See `numacma --help`.
#include <cstdio>

#include "commands.hpp"

int main(int argc, char** argv) {
  CLI::App app{"numacma: per-NUMA contiguous DMA memory for user-space drivers"};
  app.require_subcommand(1);
  numacma::cli::register_doctor(app);
  numacma::cli::register_topo(app);
  numacma::cli::register_plan(app);
  numacma::cli::register_replay(app);
  numacma::cli::register_demo(app);
  numacma::cli::register_bench(app);
  numacma::cli::register_vfio(app);
  numacma::cli::register_nvme(app);
  numacma::cli::register_shared(app);
  numacma::cli::register_status(app);
  if (argc > 1 && argv[1][0] != '-') {
    try {
      (void)app.get_subcommand(argv[1]);
    } catch (const CLI::OptionNotFound&) {
      std::fprintf(stderr, "numacma: unknown command '%s' (doctor, topo, plan, replay, demo, bench, vfio, status; see --help)\n",
                   argv[1]);
      return 2;
    }
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  return numacma::cli::exit_code();
}
