// numacma/result.hpp — errors as values.
//
// Every fallible operation in numacma returns Result<T>: either a T or an
// Error {code, message, sys_errno}. Nothing on the allocation path throws; callers test
// `ok()` (or the bool conversion) and read `error()` on failure. The message
// names what was wrong ("cma=12Q: unknown size suffix 'Q'") so that a user
// never has to guess from a bare code. An error that a system call gave
// also carries its errno, so that code deciding on it tests the number, not
// the text of strerror.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <variant>

namespace numacma {

/** Error codes, stable across releases (the C API exposes them as ints). */
enum class Errc : int {
  ok = 0,
  invalid_argument = 1,  ///< bad input: size 0, malformed parameter, bad node
  no_memory = 2,         ///< no area and no pages could serve the request
  not_found = 3,         ///< a named thing (device, area, file) does not exist
  unreachable = 4,       ///< nothing left that the device's DMA mask can reach
  not_contiguous = 5,    ///< a multi-page buffer cannot be physically contiguous
  bad_free = 6,          ///< free of a pointer/size that is not a live buffer
  io_error = 7,          ///< a system call or file read failed
  unsupported = 8,       ///< the host lacks the capability (hugepages, pagemap)
  permission = 9,        ///< the capability needs privileges the process lacks
  busy = 10,             ///< still in use (a DmaPool destroyed with live blocks)
  corrupt = 11,          ///< a shared pool's state file does not validate
};

/** Short stable name of a code ("no_memory"). */
const char* errc_name(Errc c) noexcept;

struct Error {
  Errc code = Errc::ok;
  std::string message;
  /** The errno of the system call that failed (EBUSY, ENOSPC, ...); 0 when
   *  the error did not come from a system call. */
  int sys_errno = 0;
};

inline Error make_error(Errc code, std::string message) {
  return Error{code, std::move(message)};
}

/** Either a value or an Error. Cheap to move; never throws by itself. */
template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}           // NOLINT: implicit by design
  Result(Error error) : v_(std::move(error)) {}       // NOLINT: implicit by design

  bool ok() const noexcept { return v_.index() == 0; }
  explicit operator bool() const noexcept { return ok(); }

  // REQUIRES: ok()
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  // REQUIRES: !ok()
  const Error& error() const& { return std::get<1>(v_); }
  Error&& error() && { return std::get<1>(std::move(v_)); }

 private:
  std::variant<T, Error> v_;
};

/** Result<void>: success or an Error. */
template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : err_(std::move(error)) {}     // NOLINT: implicit by design

  bool ok() const noexcept { return err_.code == Errc::ok; }
  explicit operator bool() const noexcept { return ok(); }
  const Error& error() const& { return err_; }
  Error&& error() && { return std::move(err_); }

 private:
  Error err_{};
};

using Status = Result<void>;

}  // namespace numacma
