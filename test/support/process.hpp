#pragma once
// Integration-test support: free loopback ports, dev certificates, and real shardd processes
// started with fork/exec and stopped by PID.

#include "net/https_client.hpp"

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace shardd::test {

/// A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0, then released).
std::uint16_t free_port();

/// Path of the shardd binary and of the source tree, from the environment meson sets.
std::string shardd_binary();
std::string source_root();

/// Dev certificates made once per test process by scripts/dev-certs.sh: a CA and node
/// certificates node-1..node-9, plus a second, unrelated CA with its own "rogue" node.
struct certs {
  std::string dir;
  std::string ca() const { return dir + "/ca.pem"; }
  std::string cert(const std::string& node) const { return dir + "/" + node + ".pem"; }
  std::string key(const std::string& node) const { return dir + "/" + node + ".key"; }
  std::string rogue_dir;
};
const certs& test_certs();

constexpr const char* test_token = "integration-test-token-0123456789";

/// Settings of one node under test.
struct node_options {
  std::string id = "node-1";
  std::string data_dir;  ///< required
  std::uint16_t rest_port = 0;  ///< 0: pick a free one
  std::uint16_t peer_port = 0;
  bool bootstrap = true;
  std::optional<std::string> join;
  std::vector<std::string> extra_args;
  std::string config_json;  ///< if set, written to a file and passed with --config
  std::vector<std::pair<std::string, std::string>> env;  ///< extra environment (fault injection)
};

/// One running shardd process. The destructor SIGKILLs it if it still runs.
class shardd_process {
 public:
  explicit shardd_process(node_options opts);
  ~shardd_process();
  shardd_process(const shardd_process&) = delete;
  shardd_process& operator=(const shardd_process&) = delete;

  /// Starts (or restarts) the process; returns once /v1/health answers 200, or throws with
  /// the tail of the log.
  void start();
  /// Starts and waits for the process to exit (for start-up failures); returns the exit code.
  int start_and_wait_exit(std::chrono::milliseconds timeout);

  /// SIGTERM, then waits; returns the exit code (or 128 + signal).
  int terminate(std::chrono::milliseconds timeout = std::chrono::seconds(20));
  /// SIGKILL, then waits.
  void kill9();
  bool running() const noexcept { return pid_ > 0; }
  int pid() const noexcept { return pid_; }

  std::uint16_t rest_port() const noexcept { return opts_.rest_port; }
  std::uint16_t peer_port() const noexcept { return opts_.peer_port; }
  const node_options& options() const noexcept { return opts_; }
  /// The environment of the next start (fault injection changed between restarts).
  void set_env(std::vector<std::pair<std::string, std::string>> env) { opts_.env = std::move(env); }
  std::string log() const;
  std::string url() const { return "https://127.0.0.1:" + std::to_string(opts_.rest_port); }

  /// A new client for this node's REST API with the test token.
  std::unique_ptr<net::https_client> client() const;

 private:
  void spawn();
  int wait_exit(std::chrono::milliseconds timeout);

  node_options opts_;
  std::string log_path_;
  int pid_ = -1;
};

/// Starts `args[0]` (looked up in PATH) with `args`, stdout and stderr appended to `log_path`
/// and `env` added to the environment; returns its PID.
int spawn_logged(std::vector<std::string> args, const std::string& log_path,
                 const std::vector<std::pair<std::string, std::string>>& env = {});

/// Runs a shell command, returns {exit code, stdout+stderr}.
std::pair<int, std::string> run_command(const std::string& cmd);

}  // namespace shardd::test
