// src/backing/cpu.cpp — what every backing does the same way: which CPU a
// request comes from (Backing::calling_cpu) and the zeroing of a new buffer
// (Backing::zero), asked of the backing layer so that src/pool makes no
// system call.
#include <cstring>

#include "backing/backing.hpp"
#include "os/os.hpp"

namespace numacma::backing {

int Backing::calling_cpu() const noexcept { return os::current_cpu(); }

void Backing::zero(void* cpu, std::size_t bytes, bool /*shared*/) noexcept { std::memset(cpu, 0, bytes); }

}  // namespace numacma::backing
