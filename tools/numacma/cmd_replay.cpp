// PLACEHOLDER: replaced by the CLI work.
#include "commands.hpp"
namespace numacma::cli {
void register_replay(CLI::App& app) { app.add_subcommand("replay", "(not built yet)"); }
}  // namespace numacma::cli
