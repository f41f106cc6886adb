// shardd: the node process.

#include "common/config.hpp"
#include "common/log.hpp"
#include "node/node.hpp"
#include "node/startup_checks.hpp"

#include <boost/program_options.hpp>

#include <malloc.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

namespace po = boost::program_options;

namespace {

constexpr int exit_usage = 2;

int fail(const std::string& message) {
  std::cerr << "shardd: " << message << "\n";
  return exit_usage;
}

/// Buffers of up to 32 MiB (a migration batch is about 4.5 MiB, sent and received) come from
/// the heap and are reused, instead of each being a fresh mmap whose every page faults in on
/// first touch and is unmapped on free: a 1 GiB move went from 233 to 287 MiB/s and from 7.0
/// to 5.2 CPU-ms per MiB (docs/benchmarks.md). Up to 64 MiB of free heap is kept before it is
/// given back. glibc's MALLOC_MMAP_THRESHOLD_ / MALLOC_TRIM_THRESHOLD_ still decide if set.
void tune_malloc() {
  if (!std::getenv("MALLOC_MMAP_THRESHOLD_")) (void)mallopt(M_MMAP_THRESHOLD, 32 << 20);
  if (!std::getenv("MALLOC_TRIM_THRESHOLD_")) (void)mallopt(M_TRIM_THRESHOLD, 64 << 20);
}

}  // namespace

