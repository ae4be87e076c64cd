// tests/unit/fixture_pool_options.hpp — the pool options the fixture tests
// share (pool_fixture_test.cpp, pool_address_kind_test.cpp): a small plan
// over a sysfs tree with a chosen backing.
#pragma once

#include <string>

#include "numacma/numacma.hpp"

namespace fixture_pool {

/** The 4-node arm64 fixture (tests/data/arm64-4n). */
inline const std::string kArm = std::string(NUMACMA_TEST_DATA) + "/arm64-4n";

inline bool contains(const std::string& s, const std::string& what) { return s.find(what) != std::string::npos; }

/** "cma=4M cma_pernuma=2M" with `backing` over the sysfs tree `root`. */
inline numacma::PoolOptions options(const std::string& backing, const std::string& root) {
  numacma::PoolOptions o;
  o.params = "cma=4M cma_pernuma=2M";
  o.backing = backing;
  o.sysfs_root = root;
  return o;
}

}  // namespace fixture_pool
