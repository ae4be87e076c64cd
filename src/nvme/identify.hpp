// nvme/identify.hpp — what the Identify data structures (spec.hpp) tell the
// driver, and whether it can drive what they describe. Pure logic over the
// 4 KiB structures the controller wrote; the Controller (controller.cpp)
// issues the commands.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

#include "numacma/numacma.hpp"
#include "nvme/spec.hpp"

namespace numacma::nvme {

/** What Identify Controller (CNS 01h) says that the driver uses. */
struct ControllerIdentity {
  std::string model, serial, firmware;
  /** Bytes one command moves: MDTS, capped by one PRP list page (kMaxPrpTransfer). */
  std::size_t max_transfer = 0;
  /** RTD3E, clamped to 5..60 s as Linux does: how long a shutdown may take. */
  std::chrono::milliseconds shutdown_timeout{5000};
};

/** Checks that the controller takes 64-byte SQ and 16-byte CQ entries and
 *  has namespace `nsid`. */
numacma::Result<ControllerIdentity> parse_identify_controller(const IdentifyController& id, std::uint32_t nsid);

/** What Identify Namespace (CNS 00h) says of the namespace's format in use. */
struct NamespaceFormat {
  std::uint64_t nsze = 0;     ///< LBAs
  std::uint32_t lba_size = 0; ///< bytes
};

/** Checks that the namespace is active, its LBAs are 512 B..64 KiB without
 *  metadata, and one command (`max_transfer` bytes) moves at least one.
 *  `what` ("Identify Namespace 1") starts every error. */
numacma::Result<NamespaceFormat> parse_identify_namespace(const IdentifyNamespace& ns, const std::string& what,
                                                          std::size_t max_transfer);

}  // namespace numacma::nvme
