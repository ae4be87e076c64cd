// tests/unit/config_parse_test.cpp — parse_size (the kernel's memparse) and
// parse_params (cma=, cma_pernuma=, numa_cma=): what is accepted, what each
// malformed input is refused with, and that the message names the bad token.
#include <cstdint>
#include <limits>
#include <string>

#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include "config/params.hpp"

namespace numacma::config {
namespace {

constexpr std::uint64_t kMax = std::numeric_limits<std::uint64_t>::max();

std::uint64_t size_ok(const std::string& s) {
  auto r = parse_size(s);
  EXPECT_TRUE(r.ok()) << "'" << s << "': " << (r.ok() ? "" : r.error().message);
  return r.ok() ? *r : 0;
}

/** Asserts that s is refused and returns the message. */
std::string size_err(const std::string& s) {
  auto r = parse_size(s);
  EXPECT_FALSE(r.ok()) << "'" << s << "' was accepted as " << (r.ok() ? *r : 0);
  if (r.ok()) return "";
  EXPECT_EQ(r.error().code, Errc::invalid_argument);
  EXPECT_NE(r.error().message.find("'" + s + "'"), std::string::npos) << r.error().message;
  return r.error().message;
}

TEST(ParseSize, PlainDecimal) {
  EXPECT_EQ(size_ok("0"), 0u);
  EXPECT_EQ(size_ok("1"), 1u);
  EXPECT_EQ(size_ok("4096"), 4096u);
  EXPECT_EQ(size_ok("123456789"), 123456789u);
}

TEST(ParseSize, EverySuffixBothCases) {
  const char* lower = "kmgtpe";
  const char* upper = "KMGTPE";
  for (int i = 0; i < 6; ++i) {
    const std::uint64_t want = std::uint64_t{3} << (10 * (i + 1));
    EXPECT_EQ(size_ok(std::string("3") + lower[i]), want) << lower[i];
    EXPECT_EQ(size_ok(std::string("3") + upper[i]), want) << upper[i];
  }
  EXPECT_EQ(size_ok("64M"), 64u << 20);
  EXPECT_EQ(size_ok("1G"), 1u << 30);
  EXPECT_EQ(size_ok("0K"), 0u);
}

TEST(ParseSize, HexAndOctalLikeSimpleStrtoull) {
  EXPECT_EQ(size_ok("0x10"), 16u);
  EXPECT_EQ(size_ok("0X10"), 16u);
  EXPECT_EQ(size_ok("0xfF"), 255u);
  EXPECT_EQ(size_ok("0x1000K"), 0x1000u << 10);
  EXPECT_EQ(size_ok("0x1g"), 1u << 30);  // 'g' is not a hex digit: a suffix
  EXPECT_EQ(size_ok("0x1e"), 0x1eu);     // 'e' is a hex digit, as in the kernel
  EXPECT_EQ(size_ok("1e"), std::uint64_t{1} << 60);  // in decimal it is the suffix
  EXPECT_EQ(size_ok("010"), 8u);
  EXPECT_EQ(size_ok("0777"), 0777u);
  EXPECT_EQ(size_ok("010M"), 8u << 20);
  EXPECT_EQ(size_ok("00"), 0u);
}

TEST(ParseSize, BoundaryOf64Bits) {
  EXPECT_EQ(size_ok("18446744073709551615"), kMax);
  EXPECT_EQ(size_ok("0xffffffffffffffff"), kMax);
  EXPECT_EQ(size_ok("01777777777777777777777"), kMax);
  EXPECT_NE(size_err("18446744073709551616").find("64 bits"), std::string::npos);
  size_err("0x10000000000000000");
  size_err("02000000000000000000000");
  size_err("99999999999999999999999999");
}

TEST(ParseSize, SuffixShiftOverflow) {
  EXPECT_EQ(size_ok("15E"), std::uint64_t{15} << 60);
  EXPECT_NE(size_err("16E").find("64 bits"), std::string::npos);
  EXPECT_NE(size_err("16e").find("64 bits"), std::string::npos);
  EXPECT_EQ(size_ok("16383P"), std::uint64_t{16383} << 50);
  size_err("16384P");
  EXPECT_EQ(size_ok("17179869183G"), std::uint64_t{17179869183} << 30);
  size_err("17179869184G");
  EXPECT_EQ(size_ok("18014398509481983K"), std::uint64_t{18014398509481983} << 10);
  size_err("18014398509481984K");
}

TEST(ParseSize, Malformed) {
  EXPECT_NE(size_err("").find("empty"), std::string::npos);
  EXPECT_NE(size_err("K").find("no digits"), std::string::npos);
  EXPECT_NE(size_err("M").find("no digits"), std::string::npos);
  size_err("-1");
  size_err("+1");
  size_err(" 1");
  size_err("1 ");
  EXPECT_NE(size_err("12Q").find("'Q'"), std::string::npos);
  EXPECT_NE(size_err("4MB").find("'B'"), std::string::npos);
  EXPECT_NE(size_err("4KK").find("'K'"), std::string::npos);
  EXPECT_NE(size_err("1.5G").find("'.5G'"), std::string::npos);
  EXPECT_NE(size_err("0x").find("0x"), std::string::npos);
  size_err("0xg");
  EXPECT_NE(size_err("08").find("'8'"), std::string::npos);
  EXPECT_NE(size_err("09M").find("'9'"), std::string::npos);
}

RC_GTEST_PROP(ParseSizeProp, DecimalAndHexRoundTrip, (std::uint64_t v)) {
  RC_ASSERT(*parse_size(std::to_string(v)) == v);
  char hex[32];
  std::snprintf(hex, sizeof hex, "0x%llx", static_cast<unsigned long long>(v));
  RC_ASSERT(*parse_size(hex) == v);
}

RC_GTEST_PROP(ParseSizeProp, SuffixIsShiftOrOverflow, (std::uint64_t v)) {
  const std::string suffixes = "KMGTPE";
  const auto i = *rc::gen::inRange<std::size_t>(0, suffixes.size());
  const unsigned shift = 10 * static_cast<unsigned>(i + 1);
  auto r = parse_size(std::to_string(v) + suffixes[i]);
  if (v <= (kMax >> shift)) {
    RC_ASSERT(r.ok());
    RC_ASSERT(*r == (v << shift));
  } else {
    RC_ASSERT(!r.ok());
  }
}

// ---- parse_params -----------------------------------------------------------

Params params_ok(const std::string& s) {
  auto r = parse_params(s);
  EXPECT_TRUE(r.ok()) << "'" << s << "': " << (r.ok() ? "" : r.error().message);
  return r.ok() ? *r : Params{};
}

/** Asserts that s is refused with a message that quotes `token`. */
std::string params_err(const std::string& s, const std::string& token) {
  auto r = parse_params(s);
  EXPECT_FALSE(r.ok()) << "'" << s << "' was accepted";
  if (r.ok()) return "";
  EXPECT_EQ(r.error().code, Errc::invalid_argument);
  EXPECT_NE(r.error().message.find("'" + token + "'"), std::string::npos)
      << "message does not name '" << token << "': " << r.error().message;
  return r.error().message;
}

TEST(ParseParams, EmptyMeansNoAreas) {
  for (const char* s : {"", " ", "\t\n  "}) {
    const Params p = params_ok(s);
    EXPECT_FALSE(p.cma_bytes);
    EXPECT_FALSE(p.pernuma_bytes);
    EXPECT_TRUE(p.numa_cma.empty());
  }
}

TEST(ParseParams, AllThreeKeys) {
  const Params p = params_ok("cma=64M cma_pernuma=16M numa_cma=1:32M,3:8M");
  ASSERT_TRUE(p.cma_bytes);
  EXPECT_EQ(*p.cma_bytes, 64u << 20);
  ASSERT_TRUE(p.pernuma_bytes);
  EXPECT_EQ(*p.pernuma_bytes, 16u << 20);
  ASSERT_EQ(p.numa_cma.size(), 2u);
  EXPECT_EQ(p.numa_cma[0], (std::pair<int, std::uint64_t>{1, 32u << 20}));
  EXPECT_EQ(p.numa_cma[1], (std::pair<int, std::uint64_t>{3, 8u << 20}));
}

TEST(ParseParams, WhitespaceAnyOrderAndZero) {
  const Params p = params_ok("\tnuma_cma=0:0x1000 \n cma=0   cma_pernuma=1G\n");
  EXPECT_EQ(*p.cma_bytes, 0u);
  EXPECT_EQ(*p.pernuma_bytes, 1u << 30);
  ASSERT_EQ(p.numa_cma.size(), 1u);
  EXPECT_EQ(p.numa_cma[0], (std::pair<int, std::uint64_t>{0, 0x1000}));
}

TEST(ParseParams, NumaCmaKeepsOrderAndNodeRange) {
  const Params p = params_ok("numa_cma=1023:4K,0:8K,7:0");
  ASSERT_EQ(p.numa_cma.size(), 3u);
  EXPECT_EQ(p.numa_cma[0].first, 1023);
  EXPECT_EQ(p.numa_cma[1].first, 0);
  EXPECT_EQ(p.numa_cma[2].first, 7);
  EXPECT_EQ(p.numa_cma[2].second, 0u);
}

TEST(ParseParams, UnknownKeyMissingEqualsEmptyValue) {
  EXPECT_NE(params_err("cma=4M foo=1", "foo=1").find("unknown key 'foo'"), std::string::npos);
  params_err("CMA=4M", "CMA=4M");
  params_err("=4M", "=4M");
  EXPECT_NE(params_err("cma=4M quiet", "quiet").find("key=value"), std::string::npos);
  params_err("cma", "cma");
  EXPECT_NE(params_err("cma=", "cma=").find("empty value"), std::string::npos);
  params_err("cma_pernuma=", "cma_pernuma=");
  params_err("numa_cma=", "numa_cma=");
}

TEST(ParseParams, DuplicateKey) {
  EXPECT_NE(params_err("cma=4M cma=8M", "cma=8M").find("duplicate"), std::string::npos);
  params_err("cma_pernuma=1M cma=1M cma_pernuma=2M", "cma_pernuma=2M");
  params_err("numa_cma=0:1M numa_cma=1:1M", "numa_cma=1:1M");
}

TEST(ParseParams, BadSizes) {
  EXPECT_NE(params_err("cma=12Q", "cma=12Q").find("'Q'"), std::string::npos);
  params_err("cma_pernuma=16E", "cma_pernuma=16E");
  params_err("cma_pernuma=-1", "cma_pernuma=-1");
  params_err("cma_pernuma=4M@0x1000", "cma_pernuma=4M@0x1000");
}

TEST(ParseParams, PhysicalBaseIsRefused) {
  for (const char* s : {"cma=64M@0x100000000", "cma=64M@4G-8G", "cma=64M@0", "cma=@4G"}) {
    const std::string msg = params_err(s, s);
    EXPECT_NE(msg.find("a physical base cannot be chosen from user space"), std::string::npos)
        << msg;
  }
}

TEST(ParseParams, MalformedNumaCma) {
  EXPECT_NE(params_err("numa_cma=1:", "numa_cma=1:").find("missing size"), std::string::npos);
  EXPECT_NE(params_err("numa_cma=x:4M", "numa_cma=x:4M").find("'x'"), std::string::npos);
  EXPECT_NE(params_err("numa_cma=:4M", "numa_cma=:4M").find("missing node"), std::string::npos);
  EXPECT_NE(params_err("numa_cma=1:4M,", "numa_cma=1:4M,").find("empty entry"),
            std::string::npos);
  params_err("numa_cma=,1:4M", "numa_cma=,1:4M");
  params_err("numa_cma=1:4M,,2:4M", "numa_cma=1:4M,,2:4M");
  params_err("numa_cma=1", "numa_cma=1");
  params_err("numa_cma=1:4M,2", "numa_cma=1:4M,2");
  params_err("numa_cma=-1:4M", "numa_cma=-1:4M");
  EXPECT_NE(params_err("numa_cma=1024:4M", "numa_cma=1024:4M").find("out of range"),
            std::string::npos);
  params_err("numa_cma=99999999999999999999:4M", "numa_cma=99999999999999999999:4M");
  EXPECT_NE(params_err("numa_cma=1:4Q", "numa_cma=1:4Q").find("'Q'"), std::string::npos);
  // Where the kernel's early_numa_cma stops parsing silently (junk, a node
  // >= MAX_NUMNODES, a suffix followed by junk) and keeps what came before,
  // numacma refuses the whole token: nothing after it is dropped unseen.
  params_err("numa_cma=1:4M,x:8M", "numa_cma=1:4M,x:8M");
  params_err("numa_cma=1:4M,1024:8M", "numa_cma=1:4M,1024:8M");
  params_err("numa_cma=1:4MB,2:8M", "numa_cma=1:4MB,2:8M");
  params_err("numa_cma=1:4M;2:8M", "numa_cma=1:4M;2:8M");
}

TEST(ParseParams, NumaCmaNodeGivenTwiceTakesTheLastSizeAsTheKernelDoes) {
  // early_numa_cma: numa_cma_size[nid] = size, so the last size for a node
  // wins. The node keeps the place of its first entry (one area per node, the
  // plan's order unchanged) and a note names the size that was overridden.
  Params p = params_ok("numa_cma=1:4M,1:8M");
  ASSERT_EQ(p.numa_cma.size(), 1u);
  EXPECT_EQ(p.numa_cma[0], (std::pair<int, std::uint64_t>{1, 8u << 20}));
  ASSERT_EQ(p.notes.size(), 1u);
  EXPECT_EQ(p.notes[0], "numa_cma: node 1 given twice: 4 MiB overridden by 8 MiB, as the kernel does");

  p = params_ok("numa_cma=1:4M,2:1M,1:8M,3:64K");
  ASSERT_EQ(p.numa_cma.size(), 3u);
  EXPECT_EQ(p.numa_cma[0], (std::pair<int, std::uint64_t>{1, 8u << 20}));
  EXPECT_EQ(p.numa_cma[1], (std::pair<int, std::uint64_t>{2, 1u << 20}));
  EXPECT_EQ(p.numa_cma[2], (std::pair<int, std::uint64_t>{3, 64u << 10}));
  EXPECT_EQ(p.notes.size(), 1u);

  // A later 0 turns the node's area off, as numa_cma_size[nid] = 0 does.
  p = params_ok("numa_cma=2:4M,2:0");
  ASSERT_EQ(p.numa_cma.size(), 1u);
  EXPECT_EQ(p.numa_cma[0].second, 0u);
  ASSERT_EQ(p.notes.size(), 1u);
  EXPECT_EQ(p.notes[0], "numa_cma: node 2 given twice: 4 MiB overridden by 0 B, as the kernel does");

  // Three times: a note for each override, the last size stays.
  p = params_ok("numa_cma=0:1M,0:0x3000,0:2G");
  ASSERT_EQ(p.numa_cma.size(), 1u);
  EXPECT_EQ(p.numa_cma[0].second, 2u << 30);
  ASSERT_EQ(p.notes.size(), 2u);
  EXPECT_EQ(p.notes[0], "numa_cma: node 0 given twice: 1 MiB overridden by 12 KiB, as the kernel does");
  EXPECT_EQ(p.notes[1], "numa_cma: node 0 given twice: 12 KiB overridden by 2 GiB, as the kernel does");

  EXPECT_TRUE(params_ok("cma=4M numa_cma=1:4M,2:4M").notes.empty());
}

TEST(ParseParams, NumaCmaNodeGivenTwicePlansOneAreaWithTheLastSize) {
  std::vector<topo::NodeInfo> nodes(3);
  for (int i = 0; i < 3; ++i) {
    nodes[static_cast<std::size_t>(i)].id = i;
    nodes[static_cast<std::size_t>(i)].has_memory = true;
    nodes[static_cast<std::size_t>(i)].mem.total_bytes = std::uint64_t{1} << 30;
  }
  const topo::Topology t = topo::Topology::from_parts(nodes, {});
  // The same plan, areas in the same order, as if each node were given once
  // with its last size.
  const ReservationPlan twice = make_plan(params_ok("numa_cma=2:4M,1:2M,2:8M"), t);
  const ReservationPlan once = make_plan(params_ok("numa_cma=2:8M,1:2M"), t);
  ASSERT_EQ(twice.areas.size(), 2u);
  ASSERT_EQ(once.areas.size(), 2u);
  for (std::size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(twice.areas[i].name, once.areas[i].name) << i;
    EXPECT_EQ(twice.areas[i].node, once.areas[i].node) << i;
    EXPECT_EQ(twice.areas[i].bytes, once.areas[i].bytes) << i;
  }
  for (const PlannedArea& a : twice.areas)
    EXPECT_EQ(a.bytes, a.name == "numa2" ? 8u << 20 : 2u << 20) << a.name;
  EXPECT_TRUE(make_plan(params_ok("numa_cma=2:4M,2:0"), t).areas.empty());
}

// The messages as docs/params.md lists them: if one changes, change both.
TEST(ParseParams, ExactMessagesMatchTheDocs) {
  const std::pair<const char*, const char*> cases[] = {
      {"foo=1", "'foo=1': unknown key 'foo' (known: cma, cma_pernuma, numa_cma)"},
      {"quiet", "'quiet': expected key=value (cma=, cma_pernuma= or numa_cma=)"},
      {"cma=", "'cma=': empty value"},
      {"cma=4M cma=8M", "'cma=8M': duplicate key 'cma' (first given as 'cma=4M')"},
      {"cma=12Q", "'cma=12Q': size '12Q': unknown suffix 'Q'"},
      {"cma=4MB", "'cma=4MB': size '4MB': unexpected 'B' after the suffix 'M'"},
      {"cma=08", "'cma=08': size '08': digit '8' in an octal number (a leading 0 means octal)"},
      {"cma=0x", "'cma=0x': size '0x': '0x' is not followed by a hex digit"},
      {"cma=K", "'cma=K': size 'K': no digits"},
      {"cma=-1", "'cma=-1': size '-1': no digits"},
      {"cma=16E", "'cma=16E': size '16E': does not fit in 64 bits"},
      {"cma=18446744073709551616",
       "'cma=18446744073709551616': size '18446744073709551616': does not fit in 64 bits"},
      {"cma=64M@4G-8G",
       "'cma=64M@4G-8G': '@<base>' is not supported: a physical base cannot be chosen from "
       "user space (give only the size)"},
      {"numa_cma=1:", "'numa_cma=1:': entry '1:': missing size after ':'"},
      {"numa_cma=:4M", "'numa_cma=:4M': missing node before ':'"},
      {"numa_cma=x:4M", "'numa_cma=x:4M': node 'x' is not a decimal number"},
      {"numa_cma=1024:4M", "'numa_cma=1024:4M': node '1024' is out of range 0..1023"},
      {"numa_cma=1", "'numa_cma=1': entry '1' is not <node>:<size>"},
      {"numa_cma=1:4M,", "'numa_cma=1:4M,': empty entry after the last ','"},
      {"numa_cma=1:4M,,2:4M", "'numa_cma=1:4M,,2:4M': empty entry (expected <node>:<size>)"},
  };
  for (const auto& [input, message] : cases) {
    auto r = parse_params(input);
    ASSERT_FALSE(r.ok()) << input;
    EXPECT_EQ(r.error().message, message) << input;
  }
}

RC_GTEST_PROP(ParseParamsProp, NeverFailsWithoutAMessage, (std::string s)) {
  auto r = parse_params(s);
  if (!r.ok()) {
    RC_ASSERT(r.error().code == Errc::invalid_argument);
    RC_ASSERT(!r.error().message.empty());
  }
}

TEST(AreaKindName, AllKinds) {
  EXPECT_STREQ(area_kind_name(AreaKind::default_area), "default");
  EXPECT_STREQ(area_kind_name(AreaKind::pernuma), "pernuma");
  EXPECT_STREQ(area_kind_name(AreaKind::numa), "numa");
  EXPECT_STREQ(area_kind_name(AreaKind::device), "device");
}

}  // namespace
}  // namespace numacma::config
