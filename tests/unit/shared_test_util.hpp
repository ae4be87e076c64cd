// tests/unit/shared_test_util.hpp — a private run directory per test
// ($NUMACMA_RUN_DIR), removed afterwards, and a sim reservation in it.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "numacma/shared.hpp"

namespace numacma::testing {

inline std::string fixture(const char* name = "x86-2s") { return std::string(NUMACMA_TEST_DATA) + "/" + name; }

/** A fresh $NUMACMA_RUN_DIR for the test (0755, so that other users may look in). */
class ScopedRunDir {
 public:
  ScopedRunDir() {
    static std::atomic<int> n{0};
    dir_ = "/tmp/numacma-shared-test-" + std::to_string(::getpid()) + "-" + std::to_string(n++);
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    std::filesystem::permissions(dir_, std::filesystem::perms(0755));
    ::setenv("NUMACMA_RUN_DIR", dir_.c_str(), 1);
  }
  ~ScopedRunDir() {
    // Each reservation's keeper goes with its release (a keeper whose
    // directory is removed by hand would leave within a second anyway).
    if (Result<std::vector<std::string>> names = reserved_pools(); names)
      for (const std::string& n : *names) (void)release(n, true);
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
    ::unsetenv("NUMACMA_RUN_DIR");
  }
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
};

/** A hugetlbfs with 2 MiB pages: the one mounted, else (root) one mounted
 *  here for the test at a private directory and unmounted afterwards. */
class HugetlbfsMount {
 public:
  HugetlbfsMount() {
    if (std::system("grep -q '^[^ ]* [^ ]* hugetlbfs ' /proc/mounts") == 0) {
      ok_ = true;
      return;
    }
    if (::geteuid() != 0) {
      why_ = "no hugetlbfs mounted, and mounting one needs root";
      return;
    }
    dir_ = "/tmp/numacma-test-hugetlbfs-" + std::to_string(::getpid());
    std::filesystem::create_directories(dir_);
    ok_ = std::system(("mount -t hugetlbfs -o pagesize=2M none " + dir_).c_str()) == 0;
    if (!ok_) why_ = "mount -t hugetlbfs failed";
  }
  ~HugetlbfsMount() {
    if (dir_.empty()) return;
    (void)!std::system(("umount " + dir_).c_str());
    std::error_code ec;
    std::filesystem::remove(dir_, ec);
  }
  bool ok() const { return ok_; }
  const std::string& why() const { return why_; }

 private:
  bool ok_ = false;
  std::string dir_, why_;
};

/** Waits (at most `ms`) until `pred` holds; whether it did. */
template <typename Pred>
bool eventually(Pred pred, int ms = 3000) {
  for (int waited = 0; waited < ms; waited += 5) {
    if (pred()) return true;
    ::usleep(5000);
  }
  return pred();
}

/** The holders status shows for a reservation (-1: status failed). */
inline long holders_of(const std::string& name) {
  Result<PoolStatus> st = status(name);
  return st ? static_cast<long>(st->holders.size()) : -1;
}

/** Runs fn in a child process; returns its pid. The child _exits with fn's
 *  value (no destructors: as a crash would leave things). */
template <typename Fn>
pid_t spawn(Fn fn) {
  const pid_t pid = ::fork();
  if (pid == 0) ::_exit(fn());
  return pid;
}

/** The child's exit code (128 + the signal that ended it). */
inline int wait_exit(pid_t pid) {
  int st = 0;
  ::waitpid(pid, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

inline ReserveOptions sim_options(const std::string& params, const char* topo = "x86-2s") {
  ReserveOptions o;
  o.params = params;
  o.backing = "sim";
  o.sysfs_root = fixture(topo);
  return o;
}

}  // namespace numacma::testing
