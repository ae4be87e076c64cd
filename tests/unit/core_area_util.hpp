// tests/unit/core_area_util.hpp — an area's configuration and an owned Area
// over it, for the core tests.
#pragma once

#include <gtest/gtest.h>

#include <vector>

#include "core/area.hpp"

namespace numacma::testing {

inline core::AreaConfig cfg(std::uint64_t pages, std::vector<core::Segment> segs = {}, unsigned opb = 0) {
  core::AreaConfig c;
  c.name = "t";
  c.node = 1;
  c.pages = pages;
  c.segments = std::move(segs);
  c.order_per_bit = opb;
  c.cpu_base = 0x7f0000000000ULL;
  return c;
}

inline core::Area make(core::AreaConfig c) {
  auto a = core::Area::create(std::move(c));
  EXPECT_TRUE(a.ok()) << (a.ok() ? "" : a.error().message);
  return std::move(a).value();
}

}  // namespace numacma::testing
