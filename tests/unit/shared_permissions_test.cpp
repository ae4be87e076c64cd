// Who may do what with a reservation: its owner and root attach; a second
// user (created here) attaches only when the reservation names a group it is
// in, and is refused with a clear message otherwise; anyone who can reach the
// pool's directory reads its status (read-only: no lock taken, nothing
// written), but only the owner or root releases it. Root only (it creates a
// user and a group and switches to them in a child).
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstring>
#include <filesystem>
#include <string>

#include "numacma/numacma.hpp"
#include "numacma/shared.hpp"
#include "second_user.hpp"
#include "shared_test_util.hpp"

namespace numacma {
namespace {

using testing::SecondUser;

/** As the second user: attach and allocate. 0 ok, 3 refused with a clear
 *  permission error, other codes otherwise. */
int attach_as(const SecondUser& u, const std::string& name, bool with_group) {
  return testing::as_second_user(u, with_group, [&] {
    Result<Pool> p = Pool::attach(name);
    if (!p) {
      const bool clear = p.error().code == Errc::permission &&
                         p.error().message.find("may not attach to pool '" + name + "'") != std::string::npos &&
                         p.error().message.find("it admits uid") != std::string::npos;
      std::fprintf(stderr, "attach as %s: %s\n", testing::kSecondUser, p.error().message.c_str());
      return clear ? 3 : 4;
    }
    Result<DmaBuffer> b = p->alloc_coherent(Device::on_node(0), 65536);
    if (!b) return 5;
    std::memset(b->cpu(), 1, 65536);
    b->detach();  // held as the child exits: the keeper gives it back
    return 0;
  });
}

TEST(SharedPermissions, OwnerOnlyUnlessAGroupIsGiven) {
  SecondUser u;
  if (!u.ok) GTEST_SKIP() << u.why;
  testing::ScopedRunDir run;
  ASSERT_TRUE(reserve("private", testing::sim_options("cma=16M")).ok());
  struct stat st;
  ASSERT_EQ(::stat((run.dir() + "/pools/private").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, ::getuid());
  EXPECT_EQ(st.st_mode & 0022, 0u) << "nobody else may write in it";
  EXPECT_EQ(attach_as(u, "private", true), 3);  // the group does not help: none was given

  ReserveOptions o = testing::sim_options("cma=16M");
  o.group = testing::kSecondGroup;
  ASSERT_TRUE(reserve("grouped", o).ok());
  ASSERT_EQ(::stat((run.dir() + "/pools/grouped").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0755u);  // status is anyone's; attaching, the group's
  EXPECT_EQ(st.st_gid, u.group_gid);
  EXPECT_EQ(attach_as(u, "grouped", false), 3);  // not in the group: refused
  EXPECT_EQ(attach_as(u, "grouped", true), 0);   // in it: allowed
  // The second user's buffer went with it: the pool is whole.
  ASSERT_TRUE(testing::eventually([] { return testing::holders_of("grouped") == 0; }));
  Result<PoolStatus> s = status("grouped");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->areas[0].area.used, 0u);
  EXPECT_EQ(s->areas[0].reaped_pages, 16u);
}

TEST(SharedPermissions, StatusNeedsNoWriteAccessReleaseIsTheOwners) {
  SecondUser u;
  if (!u.ok) GTEST_SKIP() << u.why;
  testing::ScopedRunDir run;
  ASSERT_TRUE(reserve("watched", testing::sim_options("cma=16M")).ok());
  Result<Pool> p = Pool::attach("watched");
  ASSERT_TRUE(p.ok());
  Result<DmaBuffer> b = p->alloc_coherent(Device::on_node(0), 65536);
  ASSERT_TRUE(b.ok());
  const int rc = testing::as_second_user(u, false, [] {
    Result<PoolStatus> st = status("watched");  // a monitoring user: no group, no write access
    if (!st) {
      std::fprintf(stderr, "status: %s\n", st.error().message.c_str());
      return 2;
    }
    if (st->holders.size() != 1 || st->areas.at(0).area.used != 16) return 3;
    if (Status r = release("watched", true); r || r.error().code != Errc::permission) return 4;
    if (Result<ReapReport> r = reap("watched"); r || r.error().code != Errc::permission) return 5;
    return 0;
  });
  EXPECT_EQ(rc, 0);
  EXPECT_TRUE(status("watched").ok());  // still there
}

}  // namespace
}  // namespace numacma
