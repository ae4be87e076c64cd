// Names of the error codes (numacma/result.hpp).
#include "numacma/result.hpp"

namespace numacma {

const char* errc_name(Errc c) noexcept {
  switch (c) {
    case Errc::ok: return "ok";
    case Errc::invalid_argument: return "invalid_argument";
    case Errc::no_memory: return "no_memory";
    case Errc::not_found: return "not_found";
    case Errc::unreachable: return "unreachable";
    case Errc::not_contiguous: return "not_contiguous";
    case Errc::bad_free: return "bad_free";
    case Errc::io_error: return "io_error";
    case Errc::unsupported: return "unsupported";
    case Errc::permission: return "permission";
    case Errc::busy: return "busy";
    case Errc::corrupt: return "corrupt";
  }
  return "unknown";
}

}  // namespace numacma
