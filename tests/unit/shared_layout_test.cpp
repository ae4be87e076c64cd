// The layout of a reserved pool: built, validated, every kind of damage
// rejected with its own message; the structs pinned at compile time
// (src/shared/layout.hpp); the state's offsets all in the layout.
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
  Result<std::vector<unsigned char>> img = make_layout(spec());
  EXPECT_TRUE(img.ok()) << (img ? "" : img.error().message);
  return img ? *img : std::vector<unsigned char>{};
}

std::string why(const std::vector<unsigned char>& img) {
  Status s = validate_layout(img.data(), img.size());
  EXPECT_FALSE(s.ok());
  if (s) return "";
  EXPECT_EQ(s.error().code, Errc::corrupt);
  return s.error().message;
}

void reseal(std::vector<unsigned char>& img) {  // a consistent checksum after an edit
  const std::uint64_t sum = layout_checksum(img.data(), img.size());
  std::memcpy(img.data() + offsetof(LayoutHeader, checksum), &sum, sizeof sum);
}

AreaDesc* descs(std::vector<unsigned char>& img) {
  return reinterpret_cast<AreaDesc*>(img.data() + reinterpret_cast<LayoutHeader*>(img.data())->areas_offset);
}

TEST(SharedLayout, LayoutValidatesAndReadsBack) {
  std::vector<unsigned char> img = image();
  ASSERT_FALSE(img.empty());
  Result<Layout> l = Layout::from(img.data(), img.size());
  ASSERT_TRUE(l.ok()) << l.error().message;
  EXPECT_EQ(l->areas(), 2u);
  EXPECT_EQ(field(l->hdr().name, sizeof l->hdr().name), "p");
  EXPECT_EQ(l->hdr().state_bytes % 4096, 0u);
  const core::AreaConfig c = l->area_config(0);
  EXPECT_EQ(c.name, "reserved");
  ASSERT_EQ(c.segments.size(), 2u);
  EXPECT_EQ(c.segments[1].dma_base, 0x200000000u);
  EXPECT_EQ(l->hpmap(1), (std::vector<std::uint32_t>{2, 0, 3, 1}));
  EXPECT_EQ(l->desc(0).rec_count, 4096u);
  // The state's parts lie inside it and apart from each other.
  std::vector<std::pair<std::uint64_t, std::uint64_t>> parts = {
      {l->hdr().pool_offset, sizeof(PoolState)},
      {l->hdr().holders_offset, sizeof(Holder) * 16},
      {l->hdr().nodes_offset, kCounterStripes * counter_stripe_bytes(3)}};
  EXPECT_EQ(l->hdr().nodes_offset % 64, 0u) << "each counter stripe on lines of its own";
  EXPECT_EQ(counter_stripe_bytes(3), 128u);
  for (std::uint32_t i = 0; i < 2; ++i) {
    const AreaDesc& d = l->desc(i);
    parts.push_back({d.state_offset, sizeof(AreaState)});
    parts.push_back({d.recs_offset, d.rec_count * 8});
    parts.push_back({d.bitmap_offset, d.bitmap_words * 8});
    EXPECT_EQ(d.state_offset % 64, 0u);
  }
  std::sort(parts.begin(), parts.end());
  for (std::size_t i = 0; i < parts.size(); ++i) {
    EXPECT_LE(parts[i].first + parts[i].second, l->hdr().state_bytes);
    if (i > 0) EXPECT_LE(parts[i - 1].first + parts[i - 1].second, parts[i].first);
  }
}

TEST(SharedLayout, TruncationIsRejected) {
  std::vector<unsigned char> img = image();
  img.resize(img.size() - 8);
  EXPECT_NE(why(img).find("truncated"), std::string::npos) << why(img);
  img.resize(10);
  EXPECT_NE(why(img).find("less than its"), std::string::npos) << why(img);
}

TEST(SharedLayout, BadMagicAndVersionAreRejected) {
  std::vector<unsigned char> img = image();
  img[0] = 'X';
  EXPECT_NE(why(img).find("bad magic"), std::string::npos) << why(img);
  img = image();
  reinterpret_cast<LayoutHeader*>(img.data())->version = 7;
  EXPECT_NE(why(img).find("version 7"), std::string::npos) << why(img);
}

TEST(SharedLayout, OffsetsOutOfRangeAreRejected) {
  std::vector<unsigned char> img = image();
  const std::uint64_t state_bytes = reinterpret_cast<LayoutHeader*>(img.data())->state_bytes;
  descs(img)[1].recs_offset = state_bytes - 8;  // the records would run past the state's end
  reseal(img);
  EXPECT_NE(why(img).find("area 1's records lies outside"), std::string::npos) << why(img);
  img = image();
  descs(img)[0].segments_offset = ~std::uint64_t{0} - 7;  // wraps
  reseal(img);
  EXPECT_NE(why(img).find("area 0's segments"), std::string::npos) << why(img);
  img = image();
  reinterpret_cast<LayoutHeader*>(img.data())->holders_offset = state_bytes;
  reseal(img);
  EXPECT_NE(why(img).find("holder table"), std::string::npos) << why(img);
}

