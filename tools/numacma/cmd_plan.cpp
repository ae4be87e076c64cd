// PLACEHOLDER: replaced by the CLI work.
#include "commands.hpp"
namespace numacma::cli {
void register_plan(CLI::App& app) { app.add_subcommand("plan", "(not built yet)"); }
}  // namespace numacma::cli
