// bench/lib/shared_recovery.cpp — bench shared, the recovery half: how long
// until a reserved pool is whole again after a process died inside an update?
//
//   reserve(cma=64M, --backing): one area of 16384 pages
//   a kill (a new child each time):
//     child   Pool::attach; buffers - 1 buffers of 2 pages (8 KiB, from the
//             area); the update hook armed; one more alloc_coherent: inside
//             record_alloc, its record written (point 2), the area lock held,
//             the hook writes "P" on the pipe and pauses for good
//     parent  reads "P", SIGKILL, waitpid; then the timing: numacma::reap,
//             which the keeper answers only after it has handled the death it
//             saw first (the lock taken over, the update completed from the
//             journal, every buffer given back)
//   the cases:
//     reap            the full area (8192 buffers) and the lock to repair
//     reap-lock-only  the same, the child holding nothing but the buffer in flight
//     attach-clean    Pool::attach with nobody dead: what an attach costs
//   inner: the keeper's own time for the give-back (PoolStatus::last_reap_ns).
//   after each (untimed): numacma::status says the area is empty and no dead
//   holder is left; a failure there fails the run (a recovery that lost track).
//   One round is one kill of each case in turn, so drift hits them alike.
#include <unistd.h>

#include <chrono>

#include "numacma/numacma.hpp"
#include "numacma/shared.hpp"
#include "core/records.hpp"
#include "shared_bench.hpp"
#include "targets.hpp"

namespace numacma::bench::shared_bench {

namespace {

constexpr const char* kPoolName = "bench-shared-recovery";
constexpr std::uint64_t kAreaBytes = 64ULL << 20;
constexpr std::size_t kBuffer = 8192;  ///< 2 pages
constexpr std::uint64_t kFull = kAreaBytes / kBuffer;

// The parked child's report pipe (the hook is a plain function pointer).
int g_park_report = -1;

/** Point 2 of an update: the record is written, the lock held. Stop here for good. */
void park_at_record(int point) {
  if (point != 2) return;
  send_report(g_park_report, "P");
  for (;;) ::pause();
}

/** The child: holds buffers - 1 buffers, then parks inside the allocation of one more. */
void parked_child(std::uint64_t buffers, int report) {
  Result<Pool> p = Pool::attach(kPoolName);
  if (!p) {
    send_report(report, std::string("Pool::attach in the child: ") + p.error().message);
    child_leave(1);
  }
  const Device dev = Device::on_node(0, "bench-dev");
  std::vector<DmaBuffer> held;
  held.reserve(buffers);
  for (std::uint64_t i = 0; i + 1 < buffers; ++i) {
    Result<DmaBuffer> b = p->alloc_coherent(dev, kBuffer);
    if (!b) {
      send_report(report, "the child's buffer " + std::to_string(i) + ": " + b.error().message);
      child_leave(2);
    }
    if (b->served() == Served::pages) {
      send_report(report, "the child's buffer " + std::to_string(i) + " came from pages, not from the area");
      child_leave(3);
    }
    held.push_back(std::move(*b));
  }
  g_park_report = report;
  core::set_update_hook_for_testing(park_at_record);
  (void)p->alloc_coherent(dev, kBuffer);
  send_report(report, "the child's last allocation did not stop inside an update of the area");
  child_leave(4);
}

/** Parks a holder of `buffers` buffers inside an update, its lock held. */
bool park(Child& c, std::uint64_t buffers, std::string* why) {
  if (!c.start([&](int report, int) { parked_child(buffers, report); }, why)) return false;
  const std::string said = c.await(60000, why);
  if (said != "P") {
    if (!said.empty()) *why = said;
    return false;
  }
  return true;
}

/** "" when the area is empty and `attached` holders are left, none dead; else what is wrong. */
std::string check_whole(std::size_t attached) {
  Result<PoolStatus> st = numacma::status(kPoolName);
  if (!st) return "numacma::status: " + st.error().message;
  std::size_t alive = 0;
  for (const HolderStatus& h : st->holders) {
    if (!h.alive) return "a dead holder (pid " + std::to_string(h.pid) + ") is still registered after the recovery";
    ++alive;
  }
  if (alive != attached)
    return std::to_string(alive) + " holders registered after the recovery, " + std::to_string(attached) + " expected";
  for (const SharedAreaStatus& a : st->areas)
    if (a.area.used != 0)
      return "area " + a.area.name + " still has " + std::to_string(a.area.used) + " pages used after the recovery";
  return "";
}

struct Case {
  SharedRecoveryResult r;
  std::vector<double> ns, inner;
  bool done = false;  ///< failed: no more rounds
};

double since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count();
}

/** One kill and recovery of case `c`; false when the case cannot go on (r.reason
 *  says why), with *broken set when a recovery left the pool wrong. */
bool one(Case& c, bool* broken) {
  using clock = std::chrono::steady_clock;
  std::string why;
  const std::string& w = c.r.what;
  const std::uint64_t buffers = w == "reap-lock-only" ? 1 : kFull;
  Result<PoolStatus> before = numacma::status(kPoolName);
  if (!before || before->areas.empty()) {
    c.r.reason = "numacma::status: " + (before ? std::string("no area") : before.error().message);
    return false;
  }
  if (w != "attach-clean") {
    Child child;
    if (!park(child, buffers, &why)) {
      c.r.reason = "parking a child inside an update: " + why;
      return false;
    }
    if (!child.kill_and_wait()) {
      c.r.reason = "the child was gone before the kill";
      return false;
    }
    // From the moment the process is gone (waitpid returned: the kernel has
    // closed its connection) until the pool is whole.
    const auto t0 = clock::now();
    Result<ReapReport> rr = numacma::reap(kPoolName);  // answered after the keeper handled the death
    const double ns = since(t0);
    if (!rr) {
      c.r.reason = "numacma::reap: " + rr.error().message;
      return false;
    }
    c.ns.push_back(ns);
    why = check_whole(0);
  } else {
    const auto t0 = clock::now();
    Result<Pool> p = Pool::attach(kPoolName);
    const double ns = since(t0);
    if (!p) {
      c.r.reason = "Pool::attach: " + p.error().message;
      return false;
    }
    c.ns.push_back(ns);
    why = check_whole(1);
  }  // the attached pool detaches here, outside the timing
  if (Result<PoolStatus> after = numacma::status(kPoolName); why.empty() && after && !after->areas.empty()) {
    const SharedAreaStatus &a = after->areas.front(), &b = before->areas.front();
    c.r.pages = a.reaped_pages - b.reaped_pages;
    c.r.buffers = w == "attach-clean" ? 0 : buffers;
    c.r.recovered_locks = a.recoveries - b.recoveries;
    if (w != "attach-clean") c.inner.push_back(static_cast<double>(after->last_reap_ns));
  }
  if (!why.empty()) {
    c.r.reason = why;
    *broken = true;
    return false;
  }
  return true;
}

}  // namespace