int main(int argc, char** argv) {
  tune_malloc();
  const shardd::node_config defaults;
  po::options_description opts("Usage: shardd [--config FILE] [options]\n\nOptions (flags override the config file)");
  // clang-format off
  opts.add_options()
    ("help,h", "print this help and exit")
    ("version", "print the version and exit")
    ("config,c", po::value<std::string>(), "JSON config file (see conf/shardd.example.json)")
    ("node-id", po::value<std::string>(), "stable id of this node; the CN of its certificate (required)")
    ("data-dir", po::value<std::string>(), "folder for this node's RocksDB and state (required)")
    ("rest-listen", po::value<std::string>(), ("HOST:PORT of the HTTPS REST API (default " + defaults.rest_listen.to_string() + ")").c_str())
    ("peer-listen", po::value<std::string>(), ("HOST:PORT of the mutual-TLS peer protocol (default " + defaults.peer_listen.to_string() + ")").c_str())
    ("bootstrap", "start a new cluster with this node as its controller (a data dir with no cluster needs this or --join)")
    ("join", po::value<std::string>(), "HOST:PORT: peer address of the controller to join")
    ("meta", po::value<std::string>(), "where the map lives: embedded (default: the bootstrap node's store) or etcd://HOST:PORT[,HOST:PORT...] (every node elects the controller through etcd; no --bootstrap or --join)")
    ("etcd-ca", po::value<std::string>(), "PEM CA of etcd's certificates: talk to etcd over https")
    ("etcd-cert", po::value<std::string>(), "PEM client certificate for etcd (with --etcd-key)")
    ("etcd-key", po::value<std::string>(), "PEM private key of --etcd-cert")
    ("etcd-user", po::value<std::string>(), "etcd user (etcd's auth); its password from SHARDD_ETCD_PASSWORD or etcd.password")
    ("log-level", po::value<std::string>(), ("trace, debug, info, warn, error, critical or off (default " + defaults.log_level + ")").c_str())
    ("tls-cert", po::value<std::string>(), "PEM certificate chain of this node (required)")
    ("tls-key", po::value<std::string>(), "PEM private key of this node (required)")
    ("tls-ca", po::value<std::string>(), "PEM cluster CA certificate (required)")
    ("check-config", "check the configuration, the TLS files, the data dir and the listen addresses, then exit");
  // clang-format on
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, opts), vm);
    po::notify(vm);
  } catch (const std::exception& e) {
    return fail(std::string(e.what()) + " (see --help)");
  }
  if (vm.count("help")) {
    std::cout << opts
              << "\nEnvironment:\n  SHARDD_TOKEN  bearer token for the REST API (overrides rest.token)\n"
                 "  SHARDD_ETCD_PASSWORD  password of --etcd-user (overrides etcd.password)\n"
                 "\nThe config file's other settings and their defaults: conf/shardd.example.json and docs/operations.md.\n"
                 "\nExit codes:\n"
                 "  0  stopped cleanly (SIGTERM or SIGINT), or --help, --version, --check-config found nothing wrong\n"
                 "  1  a failure while running or starting that is not the configuration's (a store that cannot be\n"
                 "     opened, a port taken between the check and the start)\n"
                 "  2  a bad flag or configuration: a field, a TLS file, the data dir, a listen address; the message\n"
                 "     names the field\n";
    return 0;
  }
  if (vm.count("version")) {
    std::cout << "shardd " << SHARDD_VERSION << "\n";
    return 0;
  }

  shardd::node_config cfg;
  if (vm.count("config")) {
    const auto path = vm["config"].as<std::string>();
    std::ifstream in(path);
    if (!in) return fail("config: cannot read " + path);
    std::stringstream text;
    text << in.rdbuf();
    auto base = std::filesystem::absolute(path).parent_path().string();
    auto parsed = shardd::parse_config(text.str(), base);
    if (!parsed) return fail("config " + path + ": " + parsed.error().detail);
    cfg = std::move(*parsed);
  }
  shardd::config_overrides o;
  auto flag = [&](const char* name, std::optional<std::string>& target) {
    if (vm.count(name)) target = vm[name].as<std::string>();
  };
  flag("node-id", o.node_id);
  flag("data-dir", o.data_dir);
  flag("rest-listen", o.rest_listen);
  flag("peer-listen", o.peer_listen);
  flag("join", o.join);
  flag("log-level", o.log_level);
  flag("tls-cert", o.tls_cert);
  flag("tls-key", o.tls_key);
  flag("tls-ca", o.tls_ca);
  flag("meta", o.meta);
  flag("etcd-ca", o.etcd_ca);
  flag("etcd-cert", o.etcd_cert);
  flag("etcd-key", o.etcd_key);
  flag("etcd-user", o.etcd_user);
  if (const char* p = std::getenv("SHARDD_ETCD_PASSWORD"); p && *p) o.etcd_password = p;
  o.bootstrap = vm.count("bootstrap") > 0;
  if (const char* t = std::getenv("SHARDD_TOKEN"); t && *t) o.token = t;
  if (auto r = shardd::apply_overrides(cfg, o); !r) return fail(r.error().detail);
  if (auto r = shardd::validate(cfg); !r) return fail(r.error().detail);
  // The TLS files before anything is opened: a bad one is a configuration error (2), named by
  // its field, not a start-up failure. The data dir is checked by the start itself (the same
  // errors, exit 2) without a second, read-only open that would replay its log twice;
  // --check-config opens it read-only and binds the listen addresses too.
  auto problems = shardd::check_tls(cfg);
  if (vm.count("check-config")) {
    for (auto& p : shardd::check_data_dir(cfg)) problems.push_back(std::move(p));
    for (auto& p : shardd::check_listen(cfg)) problems.push_back(std::move(p));
  }
  if (!problems.empty()) {
    for (const auto& p : problems) std::cerr << "shardd: " << p << "\n";
    return exit_usage;
  }
  if (vm.count("check-config")) {
    std::cout << "config ok\n";
    return 0;
  }

  shardd::log::init(cfg.node_id, cfg.log_level);
  shardd::node n(cfg);
  if (auto r = n.start(); !r) {
    SHARDD_LOG(critical, "start_failed", "error", r.error().detail);
    std::cerr << "shardd: " << r.error().detail << "\n";
    // A data dir that does not fit the config (another cluster or node id, no cluster and no
    // --bootstrap) is a usage error like a bad flag; anything else (I/O, a port in use) is 1.
    return r.error().code == shardd::errc::invalid_argument ? 2 : 1;
  }
  return n.run();
}
