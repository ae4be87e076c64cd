// numacma's allocation unit P is 4 KiB. On a kernel whose page size is not
// (arm64 with 16 KiB or 64 KiB pages) the backings over real memory refuse
// with Errc::unsupported and a message that says why; the sim backing works.
#include <gtest/gtest.h>

#include <string>

#include "backing/backing.hpp"
#include "os/os.hpp"

using numacma::Errc;
using numacma::backing::check_base_page;

TEST(BackingPageSize, FourKiBIsTheOnlyBasePage) {
  EXPECT_TRUE(check_base_page(4096).ok());
  for (std::size_t p : {std::size_t{16384}, std::size_t{65536}, std::size_t{8192}}) {
    auto s = check_base_page(p);
    ASSERT_FALSE(s.ok()) << p;
    EXPECT_EQ(s.error().code, Errc::unsupported);
    const std::string& m = s.error().message;
    EXPECT_NE(m.find(std::to_string(p / 1024) + " KiB"), std::string::npos) << m;
    EXPECT_NE(m.find("4 KiB"), std::string::npos) << m;
    EXPECT_NE(m.find("sim backing"), std::string::npos) << m;
  }
}

TEST(BackingPageSize, ThisHostPasses) {
  // Every machine the suite runs on (x86-64, the arm64 guests) has 4 KiB pages.
  EXPECT_EQ(numacma::os::page_size(), 4096u);
  EXPECT_TRUE(check_base_page(numacma::os::page_size()).ok());
}
