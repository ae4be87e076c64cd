// src/os/errno_error.hpp — errno to Error, the convention stated in os.hpp.
#pragma once

#include <cerrno>
#include <cstring>
#include <string>

#include "numacma/result.hpp"

namespace numacma::os {

inline Errc errc_from_errno(int e) noexcept {
  switch (e) {
    case EPERM:
    case EACCES: return Errc::permission;
    case ENOMEM: return Errc::no_memory;
    case ENOENT: return Errc::not_found;
    case ENOSYS: return Errc::unsupported;
    case EINVAL: return Errc::invalid_argument;
    default: return Errc::io_error;
  }
}

/** "what: strerror(e)" with the code mapped from errno. */
inline Error errno_error(const std::string& what, int e) {
  return make_error(errc_from_errno(e), what + ": " + std::strerror(e));
}

}  // namespace numacma::os
