// numacma::vfio::Container (vfio_container_fixture.hpp): a device's registers:
// BARs through the mmap or pread/pwrite, config space, nothing left behind.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>

#include "vfio_container_fixture.hpp"

// ---- registers ------------------------------------------------------------------------------

TEST_F(VfioContainer, BarAccessThroughTheMmap) {
  Container& c = make();
  ASSERT_TRUE(c.attach(kA, k64));
  auto size = c.bar_size(0, 0);
  ASSERT_TRUE(size);
  EXPECT_EQ(*size, fakevfio::kBar0Bytes);
  ASSERT_TRUE(c.write32(0, 0, 0x14, 0xdeadbeef));
  auto& bar = fake_->bar0(kA);
  EXPECT_EQ(bar[0x14], 0xef);
  EXPECT_EQ(bar[0x17], 0xde);
  bar[0x20] = 0x78, bar[0x21] = 0x56, bar[0x22] = 0x34, bar[0x23] = 0x12;
  auto v = c.read32(0, 0, 0x20);
  ASSERT_TRUE(v);
  EXPECT_EQ(*v, 0x12345678u);
  ASSERT_TRUE(c.write64(0, 0, 0x3ff8, 0x0102030405060708ULL));
  auto v64 = c.read64(0, 0, 0x3ff8);
  ASSERT_TRUE(v64);
  EXPECT_EQ(*v64, 0x0102030405060708ULL);
  EXPECT_EQ(bar[0x3ff8], 0x08);
  EXPECT_EQ(fake_->preads(), 0u) << "the mapped BAR needs no system call";
  EXPECT_EQ(fake_->pwrites(), 0u);
  EXPECT_EQ(fake_->mmapped_regions(), 1u);

  EXPECT_EQ(c.read32(0, 0, 0x22).error().code, Errc::invalid_argument) << "misaligned";
  EXPECT_EQ(c.read32(0, 0, fakevfio::kBar0Bytes).error().code, Errc::invalid_argument) << "past the end";
  EXPECT_EQ(c.write64(0, 0, 0x3ffc, 1).error().code, Errc::invalid_argument);
  auto none = c.read32(0, 1, 0);
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().code, Errc::not_found);
  EXPECT_TRUE(contains(none.error().message, "has no BAR 1")) << none.error().message;
  EXPECT_EQ(c.read32(0, 6, 0).error().code, Errc::invalid_argument);
  EXPECT_EQ(c.read32(5, 0, 0).error().code, Errc::not_found);
  EXPECT_EQ(c.bar_size(0, 3).error().code, Errc::not_found);
}

TEST_F(VfioContainer, DeviceAccessIsTheDevicesOwn) {
  Container& c = make();
  ASSERT_TRUE(c.attach(kA, k64));
  EXPECT_EQ(c.access(1).error().code, Errc::not_found);
  EXPECT_EQ(c.access(-1).error().code, Errc::not_found);
  auto d = c.access(0);
  ASSERT_TRUE(d);
  EXPECT_EQ((*d)->info().bdf, c.device(0).bdf);
  ASSERT_TRUE((*d)->write32(0, 0x30, 0x11223344));
  auto v = c.read32(0, 0, 0x30);  // the by-index call reaches the same device
  ASSERT_TRUE(v);
  EXPECT_EQ(*v, 0x11223344u);
  std::uint16_t vendor = 0;
  ASSERT_TRUE((*d)->config_read(0, &vendor, sizeof vendor));
  std::uint16_t vendor_by_index = 1;
  ASSERT_TRUE(c.config_read(0, 0, &vendor_by_index, sizeof vendor_by_index));
  EXPECT_EQ(vendor, vendor_by_index);
  EXPECT_EQ((*d)->config_read(0xffffff, &vendor, sizeof vendor).error().code, Errc::invalid_argument);
}

