// tools/numacma/commands.hpp — each `numacma <command>` lives in its own
// cmd_<name>.cpp and registers itself on the CLI11 app here. main.cpp calls
// every register_* function, parses, and returns the exit code the chosen
// command stored (0 ok, 1 the operation failed, 2 bad usage).
#pragma once

#include <CLI/CLI.hpp>

namespace numacma::cli {

/** Where a command stores its exit code; main returns it. */
int& exit_code();

void register_doctor(CLI::App& app);
void register_topo(CLI::App& app);
void register_plan(CLI::App& app);
void register_replay(CLI::App& app);
void register_demo(CLI::App& app);
void register_bench(CLI::App& app);
void register_vfio(CLI::App& app);
void register_nvme(CLI::App& app);
void register_shared(CLI::App& app);  // reserve, release, reap
void register_status(CLI::App& app);

}  // namespace numacma::cli
