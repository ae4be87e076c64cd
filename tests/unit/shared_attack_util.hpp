// The helpers of the shared_attack_*_test.cpp files: shared pools tried as
// an attacker would (issue: "shared pools you can trust"). Each finding of
// that review is a test:
//   1. a member of the pool's group rewrites the state and tries to
//      truncate the pool's files: no other file is opened, written or
//      unlinked, nobody crashes (SIGBUS), nothing hangs
//   2. a live holder in another PID namespace is never taken for dead
//   3. corrupt records are dropped, never followed
//   4. a stopped holder makes others wait a bounded time, and is named
//   5. memory is zeroed, in every mode, across users too
//   6. release --force removes exactly its own pool
//   7. names cannot be squatted; run directories and lock files are checked
//   8. API corners are refused and counted
// 1-4: shared_attack_state_test.cpp; 5-8: shared_attack_isolation_test.cpp.
// Each test file includes this once (one executable per file).
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <climits>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "core/records.hpp"
#include "numacma/numacma.h"
#include "numacma/numacma.hpp"
#include "numacma/shared.hpp"
#include "second_user.hpp"
#include "shared/client.hpp"
#include "shared/layout.hpp"
#include "shared/testing.hpp"
#include "shared_test_util.hpp"

namespace numacma {
namespace {

using testing::ScopedRunDir;
using testing::sim_options;

using testing::spawn;
using testing::wait_exit;

/** Kills a child when the test leaves, whichever way (a stopped child would
 *  otherwise keep ctest's output pipe open for ever). */
struct KillOnExit {
  pid_t pid;
  ~KillOnExit() {
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
  }
};

inline std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

/** A file root owns and nobody else may touch; what the attacker aims at. */
struct Victim {
  std::string path;
  const std::string text = "root's own data, not to be touched\n";
  Victim() {
    path = "/tmp/numacma-victim-" + std::to_string(::getpid());
    std::ofstream(path) << text;
    ::chmod(path.c_str(), 0600);
  }
  ~Victim() { std::filesystem::remove(path); }
  bool intact() const { return std::filesystem::exists(path) && slurp(path) == text; }
};

inline std::int64_t ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace
}  // namespace numacma
