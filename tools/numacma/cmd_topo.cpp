// PLACEHOLDER: replaced by the CLI work.
#include "commands.hpp"
namespace numacma::cli {
void register_topo(CLI::App& app) { app.add_subcommand("topo", "(not built yet)"); }
}  // namespace numacma::cli
