// "A fixture is a fixture": over any sysfs tree but /sys, backing auto means
// sim and a real backing is refused with a reason (backing::is_host_sysfs,
// backing::backing_for_root, Pool::create); the pool remembers its root.
#include <gtest/gtest.h>

#include <string>

#include "backing/backing.hpp"
#include "fixture_pool_options.hpp"
#include "numacma/numacma.hpp"

using numacma::Errc;
using numacma::Pool;
using numacma::PoolOptions;
using numacma::backing::backing_for_root;
using numacma::backing::is_host_sysfs;

using fixture_pool::contains;
using fixture_pool::kArm;
using fixture_pool::options;

TEST(FixtureIsAFixture, OnlySysIsThisMachine) {
  for (const char* host : {"/sys", "/sys/", "//sys", "/sys/.", "/sys//", "/./sys"})
    EXPECT_TRUE(is_host_sysfs(host)) << host;
  for (const char* fixture : {"/sysx", "sys", "/sys/devices", "/", "", "tests/data/vm1", "/tmp/sys"})
    EXPECT_FALSE(is_host_sysfs(fixture)) << fixture;
}

TEST(FixtureIsAFixture, AutoMeansSimAndRealBackingsAreRefusedNamingWhy) {
  EXPECT_EQ(*backing_for_root("auto", kArm), "sim");
  EXPECT_EQ(*backing_for_root("sim", kArm), "sim");
  EXPECT_EQ(*backing_for_root("auto", "/sys"), "auto");
  EXPECT_EQ(*backing_for_root("anon", "/sys/"), "anon");
  for (const char* real : {"anon", "hugetlb", "hugetlb-2M", "hugetlb-1G"}) {
    auto r = backing_for_root(real, kArm);
    ASSERT_FALSE(r) << real;
    EXPECT_EQ(r.error().code, Errc::invalid_argument);
    EXPECT_TRUE(contains(r.error().message, "fixture")) << r.error().message;
    EXPECT_TRUE(contains(r.error().message, kArm)) << r.error().message;
  }
  EXPECT_EQ(*backing_for_root("floppy", kArm), "floppy");  // make_backing refuses it by name
}

TEST(FixtureIsAFixture, PoolCreateOverAFixtureIsSimulated) {
  auto p = Pool::create(options("auto", kArm));
  ASSERT_TRUE(p) << p.error().message;
  const numacma::Stats st = p->stats();
  ASSERT_EQ(st.areas.size(), 5u);
  for (const auto& a : st.areas) EXPECT_EQ(a.backing, "sim") << a.name;
  EXPECT_EQ(p->sysfs_root(), kArm);
  for (const char* real : {"anon", "hugetlb", "hugetlb-1G"}) {
    auto r = Pool::create(options(real, kArm));
    ASSERT_FALSE(r) << real;
    EXPECT_EQ(r.error().code, Errc::invalid_argument) << r.error().message;
    EXPECT_TRUE(contains(r.error().message, "fixture")) << r.error().message;
  }
}
