// bench/lib/shared.cpp — bench shared: what does sharing a pool between
// processes cost on the allocation path? (The recovery half: shared_recovery.cpp.)
//
//   one run directory ($NUMACMA_RUN_DIR -> a fresh directory under $TMPDIR or /tmp)
//     private    Pool::create(cma=1G, --backing)                 } the alloc loop of
//     attached   reserve(cma=1G, --backing) + Pool::attach        } bench alloc's numacma
//     +idle      ... and a second process attached, waiting        } row (time_pairs):
//     +busy      ... and a second process freeing and allocating  } 1024 live, ns a pair
//                64 buffers of the same size without pause
//   per size: the four rows in turn (drift hits each alike); ratio = median /
//   private median. Targets (bench/lib/targets.hpp): attached <= 1.1x private,
//   <= 1.5x with a second process busy on the same area (the first target,
//   <= 1.5x attached, was tightened by the shared-pools work).
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "numacma/numacma.hpp"
#include "numacma/shared.hpp"
#include "shared_bench.hpp"

namespace numacma::bench {

namespace shared_bench {

// ---- RunDir ------------------------------------------------------------------------

bool RunDir::make(std::string* why) {
  const char* tmp = std::getenv("TMPDIR");
  std::string templ = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/numacma-bench-shared-XXXXXX";
  if (::mkdtemp(templ.data()) == nullptr) {
    *why = "mkdtemp(" + templ + "): " + std::strerror(errno);
    return false;
  }
  path_ = templ;
  if (const char* old = std::getenv("NUMACMA_RUN_DIR")) {
    old_ = old;
    had_old_ = true;
  }
  ::setenv("NUMACMA_RUN_DIR", path_.c_str(), 1);
  return true;
}

bool RunDir::reserve(const std::string& name, const std::string& params, const std::string& backing,
                     std::string* why) {
  numacma::ReserveOptions ro;
  ro.params = params;
  ro.backing = backing;
  Result<std::vector<ReservationNote>> r = numacma::reserve(name, ro);
  if (!r) {
    *why = "numacma::reserve(" + name + ", " + params + ", backing " + backing + "): " + r.error().message;
    return false;
  }
  names_.push_back(name);
  return true;
}

bool RunDir::release(const std::string& name, std::string* why) {
  if (std::erase(names_, name) == 0) return true;  // not reserved here
  if (Status s = numacma::release(name, true); !s) {
    *why = "numacma::release(" + name + "): " + s.error().message;
    return false;
  }
  return true;
}

RunDir::~RunDir() {
  if (path_.empty()) return;
  for (const std::string& n : names_) (void)numacma::release(n, true);
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
  if (had_old_) ::setenv("NUMACMA_RUN_DIR", old_.c_str(), 1);
  else ::unsetenv("NUMACMA_RUN_DIR");
}

// ---- Child -------------------------------------------------------------------------

bool Child::open_pipes(std::string* why) {
  int up[2], down[2];
  if (::pipe(up) != 0) {
    *why = std::string("pipe: ") + std::strerror(errno);
    return false;
  }
  if (::pipe(down) != 0) {
    *why = std::string("pipe: ") + std::strerror(errno);
    ::close(up[0]);
    ::close(up[1]);
    return false;
  }
  report_rd_ = up[0];
  report_wr_ = up[1];
  stop_rd_ = down[0];
  stop_wr_ = down[1];
  return true;
}

pid_t Child::fork_child(std::string* why) {
  std::fflush(nullptr);  // nothing buffered is printed twice
  const pid_t pid = ::fork();
  if (pid < 0) {
    *why = std::string("fork: ") + std::strerror(errno);
    close_all();
    return pid;
  }
  if (pid == 0) {
    ::close(report_rd_);
    ::close(stop_wr_);
    return 0;
  }
  pid_ = pid;
  ::close(report_wr_);
  ::close(stop_rd_);
  report_wr_ = stop_rd_ = -1;
  return pid;
}

void Child::close_all() {
  for (int* fd : {&report_rd_, &report_wr_, &stop_rd_, &stop_wr_})
    if (*fd >= 0) {
      ::close(*fd);
      *fd = -1;
    }
}

std::string Child::await(int timeout_ms, std::string* why) {
  pollfd p{report_rd_, POLLIN, 0};
  int n;
  while ((n = ::poll(&p, 1, timeout_ms)) < 0 && errno == EINTR) {
  }
  if (n == 0) {
    *why = "the child (pid " + std::to_string(pid_) + ") said nothing in " + std::to_string(timeout_ms) + " ms";
    return "";
  }
  char buf[512];
  ssize_t got;
  while ((got = ::read(report_rd_, buf, sizeof buf)) < 0 && errno == EINTR) {
  }
  if (got <= 0) {
    const pid_t pid = pid_;
    const int code = wait_exit();
    *why = "the child (pid " + std::to_string(pid) + ") went away without a word (exit " + std::to_string(code) + ")";
    return "";
  }
  return std::string(buf, static_cast<std::size_t>(got));
}

void Child::stop() {
  if (stop_wr_ < 0) return;
  const char c = 's';
  (void)!::write(stop_wr_, &c, 1);
}

bool Child::kill_and_wait() {
  bool killed = false;
  if (pid_ > 0) {
    killed = ::kill(pid_, SIGKILL) == 0;
    int st = 0;
    while (::waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
  }
  close_all();
  return killed;
}

int Child::wait_exit() {
  if (pid_ <= 0) return exit_;
  int st = 0;
  while (::waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
  }
  pid_ = -1;
  exit_ = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return exit_;
}

void send_report(int fd, const std::string& what) {
  (void)!::write(fd, what.data(), std::min<std::size_t>(what.size(), 512));
}

void child_leave(int code) { ::_exit(code); }

std::string hugetlb_missing(std::uint64_t bytes) {
  std::ifstream mounts("/proc/mounts");
  std::string dev, dir, type;
  bool mounted = false;
  while (mounts >> dev >> dir >> type) {
    if (type == "hugetlbfs") mounted = true;
    mounts.ignore(1 << 16, '\n');
  }
  const std::uint64_t need = (bytes + (2ULL << 20) - 1) >> 21;
  std::ifstream f("/sys/devices/system/node/node0/hugepages/hugepages-2048kB/free_hugepages");
  std::uint64_t have = 0;
  if (!(f >> have)) have = 0;
  std::string why;
  if (::geteuid() != 0) why = "not root";
  if (!mounted) why += std::string(why.empty() ? "" : "; ") + "no hugetlbfs mounted";
  if (have < need)
    why += std::string(why.empty() ? "" : "; ") + std::to_string(have) + " free 2 MiB hugepages on node 0, " +
           std::to_string(need) + " needed";
  return why.empty() ? "" : "backing hugetlb needs root, a hugetlbfs mount and free hugepages: " + why;
}

}  // namespace shared_bench

namespace {

using shared_bench::Child;

constexpr const char* kAllocPool = "bench-shared-alloc";
constexpr unsigned kOtherLive = 64;  ///< buffers the busy second process cycles

/** The second attached process: idle (attached, blocked on its stop pipe) or
 *  busy (frees and re-allocates kOtherLive buffers of `size` in a fixed-seed
 *  random order until the stop byte; reports "D<pairs> <ns> <failures>"). */
void second_process(const std::string& name, int node, std::size_t size, bool busy, int report, int stop) {
  {
    Result<Pool> p = Pool::attach(name);
    if (!p) {
      shared_bench::send_report(report, "Pool::attach(" + name + ") in the second process: " + p.error().message);
      shared_bench::child_leave(1);
    }
    char c;
    if (!busy) {
      shared_bench::send_report(report, "R");
      while (::read(stop, &c, 1) < 0 && errno == EINTR) {
      }
    } else {
      const Device dev = Device::on_node(node, "bench-other");
      std::vector<DmaBuffer> live(kOtherLive);
      for (DmaBuffer& b : live) {
        Result<DmaBuffer> r = p->alloc_coherent(dev, size);
        if (!r) {
          shared_bench::send_report(report, "the second process's fill: " + r.error().message);
          shared_bench::child_leave(2);
        }
        b = std::move(*r);
      }
      (void)::fcntl(stop, F_SETFL, O_NONBLOCK);
      shared_bench::send_report(report, "R");
      std::uint64_t pairs = 0, failures = 0, x = 0x9e3779b97f4a7c15ULL;
      const auto t0 = std::chrono::steady_clock::now();
      for (;; ++pairs) {
        if ((pairs & 1023) == 0 && ::read(stop, &c, 1) >= 0) break;  // the stop byte, or EOF
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        DmaBuffer& b = live[x % kOtherLive];
        if (!b.release()) ++failures;
        Result<DmaBuffer> r = p->alloc_coherent(dev, size);
        if (r) b = std::move(*r);
        else ++failures;
      }
      const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0);
      live.clear();
      shared_bench::send_report(report, "D" + std::to_string(pairs) + " " + std::to_string(ns.count()) + " " +
                                            std::to_string(failures));
    }
  }  // detached
  shared_bench::child_leave(0);
}

struct Setup {
  std::string name;
  std::unique_ptr<AllocPeer> peer;
  int other = 0;  ///< 0: none, 1: idle, 2: busy
};

void skip_all(const SharedOptions& o, const std::vector<std::string>& setups, const std::string& why,
              SharedReport* rep, bool unavailable = false) {
  for (std::size_t size : o.sizes)
    for (const std::string& s : setups) {
      SharedAllocResult r;
      r.setup = s;
      r.size = size;
      r.align = a6_alignment(size);
      r.skipped = true;
      r.unavailable = unavailable;
      r.reason = why;
      rep->alloc.push_back(r);
    }
}

/** One row: the loop on `s` at `size`, with its second process around it. */
SharedAllocResult measure(const SharedOptions& o, Setup& s, std::size_t size, int node) {
  SharedAllocResult r;
  r.setup = s.name;
  r.size = size;
  r.align = a6_alignment(size);
  AllocOptions ao;
  ao.quick = o.quick;
  ao.live = o.live;
  ao.repetitions = o.repetitions;
  Child other;
  std::string why;
  if (s.other != 0) {
    const bool busy = s.other == 2;
    const bool started = other.start(
        [&](int report, int stop) { second_process(kAllocPool, node, size, busy, report, stop); }, &why);
    const std::string said = started ? other.await(30000, &why) : "";
    if (said != "R") {
      r.skipped = true;
      r.reason = "the second process: " + (said.empty() ? why : said);
      r.config = s.peer->config(size, r.align);
      return r;
    }
  }
  Summary sum;
  const bool ran = time_pairs(*s.peer, ao, size, r.align, &sum, &why);
  r.config = s.peer->config(size, r.align);
  if (s.other != 0) {
    other.stop();
    const std::string said = other.await(30000, &why);
    unsigned long long pairs = 0, ns = 0, failures = 0;
    if (s.other == 2 && std::sscanf(said.c_str(), "D%llu %llu %llu", &pairs, &ns, &failures) == 3 && ns > 0) {
      r.other_pairs_per_s = static_cast<double>(pairs) * 1e9 / static_cast<double>(ns);
      if (failures != 0) r.config += "; the other process saw " + std::to_string(failures) + " failed calls";
    }
    if (const int code = other.wait_exit(); code != 0 && ran) {
      r.skipped = true;
      r.reason = "the second process ended with exit code " + std::to_string(code) + (said.empty() ? "" : ": " + said);
      return r;
    }
  }
  if (!ran) {
    r.skipped = true;
    r.reason = why;
    return r;
  }
  r.median_ns = sum.median;
  r.p99_ns = sum.p99;
  return r;
}

void alloc_rows(const SharedOptions& o, shared_bench::RunDir& dir, const std::vector<std::string>& names,
                SharedReport* rep) {
  std::string why;
  if (o.backing == "hugetlb") {  // the private pool and the reservation: 1 GiB each
    why = shared_bench::hugetlb_missing(2ULL << 30);
    if (!why.empty()) return skip_all(o, names, why, rep, true);
  }
  BenchPool priv;
  if (!make_bench_pool(o.backing, "/sys", {}, &priv, &why)) return skip_all(o, names, why, rep);
  if (!dir.reserve(kAllocPool, "cma=1G", o.backing, &why)) return skip_all(o, names, why, rep);
  Result<Pool> att = Pool::attach(kAllocPool);
  if (!att) return skip_all(o, names, std::string("Pool::attach: ") + att.error().message, rep);
  const Stats st = att->stats();
  if (st.areas.empty()) return skip_all(o, names, "the reservation has no area", rep);
  const int node = st.areas.front().node;
  const std::string res = "reserved (cma=1G, backing " + st.areas.front().backing +
                          (o.backing != st.areas.front().backing ? " (asked: " + o.backing + ")" : "") +
                          ") + Pool::attach, ";
  std::vector<Setup> setups;
  setups.push_back({"private",
                    make_numacma_peer(*priv.pool, priv.node,
                                      "private Pool::create(cma=1G, backing " + priv.backing +
                                          (o.backing != priv.backing ? " (asked: " + o.backing + ")" : "") + ")"),
                    0});
  setups.push_back({"attached", make_numacma_peer(*att, node, res + "1 process attached, robust per-area lock"), 0});
  setups.push_back({"attached+idle",
                    make_numacma_peer(*att, node, res + "2 processes attached (the other idle, waiting on a pipe), "
                                                        "robust per-area lock"),
                    1});
  if (o.busy)
    setups.push_back({"attached+busy",
                      make_numacma_peer(*att, node,
                                        res + "2 processes attached (the other freeing and re-allocating " +
                                            std::to_string(kOtherLive) +
                                            " buffers of the same size without pause), robust per-area lock"),
                      2});
  for (std::size_t size : o.sizes) {
    const std::size_t first = rep->alloc.size();
    for (Setup& s : setups) rep->alloc.push_back(measure(o, s, size, node));
    const SharedAllocResult& p = rep->alloc[first];
    for (std::size_t i = first; i < rep->alloc.size(); ++i)
      if (!rep->alloc[i].skipped && !p.skipped && p.median_ns > 0) rep->alloc[i].ratio = rep->alloc[i].median_ns / p.median_ns;
  }
}

void run_alloc_rows(const SharedOptions& o, shared_bench::RunDir& dir, SharedReport* rep) {
  std::vector<std::string> names = {"private", "attached", "attached+idle"};
  if (o.busy) names.push_back("attached+busy");
  alloc_rows(o, dir, names, rep);
  // Every pool is gone: the reservation goes before the recovery half makes its own.
  if (std::string why; !dir.release(kAllocPool, &why)) rep->note = why;
}

}  // namespace

SharedReport run_shared(const SharedOptions& o) {
  SharedReport rep;
  shared_bench::RunDir dir;  // goes last: every pool below is gone by then
  std::string why;
  if (!dir.make(&why)) {
    rep.ok = false;
    rep.error = why;
    return rep;
  }
  rep.run_dir = dir.path();
  run_alloc_rows(o, dir, &rep);
  rep.recovery = shared_bench::run_recovery(o, dir, &why);
  if (!why.empty()) {
    rep.ok = false;
    rep.error = why;
  }
  return rep;
}

}  // namespace numacma::bench
