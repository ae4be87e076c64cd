// src/os/cpu.cpp — which CPU the calling thread runs on (the kernel's
// raw_smp_processor_id() as user space sees it: sched_getcpu, served by the
// vDSO or rseq on current kernels, so no system call on the hot path).
#include <sched.h>

#include "os/os.hpp"

namespace numacma::os {

int current_cpu() noexcept {
  const int cpu = ::sched_getcpu();
  return cpu < 0 ? -1 : cpu;
}

}  // namespace numacma::os
