// src/shared/protocol.hpp — what a process and a pool's keeper say to each
// other over the pool's socket (<run dir>/pools/NAME/sock, SOCK_SEQPACKET).
// Pure data: no OS.
//
//   client                               keeper
//   Request{attach, comm}         ->     admits (uid: owner, root or a member
//                                        of the pool's group), takes a slot
//                                 <-     Reply{ok, slot, fds: layout, state,
//                                        one per area} (+ FdBatch messages
//                                        when more than kFdsPerMessage)
//   ... the connection stays open: the keeper sees the process go when the
//   kernel closes it (exit, kill, any PID namespace) ...
//   Request{detach}               ->     gives the slot's buffers back
//                                 <-     Reply{ok, report}
//   Request{status}               ->     anyone who can reach the socket
//                                 <-     Reply{ok, fds: layout, state, both read-only}
//   Request{reap}                 ->     Reply{ok, report}
//   Request{release, force}       ->     owner or root; refused (busy) while
//                                        a live holder has buffers unless force
//                                 <-     Reply{ok}, then the keeper removes the
//                                        pool's directory and exits
//
// Every field the keeper reads from a request is checked (it is the other
// side of a trust boundary); the client checks the keeper's uid
// (SO_PEERCRED) before it believes a reply.
#pragma once

#include <cstdint>
#include <cstring>

namespace numacma::shared {

inline constexpr std::uint32_t kProtoMagic = 0x4b4d434e;  // "NCMK"
inline constexpr std::uint32_t kProtoVersion = 1;
inline constexpr std::uint32_t kFdsPerMessage = 200;

enum class ReqOp : std::uint32_t { attach = 1, detach = 2, status = 3, reap = 4, release = 5 };

struct Request {
  std::uint32_t magic = kProtoMagic;
  std::uint32_t version = kProtoVersion;
  std::uint32_t op = 0;       ///< ReqOp
  std::uint32_t force = 0;    ///< release: 1 = even while live holders have buffers
  char comm[16] = {};         ///< the client's command name (shown in status)
};
static_assert(sizeof(Request) == 32);

struct ReapCounts {
  std::uint64_t dead_holders = 0, buffers = 0, pages = 0, recovered_locks = 0, ns = 0;
};

struct Reply {
  std::uint32_t magic = kProtoMagic;
  std::uint32_t version = kProtoVersion;
  std::int32_t code = 0;      ///< numacma::Errc
  std::uint32_t slot = 0;     ///< attach: the holder slot
  std::uint32_t nfds = 0;     ///< descriptors that come with this reply and its batches
  std::uint32_t keeper_pid = 0;
  ReapCounts reap;
  char message[984] = {};
};
static_assert(sizeof(Reply) == 1048);

struct FdBatch {
  std::uint32_t magic = kProtoMagic;
  std::uint32_t first = 0;    ///< index of the first descriptor in this batch
};

inline void set_text(char* dst, std::size_t n, const char* src, std::size_t len) {
  const std::size_t k = len < n - 1 ? len : n - 1;
  std::memcpy(dst, src, k);
  std::memset(dst + k, 0, n - k);
}

}  // namespace numacma::shared
