// The `numacma reserve --config FILE` format (tools/numacma/reserve_config.hpp)
// and the example shipped with the systemd unit.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>

#include "reserve_config.hpp"

using numacma::Errc;
using numacma::Policy;
using numacma::cli::parse_reserve_config;

namespace {

std::string error_of(const std::string& text) {
  auto r = parse_reserve_config(text);
  EXPECT_FALSE(r.ok()) << text;
  if (r.ok()) return "";
  EXPECT_EQ(r.error().code, Errc::invalid_argument);
  return r.error().message;
}

bool has(const std::string& hay, const std::string& needle) {
  return hay.find(needle) != std::string::npos;
}

}  // namespace

TEST(ReserveConfig, EveryKey) {
  auto r = parse_reserve_config(
      "# dpdk's pool\n"
      "params = cma=64M cma_pernuma=16M   # two kinds of areas\n"
      "\n"
      "backing=hugetlb\r\n"
      "  group=dpdk\n"
      "policy=nearest\n"
      "order_per_bit=2\n"
      "compact=yes\n"
      "kernel=7.2\n"
      "cma_size_pernuma=no\n"
      "device_area=0000:81:00.0:2:64M\n"
      "device_area=smmu:-1:4K\n");
  ASSERT_TRUE(r.ok()) << r.error().message;
  const numacma::ReserveOptions& o = r->options;
  EXPECT_EQ(o.params, "cma=64M cma_pernuma=16M");
  EXPECT_EQ(o.backing, "hugetlb");
  EXPECT_EQ(o.group, "dpdk");
  EXPECT_EQ(o.policy, Policy::nearest);
  EXPECT_EQ(o.order_per_bit, 2u);
  EXPECT_TRUE(o.compact);
  EXPECT_EQ(o.kernel, numacma::Kernel::v7_2);
  EXPECT_FALSE(o.cma_size_pernuma);
  ASSERT_EQ(o.device_areas.size(), 2u);
  EXPECT_EQ(o.device_areas[0].device, "0000:81:00.0");
  EXPECT_EQ(o.device_areas[0].node, 2);
  EXPECT_EQ(o.device_areas[0].bytes, 64u << 20);
  EXPECT_EQ(o.device_areas[1].device, "smmu");
  EXPECT_EQ(o.device_areas[1].node, -1);
  EXPECT_EQ(r->keys, (std::vector<std::string>{"params", "backing", "group", "policy", "order_per_bit",
                                               "compact", "kernel", "cma_size_pernuma", "device_area",
                                               "device_area"}));
}

TEST(ReserveConfig, EmptyKeepsTheDefaults) {
  auto r = parse_reserve_config("# nothing\n\n   \n");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->options.backing, "auto");
  EXPECT_EQ(r->options.policy, Policy::kernel);
  EXPECT_EQ(r->options.group, "");
  EXPECT_FALSE(r->options.compact);
  EXPECT_EQ(r->options.kernel, numacma::Kernel::v6_12);
  EXPECT_FALSE(r->options.cma_size_pernuma);
  EXPECT_TRUE(r->keys.empty());
  EXPECT_TRUE(parse_reserve_config("").ok());
  EXPECT_TRUE(parse_reserve_config("compact=off").ok());  // no final newline
}

TEST(ReserveConfig, ErrorsNameTheLine) {
  std::string e = error_of("params=cma=1M\n\nbakcing=anon\n");
  EXPECT_TRUE(has(e, "line 3: unknown key 'bakcing'")) << e;
  EXPECT_TRUE(has(e, "backing")) << e;  // the known keys are listed
  e = error_of("# x\nparams cma=1M\n");
  EXPECT_TRUE(has(e, "line 2: expected KEY=VALUE")) << e;
  e = error_of("# x\nbacking anon\n");
  EXPECT_TRUE(has(e, "line 2: expected KEY=VALUE")) << e;
  e = error_of("backing=anon\nbacking=sim\n");
  EXPECT_TRUE(has(e, "line 2: backing already set on line 1")) << e;
  e = error_of("params=cma=12Q\n");
  EXPECT_TRUE(has(e, "line 1: params:")) << e;
  EXPECT_TRUE(has(e, "12Q")) << e;
  e = error_of("\ngroup=\n");
  EXPECT_TRUE(has(e, "line 2: group= needs a value")) << e;
  e = error_of("device_area=a:0:4K\ndevice_area=a:1:4K\n");
  EXPECT_TRUE(has(e, "line 2: device area 'a' already declared on line 1")) << e;
  for (const char* bad : {"backing=hugetlb-3G", "policy=far", "order_per_bit=10", "order_per_bit=-1",
                          "compact=maybe", "kernel=6.1", "kernel=latest", "cma_size_pernuma=2", "group=-wheel", "group=a b", "device_area=smmu:two:4K",
                          "device_area=smmu:0", "device_area=smmu:0:9Q"}) {
    e = error_of(std::string(bad) + "\n");
    EXPECT_TRUE(has(e, "line 1: ")) << bad << ": " << e;
  }
}

TEST(ReserveConfig, TheShippedExampleParses) {
  std::ifstream f(std::string(NUMACMA_TEST_DATA) + "/../../packaging/systemd/example.conf");
  ASSERT_TRUE(f.good());
  std::stringstream text;
  text << f.rdbuf();
  auto r = parse_reserve_config(text.str());
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_FALSE(r->options.params.empty());
}
