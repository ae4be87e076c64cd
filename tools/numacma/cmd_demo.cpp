// PLACEHOLDER: replaced by the CLI work.
#include "commands.hpp"
namespace numacma::cli {
void register_demo(CLI::App& app) { app.add_subcommand("demo", "(not built yet)"); }
}  // namespace numacma::cli
