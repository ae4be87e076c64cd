// src/os/fd.cpp — see fd.hpp.
#include "os/fd.hpp"

#include <unistd.h>

namespace numacma::os {

Fd& Fd::operator=(Fd&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = o.release();
  }
  return *this;
}

Fd::~Fd() {
  if (fd_ >= 0) ::close(fd_);
}

}  // namespace numacma::os
