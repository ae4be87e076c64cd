// numacma — command-line tool. See `numacma help` and docs/cli.md.
//
// Conventions kept here, once for every command (docs/cli.md "Conventions"):
//   numacma, numacma help, numacma --help   the list of commands, on stdout, exit 0
//   numacma help CMD, numacma CMD --help    that command's options, exit 0
//   numacma --version, -V                   "numacma <PROJECT_VERSION>", exit 0
//   a parse error                           "numacma CMD: <what>" on stderr, exit 2
//   an unknown command                      named, with the commands the table has, exit 2
#include <cstdio>
#include <string>
#include <vector>

#include "cli_util.hpp"
#include "commands.hpp"

#ifndef NUMACMA_VERSION
#error "NUMACMA_VERSION comes from CMake's PROJECT_VERSION (tools/numacma/CMakeLists.txt)"
#endif

namespace {

using Register = void (*)(CLI::App&);

/** The command table: the order of the help's list. */
constexpr Register kCommands[] = {
    numacma::cli::register_doctor, numacma::cli::register_topo,   numacma::cli::register_plan,
    numacma::cli::register_replay, numacma::cli::register_demo,   numacma::cli::register_bench,
    numacma::cli::register_vfio,   numacma::cli::register_nvme,   numacma::cli::register_shared,
    numacma::cli::register_status,
};

/** "topo, plan, ...": every command the app has, in table order. */
std::string command_names(const CLI::App& app) {
  std::string out;
  for (const CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; }))
    out += (out.empty() ? "" : ", ") + sub->get_name();
  return out;
}

/** The command (and subcommand: "vfio bind") that the parse had reached; ""
 *  when none: the error is numacma's own. */
std::string command_path(const CLI::App& app) {
  std::string path;
  const CLI::App* at = &app;
  for (;;) {
    const std::vector<CLI::App*> subs = at->get_subcommands();
    if (subs.empty()) break;
    at = subs.back();
    path += (path.empty() ? "" : " ") + at->get_name();
  }
  return path;
}

/** `numacma help [CMD [SUB]]`: the help of the app, or of the command named. */
void add_help_command(CLI::App& app) {
  static std::vector<std::string> words;
  CLI::App* help = app.add_subcommand("help", "the commands, or one command's options: numacma help CMD");
  help->add_option("command", words, "a command (and its subcommand: numacma help vfio bind)");
  help->callback([&app] {
    const CLI::App* at = &app;
    std::string path;
    for (const std::string& w : words) {
      const CLI::App* next = nullptr;
      for (const CLI::App* sub : at->get_subcommands([](const CLI::App*) { return true; }))
        if (sub->get_name() == w) next = sub;
      if (next == nullptr)
        return numacma::cli::usage_error("help", "unknown command '" + (path + " " + w).substr(1) +
                                                     "' (commands: " + command_names(*at) + ")");
      at = next;
      path += " " + w;
    }
    // The formatter, not help(): the app's help() would show the help of the
    // command parsed, which is `help` itself.
    std::fputs(at->get_formatter()->make_help(at, "numacma" + path, CLI::AppFormatMode::Normal).c_str(), stdout);
  });
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"numacma " NUMACMA_VERSION ": per-NUMA contiguous DMA memory for user-space drivers"};
  app.name("numacma");
  app.require_subcommand(1);
  app.set_version_flag("-V,--version", "numacma " NUMACMA_VERSION, "print the version and exit");
  app.footer("numacma help CMD (or numacma CMD --help): a command's options. Start with: numacma doctor");
  for (Register r : kCommands) r(app);
  add_help_command(app);

  if (argc == 1) {  // asked for nothing: what there is to ask, as --help
    std::fputs(app.help().c_str(), stdout);
    return 0;
  }
  if (argv[1][0] != '-') {
    try {
      (void)app.get_subcommand(argv[1]);
    } catch (const CLI::OptionNotFound&) {
      std::fprintf(stderr, "numacma: unknown command '%s' (commands: %s; see numacma help)\n", argv[1],
                   command_names(app).c_str());
      return 2;
    }
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version: printed on stdout
    const std::string path = command_path(app);
    std::fprintf(stderr, "numacma%s: %s (numacma help%s)\n", path.empty() ? "" : (" " + path).c_str(),
                 e.what(), path.empty() ? "" : (" " + path).c_str());
    return 2;
  }
  return numacma::cli::exit_code();
}
