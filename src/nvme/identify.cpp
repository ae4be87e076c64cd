// nvme/identify.cpp — see identify.hpp.
#include "nvme/identify.hpp"

#include <algorithm>

#include "nvme/util.hpp"

namespace numacma::nvme {

using detail::err;
using detail::hex;
using numacma::Errc;
using numacma::Result;
using std::chrono::milliseconds;

namespace {

/** An Identify string field: ASCII, space padded. */
std::string ascii_field(const std::uint8_t* p, std::size_t n) {
  std::string s;
  for (std::size_t i = 0; i < n; ++i) s += (p[i] >= 0x20 && p[i] < 0x7f) ? char(p[i]) : ' ';
  while (!s.empty() && s.back() == ' ') s.pop_back();
  return s;
}

}  // namespace

Result<ControllerIdentity> parse_identify_controller(const IdentifyController& id, std::uint32_t nsid) {
  ControllerIdentity c;
  c.serial = ascii_field(id.sn, sizeof id.sn);
  c.model = ascii_field(id.mn, sizeof id.mn);
  c.firmware = ascii_field(id.fr, sizeof id.fr);
  const unsigned mdts = id.mdts;  // 2^MDTS minimum pages; 0 = no limit
  const std::uint8_t sqes = id.sqes, cqes = id.cqes;
  if (sqes != 0 && ((sqes & 0xf) > 6 || (sqes >> 4) < 6))
    return err(Errc::unsupported, "the controller does not take 64-byte SQ entries (SQES=" + hex(sqes) + ")");
  if (cqes != 0 && ((cqes & 0xf) > 4 || (cqes >> 4) < 4))
    return err(Errc::unsupported, "the controller does not take 16-byte CQ entries (CQES=" + hex(cqes) + ")");
  if (nsid > id.nn)
    return err(Errc::not_found, "namespace " + std::to_string(nsid) + " does not exist (the controller has " +
                                    std::to_string(id.nn) + ")");
  c.max_transfer = kMaxPrpTransfer;
  if (mdts != 0 && mdts < 20) c.max_transfer = std::min<std::size_t>(c.max_transfer, kPage << mdts);
  // RTD3E (microseconds) bounds the shutdown; Linux clamps it the same way.
  c.shutdown_timeout = std::clamp(milliseconds(id.rtd3e / 1000), milliseconds(5000), milliseconds(60000));
  return c;
}

Result<NamespaceFormat> parse_identify_namespace(const IdentifyNamespace& ns, const std::string& what,
                                                 std::size_t max_transfer) {
  NamespaceFormat f;
  f.nsze = ns.nsze;
  const unsigned nlbaf = ns.nlbaf;  // 0's based
  const unsigned fmt = flbas_format(ns.flbas);
  if (fmt > nlbaf || fmt >= 64)
    return err(Errc::unsupported, what + ": FLBAS names format " + std::to_string(fmt) + " of " +
                                      std::to_string(nlbaf + 1));
  const unsigned ms = ns.lbaf[fmt].ms;        // metadata bytes per LBA
  const unsigned lbads = ns.lbaf[fmt].lbads;  // LBA data size, 2^n
  if (f.nsze == 0) return err(Errc::not_found, what + " is inactive (NSZE 0)");
  if (lbads < 9 || lbads > 16)
    return err(Errc::unsupported, what + ": LBA data size 2^" + std::to_string(lbads) + " is not usable");
  if (ms != 0)
    return err(Errc::unsupported, what + " is formatted with " + std::to_string(ms) +
                                      " metadata bytes per LBA; this driver handles none");
  f.lba_size = 1u << lbads;
  if (max_transfer < f.lba_size)
    return err(Errc::unsupported, "MDTS (" + std::to_string(max_transfer) + " bytes) is below one LBA");
  return f;
}

}  // namespace numacma::nvme
