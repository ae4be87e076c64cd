// tests/unit/cli_run.hpp — runs the numacma CLI as a subprocess for the CLI
// tests (cli_test.cpp, cli_*_test.cpp): its exit code, stdout and stderr.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <initializer_list>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

namespace cli_run {

struct CliRun {
  int rc = -1;
  std::string out;  // stdout
  std::string err;  // stderr
};

/** `numacma ARGS` (ARGS go through the shell), stdin from `stdin_text` or /dev/null. */
inline CliRun run(const std::string& args, const std::string& stdin_text = "") {
  static int seq = 0;
  const std::string base = ::testing::TempDir() + "cli_test_" + std::to_string(::getpid()) + "_" +
                           std::to_string(seq++);
  std::string cmd = std::string(NUMACMA_CLI) + " " + args + " 2>" + base + ".err";
  if (!stdin_text.empty()) {
    FILE* f = std::fopen((base + ".in").c_str(), "w");
    std::fputs(stdin_text.c_str(), f);
    std::fclose(f);
    cmd += " <" + base + ".in";
  } else {
    cmd += " </dev/null";
  }
  CliRun r;
  FILE* p = ::popen(cmd.c_str(), "r");
  char buf[4096];
  while (p != nullptr && std::fgets(buf, sizeof buf, p) != nullptr) r.out += buf;
  const int st = p == nullptr ? -1 : ::pclose(p);
  r.rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  if (FILE* e = std::fopen((base + ".err").c_str(), "r")) {
    while (std::fgets(buf, sizeof buf, e) != nullptr) r.err += buf;
    std::fclose(e);
  }
  std::remove((base + ".err").c_str());
  std::remove((base + ".in").c_str());
  return r;
}

inline bool has(const std::string& s, const std::string& what) { return s.find(what) != std::string::npos; }

/** A private $NUMACMA_RUN_DIR for a test; the reservations it names are
 *  released (--force) and the directory removed after. */
struct RunDir {
  std::string dir;
  std::vector<std::string> pools;
  explicit RunDir(const std::string& name, std::initializer_list<const char*> reserved = {"q", "r", "zz"})
      : dir(::testing::TempDir() + "cli_" + name + "_" + std::to_string(::getpid())),
        pools(reserved.begin(), reserved.end()) {
    std::filesystem::remove_all(dir);
    ::setenv("NUMACMA_RUN_DIR", dir.c_str(), 1);
  }
  ~RunDir() {
    for (const std::string& n : pools) (void)run("release --force " + n);
    ::unsetenv("NUMACMA_RUN_DIR");
    std::filesystem::remove_all(dir);
  }
  RunDir(const RunDir&) = delete;
  RunDir& operator=(const RunDir&) = delete;
};

}  // namespace cli_run
