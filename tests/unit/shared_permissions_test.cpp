// Reservation files are 0600 for the reserving user, or 0660 for --group: a
// second user (created here) without the group is refused with a clear
// permission error; given the group, it attaches and allocates. Root only
// (it creates a user and a group and switches to them in a child).
#include <grp.h>
#include <gtest/gtest.h>
#include <pwd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "numacma/numacma.hpp"
#include "numacma/shared.hpp"
#include "shared_test_util.hpp"

namespace numacma {
namespace {

constexpr const char* kUser = "numacma-t2";
constexpr const char* kGroup = "numacma-tg";

bool run(const std::string& cmd) { return std::system((cmd + " >/dev/null 2>&1").c_str()) == 0; }

struct SecondUser {
  bool ok = false;
  std::string why;
  uid_t uid = 0;
  gid_t own_gid = 0, group_gid = 0;
  SecondUser() {
    if (::geteuid() != 0) {
      why = "needs root (creates a user)";
      return;
    }
    if (!run("command -v useradd") || !run("command -v groupadd")) {
      why = "useradd/groupadd not installed (passwd package)";
      return;
    }
    if (::getgrnam(kGroup) == nullptr && !run(std::string("groupadd ") + kGroup)) {
      why = "groupadd failed";
      return;
    }
    if (::getpwnam(kUser) == nullptr && !run(std::string("useradd -M -N -s /usr/sbin/nologin ") + kUser)) {
      why = "useradd failed";
      return;
    }
    const passwd* pw = ::getpwnam(kUser);
    const group* gr = ::getgrnam(kGroup);
    if (pw == nullptr || gr == nullptr) {
      why = "user or group not found after creating them";
      return;
    }
    uid = pw->pw_uid;
    own_gid = pw->pw_gid;
    group_gid = gr->gr_gid;
    ok = true;
  }
};

/** In a child running as the second user (with the group when with_group):
 *  attach and allocate. Exit 0 ok, 3 permission error with a clear message,
 *  other codes otherwise. */
int attach_as(const SecondUser& u, const std::string& name, bool with_group) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    const gid_t groups[1] = {u.group_gid};
    if (::setgroups(with_group ? 1 : 0, groups) != 0 || ::setgid(u.own_gid) != 0 || ::setuid(u.uid) != 0)
      ::_exit(20);
    Result<Pool> p = Pool::attach(name);
    if (!p) {
      const bool clear = p.error().code == Errc::permission &&
                         p.error().message.find("Permission denied") != std::string::npos &&
                         p.error().message.find("it admits its owner") != std::string::npos;
      std::fprintf(stderr, "attach as %s: %s\n", kUser, p.error().message.c_str());
      ::_exit(clear ? 3 : 4);
    }
    Result<DmaBuffer> b = p->alloc_coherent(Device::on_node(0), 65536);
    if (!b) ::_exit(5);
    std::memset(b->cpu(), 1, 65536);
    ::_exit(0);
  }
  int st = 0;
  ::waitpid(pid, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 100;
}

TEST(SharedPermissions, OwnerOnlyUnlessAGroupIsGiven) {
  SecondUser u;
  if (!u.ok) GTEST_SKIP() << u.why;
  testing::ScopedRunDir run;
  ASSERT_TRUE(reserve("private", testing::sim_options("cma=16M")).ok());
  struct stat st;
  ASSERT_EQ(::stat((run.dir() + "/pools/private/state").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(st.st_uid, ::getuid());
  ASSERT_EQ(::stat((run.dir() + "/pools/private/reserved.mem").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(attach_as(u, "private", true), 3);  // the group does not help: 0600

  ReserveOptions o = testing::sim_options("cma=16M");
  o.group = kGroup;
  ASSERT_TRUE(reserve("grouped", o).ok());
  ASSERT_EQ(::stat((run.dir() + "/pools/grouped/state").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0660u);
  EXPECT_EQ(st.st_gid, u.group_gid);
  EXPECT_EQ(attach_as(u, "grouped", false), 3);  // not in the group: refused
  EXPECT_EQ(attach_as(u, "grouped", true), 0);   // in it: allowed
  // The second user's buffer died with it: reaped, the pool whole.
  Result<ReapReport> r = reap("grouped");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->buffers, 1u);
}

}  // namespace
}  // namespace numacma
