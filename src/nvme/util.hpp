// nvme/util.hpp — the driver's small helpers: hex numbers and errors with
// context, shared by the queue, the controller and the self-test.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
#include <utility>

#include "numacma/numacma.hpp"

namespace numacma::nvme::detail {

inline std::string hex(std::uint64_t v) {
  char b[24];
  std::snprintf(b, sizeof b, "0x%llx", static_cast<unsigned long long>(v));
  return b;
}

inline std::string ms_text(std::chrono::milliseconds t) { return std::to_string(t.count()) + " ms"; }

inline numacma::Error err(numacma::Errc code, std::string message) {
  return numacma::make_error(code, std::move(message));
}

/** Same code, `context: ` in front of the message. */
inline numacma::Error wrap(const numacma::Error& e, const std::string& context) {
  return err(e.code, context + ": " + e.message);
}

}  // namespace numacma::nvme::detail