TEST(SharedLayout, AnyDamageBreaksTheChecksum) {
  std::vector<unsigned char> img = image();
  img[offsetof(LayoutHeader, checksum)] ^= 1;
  EXPECT_NE(why(img).find("checksum"), std::string::npos) << why(img);
  img = image();
  descs(img)[0].note[5] ^= 0x20;
  EXPECT_NE(why(img).find("checksum"), std::string::npos) << why(img);
}

TEST(SharedLayout, ShapeErrorsAreRejected) {
  std::vector<unsigned char> img = image();
  auto* map = reinterpret_cast<std::uint32_t*>(img.data() + descs(img)[1].hpmap_offset);
  map[1] = 2;  // slot 1 repeats page 2: not a permutation
  reseal(img);
  EXPECT_NE(why(img).find("not a permutation"), std::string::npos) << why(img);
  img = image();
  auto* seg = reinterpret_cast<Seg*>(img.data() + descs(img)[0].segments_offset);
  seg[1].first_page = 1000;  // a gap
  reseal(img);
  EXPECT_NE(why(img).find("segment 1 does not fit"), std::string::npos) << why(img);
  img = image();
  std::memset(descs(img)[0].name, 'a', sizeof descs(img)[0].name);
  reseal(img);
  EXPECT_NE(why(img).find("unterminated"), std::string::npos) << why(img);
  img = image();
  descs(img)[0].bitmap_words -= 1;
  reseal(img);
  EXPECT_NE(why(img).find("bitmap size"), std::string::npos) << why(img);
}

TEST(SharedLayout, EnumCodesRoundTripAndUnknownOnesDecodeToNothing) {
  for (Policy p : {Policy::kernel, Policy::nearest}) EXPECT_EQ(decode_policy(encode_policy(p)), p);
  for (Arch a : {Arch::host, Arch::x86_64, Arch::arm64}) EXPECT_EQ(decode_arch(encode_arch(a)), a);
  for (config::AreaKind k : {config::AreaKind::default_area, config::AreaKind::pernuma, config::AreaKind::numa,
                             config::AreaKind::device})
    EXPECT_EQ(decode_area_kind(encode_area_kind(k)), k);
  for (HolderState h : {HolderState::free, HolderState::attached, HolderState::dead})
    EXPECT_EQ(decode_holder_state(encode_holder_state(h)), h);
  EXPECT_EQ(decode_flag(encode_flag(true)), true);
  EXPECT_EQ(decode_flag(encode_flag(false)), false);
  // The numbers are the file format.
  EXPECT_EQ(encode_policy(Policy::nearest), 1u);
  EXPECT_EQ(encode_arch(Arch::arm64), 2u);
  EXPECT_EQ(encode_area_kind(config::AreaKind::device), 3u);
  for (std::uint32_t bad : {4u, 99u, 0xffffffffu}) {
    EXPECT_FALSE(decode_policy(bad).has_value());
    EXPECT_FALSE(decode_arch(bad).has_value());
    EXPECT_FALSE(decode_area_kind(bad).has_value());
    EXPECT_FALSE(decode_holder_state(bad).has_value());
    EXPECT_FALSE(decode_flag(bad).has_value());
  }
}

TEST(SharedLayout, UnknownEnumValuesAreCorrupt) {
  const auto header_field = [](std::uint32_t LayoutHeader::*f, std::uint32_t v) {
    std::vector<unsigned char> img = image();
    reinterpret_cast<LayoutHeader*>(img.data())->*f = v;
    reseal(img);
    return why(img);
  };
  EXPECT_NE(header_field(&LayoutHeader::policy, 2).find("out of range"), std::string::npos);
  EXPECT_NE(header_field(&LayoutHeader::arch, 3).find("out of range"), std::string::npos);
  EXPECT_NE(header_field(&LayoutHeader::iova_mode, 2).find("out of range"), std::string::npos);
  std::vector<unsigned char> img = image();
  descs(img)[1].kind = 4;
  reseal(img);
  EXPECT_NE(why(img).find("kind out of range"), std::string::npos) << why(img);
  img = image();
  descs(img)[0].addr_iova = 7;
  reseal(img);
  EXPECT_NE(why(img).find("kind out of range"), std::string::npos) << why(img);
}

TEST(SharedLayout, SpecsThatDoNotFitAreRefused) {
  PoolSpec s = spec();
  s.areas[0].name = std::string(60, 'x');
  EXPECT_EQ(make_layout(s).error().code, Errc::invalid_argument);
  s = spec();
  s.areas[0].pages = 4095;
  s.order_per_bit = 1;
  EXPECT_FALSE(make_layout(s).ok());
  s = spec();
  s.holder_capacity = kMaxHolders + 1;
  EXPECT_FALSE(make_layout(s).ok());
}

TEST(SharedLayout, PoolNames) {
  EXPECT_TRUE(check_pool_name("nvme-queues_1.2").ok());
  for (const char* bad : {"", ".hidden", "a/b", "a b", "..", "x\n"}) EXPECT_FALSE(check_pool_name(bad).ok()) << bad;
  EXPECT_FALSE(check_pool_name(std::string(49, 'a')).ok());
}

}  // namespace
}  // namespace numacma::shared
