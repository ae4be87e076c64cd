// A replay decides the same on every run: a trace line without cpu= is made
// on CPU 0 (or on the CPU the trace's `cpu <N>` line states), never on the
// CPU the replay happens to run on. Only a device with no node (-1) cares
// (A3, A7: its pages come from the CPU's node), so the trace here is made of
// such requests, on a copy of the arm64-4n fixture whose CPUs are dealt to
// the nodes in turn (CPU c on node c % 4): host CPUs 0 and 1 would pick
// different nodes if the host's CPU leaked in (a fixture's CPU numbers are
// its own; the old replay took the host's CPU id as the fixture's).
//
// The test pins itself to each CPU it may run on in turn and replays the
// trace there, through the CLI (a child inherits the pinning) and through a
// Replayer in this thread; every output must be the same, byte for byte.
#include <gtest/gtest.h>
#include <sched.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "numacma/numacma.hpp"
#include "pool/replay.hpp"

namespace fs = std::filesystem;

namespace {

constexpr auto kCopy = fs::copy_options::recursive | fs::copy_options::copy_symlinks;
constexpr int kNodes = 4, kCpus = 128;

/** arm64-4n with CPU c on node c % 4. */
class DealtFixture {
 public:
  explicit DealtFixture(const std::string& name) : root_(fs::path(::testing::TempDir()) / name) {
    fs::remove_all(root_);
    fs::copy(std::string(NUMACMA_TEST_DATA) + "/arm64-4n", root_, kCopy);
    for (int n = 0; n < kNodes; ++n) {
      std::string list;
      for (int c = n; c < kCpus; c += kNodes) list += (list.empty() ? "" : ",") + std::to_string(c);
      std::ofstream(root_ / ("devices/system/node/node" + std::to_string(n) + "/cpulist")) << list << "\n";
    }
  }
  ~DealtFixture() { fs::remove_all(root_); }
  std::string root() const { return root_.string(); }

 private:
  fs::path root_;
};

/** The CPUs this thread may run on; pin() pins it to one, the destructor restores. */
class Pinning {
 public:
  Pinning() {
    CPU_ZERO(&saved_);
    ok_ = ::sched_getaffinity(0, sizeof saved_, &saved_) == 0;
    for (int c = 0; ok_ && c < CPU_SETSIZE; ++c)
      if (CPU_ISSET(c, &saved_)) cpus_.push_back(c);
  }
  ~Pinning() {
    if (ok_) ::sched_setaffinity(0, sizeof saved_, &saved_);
  }
  const std::vector<int>& cpus() const { return cpus_; }
  bool pin(int cpu) {
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    return ::sched_setaffinity(0, sizeof one, &one) == 0 && ::sched_getcpu() == cpu;
  }

