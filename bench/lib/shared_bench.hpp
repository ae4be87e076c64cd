// bench/lib/shared_bench.hpp — the pieces bench shared's two halves share
// (shared.cpp: the alloc rows and run_shared; shared_recovery.cpp: the kills).
//
//   RunDir   a private $NUMACMA_RUN_DIR for the run, made under $TMPDIR (default
//            /tmp); every reservation made in it is released and the directory
//            removed when it goes, on every path out, and the old value restored
//   Child    a forked process, SIGKILLed and waited for when the object goes
//            (unless it was waited for already), so no error path leaves one;
//            two pipes: reports up (one short message each: "R" ready, "P"
//            parked inside an update, "D..." done, anything else: what failed)
//            and a stop byte down
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "bench.hpp"

namespace numacma::bench::shared_bench {

/** Child side: writes a report (one write, at most PIPE_BUF bytes). */
void send_report(int fd, const std::string& what);
/** Child side: leaves at once (no destructor runs: the parent's objects were copied in). */
[[noreturn]] void child_leave(int code);

class RunDir {
 public:
  RunDir() = default;
  RunDir(const RunDir&) = delete;
  RunDir& operator=(const RunDir&) = delete;
  ~RunDir();
  /** Makes the directory and points $NUMACMA_RUN_DIR at it; false with why. */
  bool make(std::string* why);
  /** Reserves NAME in it (released, with force, when the RunDir goes). */
  bool reserve(const std::string& name, const std::string& params, const std::string& backing, std::string* why);
  /** Releases NAME now (with force); false with why. */
  bool release(const std::string& name, std::string* why);
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::string old_;        ///< $NUMACMA_RUN_DIR before
  bool had_old_ = false;
  std::vector<std::string> names_;
};

class Child {
 public:
  Child() = default;
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  ~Child() { kill_and_wait(); }
  /** Forks; the child runs body(report fd, stop fd) and leaves (child_leave).
   *  False with why. */
  template <class Body>
  bool start(Body body, std::string* why) {
    if (!open_pipes(why)) return false;
    const pid_t pid = fork_child(why);
    if (pid < 0) return false;
    if (pid == 0) {
      body(report_wr_, stop_rd_);
      child_leave(90);
    }
    return true;
  }
  /** The child's next report ("R", "P" or what failed); "" when it went away
   *  or said nothing within timeout_ms (why then says which). */
  std::string await(int timeout_ms, std::string* why);
  /** Writes the stop byte (the child reads it from its stop fd). */
  void stop();
  /** SIGKILL and waitpid; true when the child was still there to be killed. */
  bool kill_and_wait();
  /** waitpid without a signal: the exit code, or -1 (killed by a signal, or
   *  never started). Once waited for, the same answer again. */
  int wait_exit();
  pid_t pid() const { return pid_; }

 private:
  bool open_pipes(std::string* why);
  pid_t fork_child(std::string* why);
  void close_all();
  pid_t pid_ = -1;
  int exit_ = -1;
  int report_rd_ = -1, report_wr_ = -1, stop_rd_ = -1, stop_wr_ = -1;
};

/** "" when a hugetlb reservation of `bytes` on node 0 can be tried; else why not. */
std::string hugetlb_missing(std::uint64_t bytes);

/** The recovery cases (shared_recovery.cpp), in the run directory `dir`. */
std::vector<SharedRecoveryResult> run_recovery(const SharedOptions& o, RunDir& dir, std::string* error);

}  // namespace numacma::bench::shared_bench
