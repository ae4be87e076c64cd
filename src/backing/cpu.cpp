// src/backing/cpu.cpp — what every backing does the same way: which CPU a
// request comes from (Backing::calling_cpu) and the zeroing of a new buffer
// (Backing::zero), asked of the backing layer so that src/pool makes no
// system call.
#include <cstdint>
#include <cstring>

#if defined(__x86_64__)
#include <emmintrin.h>
#endif

#include "backing/backing.hpp"
#include "os/os.hpp"

namespace numacma::backing {

int Backing::calling_cpu() const noexcept { return os::current_cpu(); }

namespace {

/** From this size on a buffer is zeroed with non-temporal stores: its lines
 *  are not read first (a cold buffer's memset is mostly reads for
 *  ownership) and do not evict the cache's working set for a buffer that
 *  the device, not the CPU, fills next. Measured on the development VM
 *  (cold buffers, 1024 live): 32 KiB 0.9 vs 1.7 us, 64 KiB 1.8 vs 4.6 us,
 *  256 KiB 9 vs 21 us; at 16 KiB the two are equal, below it memset wins. */
constexpr std::size_t kStreamFrom = 32 << 10;

void zero_streaming(void* p, std::size_t n) noexcept {
#if defined(__x86_64__)
  const __m128i z = _mm_setzero_si128();
  auto* c = static_cast<char*>(p);
  for (std::size_t i = 0; i < n; i += 64) {
    _mm_stream_si128(reinterpret_cast<__m128i*>(c + i), z);
    _mm_stream_si128(reinterpret_cast<__m128i*>(c + i + 16), z);
    _mm_stream_si128(reinterpret_cast<__m128i*>(c + i + 32), z);
    _mm_stream_si128(reinterpret_cast<__m128i*>(c + i + 48), z);
  }
  _mm_sfence();  // the zeros are in memory before anything the caller stores next
#else
  std::memset(p, 0, n);
#endif
}

}  // namespace

void Backing::zero(void* cpu, std::size_t bytes, bool /*shared*/) noexcept {
  if (bytes >= kStreamFrom && reinterpret_cast<std::uintptr_t>(cpu) % 64 == 0 && bytes % 64 == 0)
    return zero_streaming(cpu, bytes);
  std::memset(cpu, 0, bytes);
}

}  // namespace numacma::backing