TEST_F(VfioContainer, BarAccessThroughPreadPwriteWhenTheBarCannotBeMapped) {
  for (int variant = 0; variant < 2; ++variant) {
    SCOPED_TRACE(variant == 0 ? "no MMAP flag" : "mmap fails");
    fake_->bar0_mmap = variant == 0 ? false : true;
    fake_->map_region_fails = variant == 1;
    Container& c = make();
    ASSERT_TRUE(c.attach(kA, k64));
    const auto r0 = fake_->preads(), w0 = fake_->pwrites();
    ASSERT_TRUE(c.write32(0, 0, 0x40, 0xcafef00d));
    auto& bar = fake_->bar0(kA);
    EXPECT_EQ(bar[0x40], 0x0d);
    EXPECT_EQ(bar[0x43], 0xca);
    bar[0x44] = 0x11;
    auto v = c.read32(0, 0, 0x44);
    ASSERT_TRUE(v);
    EXPECT_EQ(*v, 0x11u);
    ASSERT_TRUE(c.write64(0, 0, 0x48, 0xa1a2a3a4a5a6a7a8ULL));
    auto v64 = c.read64(0, 0, 0x48);
    ASSERT_TRUE(v64);
    EXPECT_EQ(*v64, 0xa1a2a3a4a5a6a7a8ULL);
    EXPECT_EQ(fake_->preads() - r0, 2u);
    EXPECT_EQ(fake_->pwrites() - w0, 2u);
    EXPECT_EQ(fake_->mmapped_regions(), 0u);
    EXPECT_EQ(c.read32(0, 0, fakevfio::kBar0Bytes - 2).error().code, Errc::invalid_argument);
    c_.reset();
    EXPECT_TRUE(fake_->clean()) << fake_->describe();
  }
}

TEST_F(VfioContainer, ABarAtANonZeroRegionOffsetIsReadAtThatOffset) {
  // BAR2 lives at 2 << 40 in the device fd and cannot be mmapped.
  Container& c = make();
  ASSERT_TRUE(c.attach(kA, k64));
  auto size = c.bar_size(0, 2);
  ASSERT_TRUE(size);
  EXPECT_EQ(*size, fakevfio::kBar2Bytes);
  ASSERT_TRUE(c.write32(0, 2, 0x8, 0x600dcafe));
  auto& bar2 = fake_->bar2(kA);
  EXPECT_EQ(bar2[0x8], 0xfe);
  EXPECT_EQ(fake_->bar0(kA)[0x8], 0x00) << "not BAR0";
  bar2[0xc] = 0x42;
  auto v = c.read32(0, 2, 0xc);
  ASSERT_TRUE(v);
  EXPECT_EQ(*v, 0x42u);
  ASSERT_TRUE(c.write64(0, 2, 0x10, 0x8877665544332211ULL));
  auto v64 = c.read64(0, 2, 0x10);
  ASSERT_TRUE(v64);
  EXPECT_EQ(*v64, 0x8877665544332211ULL);
  EXPECT_EQ(bar2[0x10], 0x11);
  EXPECT_EQ(fake_->mmapped_regions(), 0u);
  EXPECT_EQ(c.read32(0, 2, fakevfio::kBar2Bytes).error().code, Errc::invalid_argument);
}

TEST_F(VfioContainer, BarAccessLeavesNothingBehindEitherWay) {
  for (bool mmap_ok : {true, false}) {
    fake_->bar0_mmap = mmap_ok;
    Container& c = make();
    ASSERT_TRUE(c.attach(kA, k64));
    ASSERT_TRUE(c.read32(0, 0, 0));
    ASSERT_TRUE(c.read32(0, 2, 0));
    c_.reset();
    EXPECT_TRUE(fake_->clean()) << fake_->describe();
  }
}

TEST_F(VfioContainer, ConfigSpaceReadAndWrite) {
  Container& c = make();
  ASSERT_TRUE(c.attach(kA, k64));
  std::uint16_t ids[2] = {0, 0};
  ASSERT_TRUE(c.config_read(0, 0, ids, 4));
  EXPECT_EQ(ids[0], fakevfio::kVendor);
  EXPECT_EQ(ids[1], fakevfio::kDeviceId);
  const std::uint16_t cmd = 0x0006;
  ASSERT_TRUE(c.config_write(0, 4, &cmd, 2));
  EXPECT_EQ(fake_->config(kA)[4], 0x06);
  std::uint16_t back = 0;
  ASSERT_TRUE(c.config_read(0, 4, &back, 2));
  EXPECT_EQ(back, 0x0006);
  std::uint8_t buf[8];
  auto past = c.config_read(0, 252, buf, 8);
  ASSERT_FALSE(past);
  EXPECT_EQ(past.error().code, Errc::invalid_argument);
  EXPECT_TRUE(contains(past.error().message, "config read past 256 bytes")) << "checked before any pread: "
                                                                             << past.error().message;
  past = c.config_write(0, 256, buf, 1);
  ASSERT_FALSE(past);
  EXPECT_TRUE(contains(past.error().message, "config write past 256 bytes")) << past.error().message;
  const std::uint64_t r0 = fake_->preads(), w0 = fake_->pwrites();
  (void)c.config_read(0, 255, buf, 2);
  EXPECT_EQ(fake_->preads(), r0);
  EXPECT_EQ(fake_->pwrites(), w0);
  EXPECT_EQ(c.config_read(3, 0, buf, 4).error().code, Errc::not_found);
}
