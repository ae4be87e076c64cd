// src/os/errno_error.hpp — errno to Error, the convention stated in os.hpp.
//
// One rule maps errno to Errc (errc_from_errno); every Error made here keeps
// the errno itself in Error::sys_errno, so that a caller deciding on it
// (EBUSY, ENOSPC) tests the number, never strerror's text. EINVAL is
// invalid_argument. A call whose EINVAL means "this kernel lacks what was
// asked" (a flag or page size it does not know) says so at that call with
// errno_error_unsupported_on_einval.
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

/** err, marked as coming from a system call that failed with errno e (for
 *  an Error whose code and wording the caller chose). */
inline Error with_errno(Error err, int e) {
  err.sys_errno = e;
  return err;
}

/** code: as the caller decides; message "what: strerror(e)"; sys_errno e. */
inline Error errno_error(Errc code, const std::string& what, int e) {
  return with_errno(make_error(code, what + ": " + std::strerror(e)), e);
}

/** "what: strerror(e)" with the code mapped from errno (errc_from_errno). */
inline Error errno_error(const std::string& what, int e) { return errno_error(errc_from_errno(e), what, e); }

/** For a call whose EINVAL means a capability this kernel lacks:
 *  EINVAL -> Errc::unsupported, any other errno as errno_error. */
inline Error errno_error_unsupported_on_einval(const std::string& what, int e) {
  return errno_error(e == EINVAL ? Errc::unsupported : errc_from_errno(e), what, e);
}

}  // namespace numacma::os
