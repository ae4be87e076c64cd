// The state file of a reserved pool: built, validated, and every kind of
// damage rejected with its own message (src/shared/layout.hpp).
#include <gtest/gtest.h>

#include <cstring>

#include "shared/layout.hpp"

namespace numacma::shared {
namespace {

PoolSpec spec() {
  PoolSpec s;
  s.name = "p";
  s.params = "cma=16M cma_pernuma=8M";
  s.backing = "sim";
  s.sysfs_root = "/sys";
  s.node_slots = 3;
  s.holder_capacity = 16;
  AreaSpec a;
  a.name = "reserved";
  a.kind_name = "sim";
  a.path = "/run/numacma/pools/p/reserved.mem";
  a.node = 0;
  a.pages = 4096;
  a.mapped_bytes = 4096 * 4096;
  a.segments = {{0, 1024, 0x100000000}, {1024, 3072, 0x200000000}};
  s.areas.push_back(a);
  AreaSpec h = a;
  h.name = "pernuma1";
  h.kind_name = "hugetlb-2M";
  h.node = 1;
  h.pages = 2048;
  h.mapped_bytes = 2048 * 4096;
  h.huge_page_bytes = 2 << 20;
  h.hpmap = {2, 0, 3, 1};
  h.segments = {{0, 2048, 0x300000000}};
  s.areas.push_back(h);
  return s;
}

std::vector<unsigned char> image() {
  Result<std::vector<unsigned char>> img = make_image(spec());
  EXPECT_TRUE(img.ok()) << (img ? "" : img.error().message);
  return img ? *img : std::vector<unsigned char>{};
}

std::string why(const std::vector<unsigned char>& img) {
  Status s = validate(img.data(), img.size());
  EXPECT_FALSE(s.ok());
  if (s) return "";
  EXPECT_EQ(s.error().code, Errc::corrupt);
  return s.error().message;
}

void reseal(std::vector<unsigned char>& img) {  // a consistent checksum after an edit
  const std::uint64_t sum = fixed_checksum(img.data(), header(img.data()).fixed_bytes);
  std::memcpy(img.data() + offsetof(FileHeader, checksum), &sum, sizeof sum);
}

TEST(SharedLayout, ImageValidatesAndReadsBack) {
  std::vector<unsigned char> img = image();
  ASSERT_FALSE(img.empty());
  EXPECT_TRUE(validate(img.data(), img.size()).ok());
  EXPECT_EQ(img.size() % 4096, 0u);
  const FileHeader& h = header(img.data());
  EXPECT_EQ(h.area_count, 2u);
  EXPECT_EQ(field(h.name, sizeof h.name), "p");
  const core::AreaConfig c = area_config(img.data(), 0);
  EXPECT_EQ(c.name, "reserved");
  ASSERT_EQ(c.segments.size(), 2u);
  EXPECT_EQ(c.segments[1].dma_base, 0x200000000u);
  EXPECT_EQ(area_desc(img.data(), 1).hpmap_count, 4u);
  EXPECT_EQ(area_desc(img.data(), 0).rec_count, 4096u);
  // The mutable part starts zero: no holder, no record.
  const AreaDesc& d = area_desc(img.data(), 0);
  for (std::uint64_t b = 0; b < d.rec_count; ++b)
    ASSERT_EQ(at<Rec>(img.data(), d.recs_offset)[b].holder, 0u);
}

TEST(SharedLayout, TruncationIsRejected) {
  std::vector<unsigned char> img = image();
  img.resize(img.size() - 4096);
  EXPECT_NE(why(img).find("truncated"), std::string::npos) << why(img);
  img.resize(10);
  EXPECT_NE(why(img).find("less than its"), std::string::npos) << why(img);
}

TEST(SharedLayout, BadMagicIsRejected) {
  std::vector<unsigned char> img = image();
  img[0] = 'X';
  EXPECT_NE(why(img).find("bad magic"), std::string::npos) << why(img);
}

TEST(SharedLayout, BadVersionIsRejected) {
  std::vector<unsigned char> img = image();
  reinterpret_cast<FileHeader*>(img.data())->version = 7;
  EXPECT_NE(why(img).find("version 7"), std::string::npos) << why(img);
}

TEST(SharedLayout, OffsetOutOfRangeIsRejected) {
  std::vector<unsigned char> img = image();
  AreaDesc* d = reinterpret_cast<AreaDesc*>(img.data() + header(img.data()).areas_offset);
  d[1].recs_offset = img.size() - 8;  // the records would run past the end
  reseal(img);
  EXPECT_NE(why(img).find("area 1's records at offset"), std::string::npos) << why(img);
  img = image();
  d = reinterpret_cast<AreaDesc*>(img.data() + header(img.data()).areas_offset);
  d[0].segments_offset = ~std::uint64_t{0} - 7;  // wraps
  reseal(img);
  EXPECT_NE(why(img).find("area 0's segments"), std::string::npos) << why(img);
}

TEST(SharedLayout, FlippedChecksumIsRejected) {
  std::vector<unsigned char> img = image();
  img[offsetof(FileHeader, checksum)] ^= 1;
  EXPECT_NE(why(img).find("checksum"), std::string::npos) << why(img);
  // Damage anywhere in the fixed part, the checksum left alone: caught too.
  img = image();
  AreaDesc* d = reinterpret_cast<AreaDesc*>(img.data() + header(img.data()).areas_offset);
  d[0].note[5] ^= 0x20;
  EXPECT_NE(why(img).find("checksum"), std::string::npos) << why(img);
}

TEST(SharedLayout, ShapeErrorsAreRejected) {
  std::vector<unsigned char> img = image();
  AreaDesc* d = reinterpret_cast<AreaDesc*>(img.data() + header(img.data()).areas_offset);
  std::uint32_t* map = reinterpret_cast<std::uint32_t*>(img.data() + d[1].hpmap_offset);
  map[1] = 2;  // slot 1 repeats page 2: not a permutation
  reseal(img);
  EXPECT_NE(why(img).find("not a permutation"), std::string::npos) << why(img);
  img = image();
  d = reinterpret_cast<AreaDesc*>(img.data() + header(img.data()).areas_offset);
  Seg* seg = reinterpret_cast<Seg*>(img.data() + d[0].segments_offset);
  seg[1].first_page = 1000;  // a gap
  reseal(img);
  EXPECT_NE(why(img).find("segment 1 does not fit"), std::string::npos) << why(img);
  img = image();
  d = reinterpret_cast<AreaDesc*>(img.data() + header(img.data()).areas_offset);
  d[0].name[sizeof d[0].name - 1] = 'x';
  std::memset(d[0].name, 'a', sizeof d[0].name);
  reseal(img);
  EXPECT_NE(why(img).find("unterminated"), std::string::npos) << why(img);
}

TEST(SharedLayout, SpecsThatDoNotFitAreRefused) {
  PoolSpec s = spec();
  s.areas[0].path = std::string(300, 'x');
  EXPECT_EQ(make_image(s).error().code, Errc::invalid_argument);
  s = spec();
  s.areas[0].pages = 4095;
  s.order_per_bit = 1;
  EXPECT_FALSE(make_image(s).ok());
}

TEST(SharedLayout, PoolNames) {
  EXPECT_TRUE(check_pool_name("nvme-queues_1.2").ok());
  for (const char* bad : {"", ".hidden", "a/b", "a b", "..", "x\n"}) EXPECT_FALSE(check_pool_name(bad).ok()) << bad;
  EXPECT_FALSE(check_pool_name(std::string(49, 'a')).ok());
}

}  // namespace
}  // namespace numacma::shared
