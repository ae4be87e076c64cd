// A hand-built PoolStatus and the arm64-4n fixture topology, shared by the
// tests of `numacma status`'s renderers (status_render_test, status_svg_test).
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "numacma/shared.hpp"
#include "topology/topology.hpp"

namespace status_sample {

using namespace numacma;

inline SharedAreaStatus area(std::string name, int node, std::uint64_t pages, std::vector<SharedRun> runs) {
  SharedAreaStatus s;
  s.area.name = std::move(name);
  s.area.kind = "pernuma";
  s.area.node = node;
  s.area.backing = "hugetlb-2M";
  s.area.pages = pages;
  s.area.segments = 1;
  s.longest_segment = pages;
  for (const SharedRun& r : runs) s.area.used += r.pages;
  s.area.maxchunk = pages - s.area.used;
  s.runs = std::move(runs);
  return s;
}

/** Two holders (one dead, with a comm that needs escaping everywhere), areas
 *  on nodes 0 and 2 of the arm64-4n fixture, one of a million pages holding
 *  a single page. */
inline PoolStatus sample() {
  PoolStatus st;
  st.name = "dpdk";
  st.dir = "/run/numacma/pools/dpdk";
  st.params = "cma=64M cma_pernuma=16M";
  st.backing = "hugetlb";
  st.policy = "kernel";
  st.sysfs_root = "/sys";
  st.uid = 0;
  st.gid = 1001;
  st.mode = 0660;
  st.areas.push_back(area("reserved", 0, 16384, {{0, 512, 0}, {512, 512, 0}, {2048, 16, 1}}));
  st.areas.back().area.kind = "default";
  st.areas.back().area.alloc_pages_success = 1040;
  st.areas.back().area.alloc_pages_fail = 3;
  st.areas.back().area.release_pages_success = 7;
  st.areas.back().recoveries = 2;
  st.areas.back().reaped_pages = 64;
  st.areas.push_back(area("pernuma2", 2, 1u << 20, {{(1u << 20) - 1, 1, 0}}));
  HolderStatus a;
  a.pid = 4242;
  a.start_time = 99;
  a.comm = "l3fwd";
  a.alive = true;
  a.buffers = 3;
  a.pages = {{"reserved", 1024}, {"pernuma2", 1}};
  HolderStatus b;
  b.pid = 17;
  b.start_time = 5;
  b.comm = "ev\"il\\<x>&\n";
  b.alive = false;
  b.buffers = 1;
  b.pages = {{"reserved", 16}};
  st.holders = {a, b};
  SharedNodeStatus n0;
  n0.alloc.node = 0;
  n0.alloc.local = 5;
  n0.alloc.other_node = 1;
  n0.alloc.default_area = 2;
  n0.alloc.pages = 9;
  n0.alloc.failed = 1;
  n0.numa_hit = 1000;
  n0.numa_miss = 3;
  n0.numa_foreign = 4;
  n0.local_node = 990;
  n0.other_node = 13;
  n0.hugepages_total = 1024;
  n0.hugepages_free = 1000;
  SharedNodeStatus none;  // requests without a node, nothing readable
  none.alloc.node = kNoNode;
  none.alloc.pages = 2;
  st.nodes = {n0, none};
  return st;
}

inline topo::Topology arm64() {
  auto t = topo::Topology::from_sysfs(std::string(NUMACMA_TEST_DATA) + "/arm64-4n");
  EXPECT_TRUE(t.ok()) << (t.ok() ? "" : t.error().message);
  return std::move(t).value();
}

inline int count(const std::string& hay, const std::string& needle) {
  int n = 0;
  for (std::size_t p = hay.find(needle); p != std::string::npos; p = hay.find(needle, p + 1)) ++n;
  return n;
}

}  // namespace status_sample
