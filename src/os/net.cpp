// src/os/net.cpp — the addresses of the network interfaces (getifaddrs), for
// the check that a NIC is not in use before vfio bind takes it.
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>

#include "os/errno_error.hpp"
#include "os/os.hpp"

namespace numacma::os {

Result<std::vector<InterfaceAddress>> interface_addresses() {
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) return errno_error("getifaddrs()", errno);
  std::vector<InterfaceAddress> out;
  for (const ifaddrs* a = list; a != nullptr; a = a->ifa_next) {
    if (a->ifa_addr == nullptr || a->ifa_name == nullptr) continue;
    char text[INET6_ADDRSTRLEN] = {};
    const void* raw = nullptr;
    if (a->ifa_addr->sa_family == AF_INET)
      raw = &reinterpret_cast<const sockaddr_in*>(a->ifa_addr)->sin_addr;
    else if (a->ifa_addr->sa_family == AF_INET6)
      raw = &reinterpret_cast<const sockaddr_in6*>(a->ifa_addr)->sin6_addr;
    if (raw == nullptr || ::inet_ntop(a->ifa_addr->sa_family, raw, text, sizeof text) == nullptr) continue;
    out.push_back({a->ifa_name, text});
  }
  ::freeifaddrs(list);
  return out;
}

}  // namespace numacma::os
