// `numacma doctor [--json]`: can a device DMA to numacma memory on this host,
// and if not, what exactly to do. The facts come through src/os (host.hpp:
// files read, nothing written, no device opened), the topology from sysfs,
// the reservations from the run directory; the judgement is doctor.hpp's.
// Exit 0 when a device could DMA here (dma_usable), 1 when not, 2 for bad
// usage. The roots are options so that tests point them at fixtures
// (tests/data/host-*); the report then says it is about a fixture.
#include <cstdio>
#include <memory>
#include <string>

#include "backing/backing.hpp"
#include "cli_util.hpp"
#include "commands.hpp"
#include "doctor.hpp"
#include "numacma/shared.hpp"

namespace numacma::cli {
namespace {

struct DoctorArgs {
  os::HostPaths paths;
  bool json = false;
};

void run(const DoctorArgs& a) {
  doctor::Input in;
  in.paths = a.paths;
  in.fixture = !backing::is_host_sysfs(a.paths.sysfs_root) || a.paths.proc_root != "/proc" ||
               a.paths.dev_root != "/dev" || a.paths.modules_root != "/lib/modules";
  in.files = os::read_host(a.paths);
  in.topology = topo::Topology::from_sysfs(a.paths.sysfs_root);
  in.pools = reserved_pools();  // this host's ($NUMACMA_RUN_DIR), fixture or not
  in.run_dir = run_dir();
  const doctor::Report r = doctor::diagnose(in);
  if (a.json)
    std::printf("%s\n", doctor::doctor_json(in, r).dump().c_str());
  else
    std::fputs(doctor::doctor_text(in, r).c_str(), stdout);
  exit_code() = r.dma_usable() ? 0 : 1;
}

}  // namespace

void register_doctor(CLI::App& app) {
  auto args = std::make_shared<DoctorArgs>();
  CLI::App* sub = app.add_subcommand(
      "doctor", "can a device DMA to numacma memory here? One check per line, with the fix where one fails");
  sub->add_flag("--json", args->json, "one JSON object: {\"checks\":[...],\"dma_usable\":...}");
  sub->add_option("--sysfs-root", args->paths.sysfs_root, "sysfs tree (default /sys; another is a fixture)")
      ->type_name("DIR");
  sub->add_option("--proc-root", args->paths.proc_root, "proc tree (default /proc; for tests)")->type_name("DIR");
  sub->add_option("--dev-root", args->paths.dev_root, "device tree (default /dev; for tests)")->type_name("DIR");
  sub->add_option("--modules-root", args->paths.modules_root, "kernel modules (default /lib/modules; for tests)")
      ->type_name("DIR");
  sub->callback([args] { run(*args); });
}

}  // namespace numacma::cli
