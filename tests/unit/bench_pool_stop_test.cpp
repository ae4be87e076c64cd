// `numacma bench pool`'s threaded cases stop together whatever the
// scheduler does. Thread 0 decides when a case stops, every worker reads the
// decision after a barrier; a worker descheduled between that barrier and its
// read once saw the decision meant for the next round, left a round early,
// and thread 0 waited at the last barrier for ever (seen on the 2-core machine
// under load). Here the workers are delayed on purpose exactly there
// (PoolBenchOptions::after_barrier: sleeps, sched_yield), with a short time
// budget so that the stop decision comes while they are delayed, many times.
//
// A hang is the failure: each run goes in a child process, which the test
// kills after kHangSeconds (far beyond what a run takes: no timing is
// asserted, only that it ends), so the test reports it instead of ctest's
// timeout.
#include <gtest/gtest.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <functional>
#include <random>
#include <string>
#include <thread>

#include "bench.hpp"

namespace {

using numacma::bench::PoolBenchOptions;
using numacma::bench::PoolBenchReport;

constexpr int kHangSeconds = 120;

/** Options for a short run of every case (1 and 2 threads, cross) on the
 *  peers that need no set-up (numacma on the sim backing, glibc): a 15 ms
 *  budget, so that the stop decision is taken by time while workers wait in
 *  the hook, and rounds enough that it always is. */
PoolBenchOptions stress_options(std::function<void(unsigned, unsigned)> hook) {
  PoolBenchOptions o;
  o.quick = true;
  o.objects = {64, 4096};
  o.live = 256;
  o.rounds = 100000;
  o.budget_ms = 15;
  o.backing = "sim";
  o.peers = {"numacma", "glibc"};
  o.after_barrier = std::move(hook);
  return o;
}

/** Runs run_pool(o) `times` times in a child; "" when every run ended and
 *  every case ran, else what went wrong (a hang: the child is killed). */
std::string run_in_child(const std::function<PoolBenchOptions()>& make, int times) {
  int fds[2];
  if (::pipe(fds) != 0) return "pipe failed";
  const pid_t pid = ::fork();
  if (pid < 0) return "fork failed";
  if (pid == 0) {
    ::close(fds[0]);
    int bad = 0;
    std::string why;
    for (int i = 0; i < times; ++i) {
      const PoolBenchReport rep = numacma::bench::run_pool(make());
      for (const auto& r : rep.results)
        if (r.skipped) ++bad, why = r.peer + " " + std::to_string(r.object) + " B, " + std::to_string(r.threads) +
                                    " thread(s): skipped: " + r.reason;
      if (rep.results.size() != 2 * 2 * 3) ++bad, why = "not every case ran";
    }
    const std::string msg = bad == 0 ? "ok" : why;
    (void)!::write(fds[1], msg.data(), msg.size());
    ::_exit(bad == 0 ? 0 : 1);
  }
  ::close(fds[1]);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(kHangSeconds);
  int status = 0;
  pid_t done = 0;
  while ((done = ::waitpid(pid, &status, WNOHANG)) == 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  if (done == 0) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, &status, 0);
    ::close(fds[0]);
    return "hung: the run did not end in " + std::to_string(kHangSeconds) +
           " s (a worker left the rounds early and a barrier waits for it for ever)";
  }
  char buf[512];
  const ssize_t n = ::read(fds[0], buf, sizeof buf);
  ::close(fds[0]);
  const std::string said = n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : "";
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return "the run failed: " + said;
  return "";
}

void sleep_us(unsigned us) { std::this_thread::sleep_for(std::chrono::microseconds(us)); }

TEST(BenchPoolStop, AWorkerLateAfterEveryBarrierStopsWithThreadZero) {
  // Thread 1 sleeps after each barrier for longer than a round lasts: thread
  // 0 has done its round and taken the next round's decision by the time
  // thread 1 reads it. The old flag hung here at the first stop.
  const std::string why = run_in_child(
      [] { return stress_options([](unsigned t, unsigned) { if (t == 1) sleep_us(2000); }); }, 3);
  EXPECT_EQ(why, "");
}

TEST(BenchPoolStop, AWorkerLateOnTwoRoundsOfThreeStopsWithThreadZero) {
  // Late on rounds 1 and 2 of every three, on time on the third. The budget
  // runs out while thread 1 sleeps in some round c (thread 0 has long taken
  // the decision of c + 1 by then: go on); thread 0 decides to stop at the
  // top of c + 2, which races with thread 1 only when thread 1 is late in
  // c + 1 as well: the stop falls on a late round in about half of the cases,
  // on a round where thread 1 is on time in the others.
  const std::string why = run_in_child(
      [] {
        return stress_options([](unsigned t, unsigned r) {
          if (t == 1 && r % 3 != 0) sleep_us(1500);
        });
      },
      4);
  EXPECT_EQ(why, "");
}

TEST(BenchPoolStop, RandomYieldsAndSleepsOnEveryWorker) {
  // Each worker, after each barrier, goes on, yields or sleeps a while drawn
  // from (run, thread, round): thread 0 late too, and every order of the two.
  unsigned runs = 0;
  const std::string why = run_in_child(
      [&runs] {
        const unsigned run = ++runs;
        return stress_options([run](unsigned t, unsigned r) {
          std::minstd_rand rng(run * 7919u + t * 104729u + r + 1);
          switch (rng() % 4) {
            case 0: break;
            case 1: sched_yield(); break;
            default: sleep_us(static_cast<unsigned>(rng() % 1500)); break;
          }
        });
      },
      6);
  EXPECT_EQ(why, "");
}

}  // namespace
