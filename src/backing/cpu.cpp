// src/backing/cpu.cpp — Backing::calling_cpu: the pool asks the backing layer
// which CPU a request comes from, so that src/pool makes no system call.
#include "backing/backing.hpp"
#include "os/os.hpp"

namespace numacma::backing {

int Backing::calling_cpu() const noexcept { return os::current_cpu(); }

}  // namespace numacma::backing
