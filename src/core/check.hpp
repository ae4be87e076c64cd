// src/core/check.hpp — NUMACMA_CORE_REQUIRE: a caller's precondition, checked
// in debug and sanitizer builds (NUMACMA_DEBUG_CHECKS, whatever NDEBUG says),
// compiled out otherwise. The code after it must still do nothing harmful
// when the condition is false: release builds rely on that, not on the check.
#pragma once

#include <cstdio>
#include <cstdlib>

#if defined(NUMACMA_DEBUG_CHECKS) && NUMACMA_DEBUG_CHECKS
#define NUMACMA_CORE_REQUIRE(cond) \
  ((cond) ? static_cast<void>(0) : ::numacma::core::require_failed(#cond, __FILE__, __LINE__))
#else
#define NUMACMA_CORE_REQUIRE(cond) static_cast<void>(0)
#endif

namespace numacma::core {

[[noreturn]] inline void require_failed(const char* what, const char* file, int line) noexcept {
  std::fprintf(stderr, "%s:%d: numacma core: REQUIRES failed: %s\n", file, line, what);
  std::abort();
}

}  // namespace numacma::core