std::vector<SharedRecoveryResult> run_recovery(const SharedOptions& o, RunDir& dir, std::string* error) {
  const unsigned kills = kSharedKills.pick(o.kills, o.quick);
  std::vector<Case> cases(3);
  const char* whats[] = {"reap", "reap-lock-only", "attach-clean"};
  const char* words[] = {
      "from the death (waitpid) of a holder of 8192 buffers of 8 KiB (the area full), SIGKILLed inside an "
      "allocation with its area lock held, until numacma::reap(NAME) returns: the keeper sees the process gone, "
      "takes the lock over, completes the update from the journal, gives every buffer back",
      "the same for a holder holding nothing but the buffer in flight: the lock taken over, the update completed",
      "Pool::attach(NAME): the keeper's answer, the layout validated, state and area mapped (what any attach costs)"};
  std::string why;
  const std::string skip = o.backing == "hugetlb" ? hugetlb_missing(kAreaBytes) : "";
  const bool reserved = skip.empty() && dir.reserve(kPoolName, "cma=64M", o.backing, &why);
  std::string backing = o.backing;
  if (reserved)
    if (Result<PoolStatus> st = numacma::status(kPoolName); st && !st->areas.empty())
      backing = st->areas.front().area.backing;
  for (std::size_t i = 0; i < cases.size(); ++i) {
    SharedRecoveryResult& r = cases[i].r;
    r.what = whats[i];
    r.area_bytes = kAreaBytes;
    r.config = std::string(words[i]) + "; reserved cma=64M, backing " + backing +
               (backing != o.backing ? " (asked: " + o.backing + ")" : "");
    if (!reserved) {
      r.skipped = true;
      r.unavailable = !skip.empty();
      r.reason = skip.empty() ? why : skip;
      cases[i].done = true;
    }
  }
  bool broken = false;
  for (unsigned k = 0; k < kills && !broken; ++k)
    for (Case& c : cases) {
      if (c.done) continue;
      if (!one(c, &broken)) {
        c.done = true;
        c.r.skipped = true;
        if (broken) {
          *error = c.r.what + ": " + c.r.reason;
          break;
        }
      }
    }
  std::vector<SharedRecoveryResult> out;
  for (Case& c : cases) {
    c.r.samples = static_cast<unsigned>(c.ns.size());
    if (!c.r.skipped && !c.ns.empty()) {
      const Summary s = summarize(c.ns);
      c.r.median_ns = s.median;
      c.r.p99_ns = s.p99;
      if (!c.inner.empty()) c.r.inner_median_ns = summarize(c.inner).median;
    }
    out.push_back(c.r);
  }
  if (reserved) (void)dir.release(kPoolName, &why);
  return out;
}

}  // namespace numacma::bench::shared_bench