 private:
  cpu_set_t saved_;
  bool ok_ = false;
  std::vector<int> cpus_;
};

// No-node requests without cpu=: single pages (A3, kept and reused), blocks
// (A7, no default area), frees in between; and a device on a node, unmoved.
const char* const kTrace =
    "alloc a -1 4K\n"
    "alloc b -1 64K\n"
    "alloc c -1 8K dma_mask=0xffffffffff\n"
    "free a\n"
    "alloc d -1 4K\n"
    "alloc e 2 4K\n"
    "alloc f -1 1M\n"
    "free b\n"
    "alloc g -1 4K\n";

std::string replay_cli(const std::string& root, const std::string& trace) {
  const std::string cmd = std::string(NUMACMA_CLI) + " replay --json --backing sim --arch x86_64 --sysfs-root '" +
                          root + "' --params 'cma_pernuma=2M' '" + trace + "' 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return "popen failed";
  std::string out;
  char buf[4096];
  while (std::fgets(buf, sizeof buf, p) != nullptr) out += buf;
  ::pclose(p);
  return out;
}

std::string replay_here(const std::string& root, const std::string& text) {
  numacma::PoolOptions o;
  o.params = "cma_pernuma=2M";
  o.backing = "sim";
  o.sysfs_root = root;
  auto pool = numacma::Pool::create(o);
  if (!pool) return "pool: " + pool.error().message;
  std::string out;
  {
    numacma::replay::Replayer r(*pool);
    std::size_t n = 0, b = 0;
    while (b < text.size()) {
      const std::size_t e = text.find('\n', b);
      const auto d = r.feed(std::string_view(text).substr(b, e - b), ++n);
      if (!d.is_null()) out += d.dump() + "\n";
      b = e + 1;
    }
    out += r.stats_json().dump() + "\n";
  }
  return out;
}

TEST(ReplayCpu, TheSameTraceDecidesTheSameOnEveryHostCpu) {
  DealtFixture fx("replay_cpu_dealt");
  const std::string trace = (fs::path(::testing::TempDir()) / "replay_cpu_dealt.trace").string();
  std::ofstream(trace) << kTrace;
  Pinning pinning;
  ASSERT_FALSE(pinning.cpus().empty());
  std::string first_cli, first_here;
  int first_cpu = -1;
  for (int cpu : pinning.cpus()) {
    if (!pinning.pin(cpu)) continue;
    const std::string cli = replay_cli(fx.root(), trace);
    const std::string here = replay_here(fx.root(), kTrace);
    if (first_cpu < 0) {
      first_cpu = cpu, first_cli = cli, first_here = here;
      continue;
    }
    EXPECT_EQ(cli, first_cli) << "numacma replay pinned to CPU " << cpu << " vs CPU " << first_cpu;
    EXPECT_EQ(here, first_here) << "Replayer pinned to CPU " << cpu << " vs CPU " << first_cpu;
  }
  ASSERT_GE(first_cpu, 0) << "could not pin this thread to any CPU";
  // And the answer is CPU 0's, whichever CPU ran it: node 0 for every -1 request.
  EXPECT_NE(first_cli.find(R"("id":"a","iova":false,"node":0,)"), std::string::npos) << first_cli;
  EXPECT_NE(first_cli.find(R"("id":"f","iova":false,"node":0,)"), std::string::npos) << first_cli;
  EXPECT_NE(first_cli.find(R"("id":"e","iova":false,"node":2,)"), std::string::npos) << first_cli;
  if (pinning.cpus().size() < 2)
    std::printf("note: one CPU allowed here: the comparison across host CPUs had one run\n");
  fs::remove(trace);
}

TEST(ReplayCpu, ATraceStatesItsDefaultCpuOnceBeforeAnyRequest) {
  DealtFixture fx("replay_cpu_default");
  const std::string out = replay_here(fx.root(),
                                      "# CPU 7 (node 3 here) unless a line says\n"
                                      "cpu 7\n"
                                      "alloc a -1 4K\n"
                                      "alloc b -1 64K cpu=5\n"
                                      "cpu 6\n"
                                      "alloc c 1 64K\n"
                                      "alloc d -1 8K\n");
  std::vector<std::string> lines;
  for (std::size_t b = 0, e; (e = out.find('\n', b)) != std::string::npos; b = e + 1) lines.push_back(out.substr(b, e - b));
  ASSERT_EQ(lines.size(), 7u) << out;
  EXPECT_EQ(lines[0], R"({"cpu":7,"ok":true,"op":"cpu"})");
  EXPECT_NE(lines[1].find(R"("id":"a","iova":false,"node":3,)"), std::string::npos) << lines[1];
  EXPECT_NE(lines[2].find(R"("id":"b","iova":false,"node":1,)"), std::string::npos) << lines[2];
  EXPECT_EQ(lines[3], R"x({"error":"line 5: cpu: the trace states its default CPU once (at line 2)","line":5,"ok":false,"op":"error"})x");
  EXPECT_NE(lines[4].find(R"("id":"c","iova":false,"node":1,)"), std::string::npos) << lines[4];
  EXPECT_NE(lines[5].find(R"("id":"d","iova":false,"node":3,)"), std::string::npos) << lines[5];

  const std::string late = replay_here(fx.root(), "alloc a -1 4K\ncpu 7\nalloc b -1 4K\n");
  EXPECT_NE(late.find(R"("error":"line 2: cpu: the default CPU must be stated before the first request")"),
            std::string::npos)
      << late;
  EXPECT_NE(late.find(R"("id":"b","iova":false,"node":0,)"), std::string::npos) << late;
}

}  // namespace
