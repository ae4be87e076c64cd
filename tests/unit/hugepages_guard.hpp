// tests/unit/hugepages_guard.hpp — free 2 MiB hugepages on node 0 of /sys for
// a test, and the old state back afterwards.
//
//   HugepagesGuard g(4);        // flock(/tmp/numacma-test-hugepages.lock)
//   if (!g.ok()) GTEST_SKIP() << g.why();
//   ... at least 4 free 2 MiB hugepages on node 0 ...
//   g.restore();                // nr_hugepages back to its old value (also in ~)
//
// When node 0 has fewer free hugepages than asked and the process is root,
// nr_hugepages is raised by the shortfall and restored to the exact old value
// afterwards. The lock serialises every test process that does this (ctest -j,
// and other builds of this tree running the same tests), so one never restores
// a value another has just raised.
#pragma once

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cstdint>
#include <fstream>
#include <string>

namespace numacma::testing {

inline constexpr const char* kNode0Huge2M =
    "/sys/devices/system/node/node0/hugepages/hugepages-2048kB/";

inline long read_long(const std::string& path) {
  std::ifstream f(path);
  long v = -1;
  return (f >> v) ? v : -1;
}

inline bool write_long(const std::string& path, long v) {
  std::ofstream f(path);
  f << v << "\n";
  f.flush();
  return static_cast<bool>(f);
}

inline long free_2m_node0() { return read_long(std::string(kNode0Huge2M) + "free_hugepages"); }

class HugepagesGuard {
 public:
  explicit HugepagesGuard(long need) {
    lock_fd_ = ::open("/tmp/numacma-test-hugepages.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (lock_fd_ >= 0) (void)::flock(lock_fd_, LOCK_EX);
    const long have = free_2m_node0();
    if (have < 0) {
      why_ = "no 2 MiB hugepage pool on node 0 (" + std::string(kNode0Huge2M) + ")";
      return;
    }
    if (have >= need) {
      ok_ = true;
      return;
    }
    if (::geteuid() != 0) {
      why_ = "node 0 has " + std::to_string(have) + " free 2 MiB hugepages, the test needs " +
             std::to_string(need) + ", and only root may reserve more";
      return;
    }
    const std::string nr = std::string(kNode0Huge2M) + "nr_hugepages";
    old_nr_ = read_long(nr);
    if (old_nr_ < 0 || !write_long(nr, old_nr_ + (need - have))) {
      why_ = "cannot raise " + nr;
      restore();
      return;
    }
    changed_ = true;
    const long now = free_2m_node0();
    if (now < need) {
      why_ = "raised " + nr + " but node 0 has only " + std::to_string(now) +
             " free 2 MiB hugepages (memory too fragmented?), the test needs " + std::to_string(need);
      restore();
      return;
    }
    ok_ = true;
  }
  ~HugepagesGuard() {
    restore();
    if (lock_fd_ >= 0) ::close(lock_fd_);  // drops the flock
  }
  HugepagesGuard(const HugepagesGuard&) = delete;
  HugepagesGuard& operator=(const HugepagesGuard&) = delete;

  bool ok() const { return ok_; }
  const std::string& why() const { return why_; }
  /** nr_hugepages was raised by this guard (restore() puts it back). */
  bool changed() const { return changed_; }
  /** Puts nr_hugepages back to the value it had before; idempotent. */
  void restore() {
    if (changed_) {
      (void)write_long(std::string(kNode0Huge2M) + "nr_hugepages", old_nr_);
      changed_ = false;
    }
  }

 private:
  int lock_fd_ = -1;
  bool ok_ = false;
  bool changed_ = false;
  long old_nr_ = -1;
  std::string why_;
};

}  // namespace numacma::testing
