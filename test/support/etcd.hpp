#pragma once
// A real etcd cluster on loopback for tests: N members on free ports, plain or TLS (the dev
// certificates), started and stopped by PID, each killable with SIGKILL and restartable.

#include "support/process.hpp"
#include "support/temp_dir.hpp"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace shardd::test {

class etcd_cluster {
 public:
  struct member {
    std::string name;
    std::uint16_t client_port = 0, peer_port = 0;
    int pid = -1;
  };

  explicit etcd_cluster(int n = 1, bool tls = false) : tls_(tls) {
    for (int i = 1; i <= n; ++i) members_.push_back({"e" + std::to_string(i), free_port(), free_port(), -1});
    for (std::size_t i = 0; i < members_.size(); ++i) spawn(i, true);
    for (std::size_t i = 0; i < members_.size(); ++i) wait_ready(i);
  }
  ~etcd_cluster() {
    for (std::size_t i = 0; i < members_.size(); ++i) kill9(i);
  }
  etcd_cluster(const etcd_cluster&) = delete;
  etcd_cluster& operator=(const etcd_cluster&) = delete;

  const std::vector<member>& members() const { return members_; }
  /// "127.0.0.1:PORT,..." of every member's client address.
  std::string endpoints() const {
    std::string out;
    for (const auto& m : members_) out += (out.empty() ? "" : ",") + std::string("127.0.0.1:") + std::to_string(m.client_port);
    return out;
  }

  void kill9(std::size_t i) {
    auto& m = members_[i];
    if (m.pid <= 0) return;
    ::kill(m.pid, SIGKILL);
    int status = 0;
    ::waitpid(m.pid, &status, 0);
    m.pid = -1;
  }
  /// Starts killed members again with their data (all of them before waiting: a member alone
  /// is not healthy without a quorum).
  void restart(const std::vector<std::size_t>& which) {
    for (auto i : which) spawn(i, false);
    for (auto i : which) wait_ready(i);
  }
  /// The index of the member that is raft leader now (-1: none answered naming itself).
  int leader() const {
    for (std::size_t i = 0; i < members_.size(); ++i) {
      if (members_[i].pid <= 0) continue;
      std::string curl = "curl -s -m 1 -X POST -d '{}' ";
      if (tls_) {
        const auto& c = test_certs();
        curl += "--cacert " + c.ca() + " --cert " + c.cert("node-1") + " --key " + c.key("node-1") + " ";
      }
      auto [rc, out] = run_command(curl + scheme() + "://127.0.0.1:" + std::to_string(members_[i].client_port) +
                                   "/v3/maintenance/status");
      // {"header":{...,"member_id":"N",...},...,"leader":"N",...}: the gateway writes 64-bit ids as strings.
      auto field = [&out = out](const std::string& name) {
        const auto at = out.find("\"" + name + "\":\"");
        if (at == std::string::npos) return std::string();
        const auto from = at + name.size() + 4;
        return out.substr(from, out.find('"', from) - from);
      };
      if (rc == 0 && !field("leader").empty() && field("leader") == field("member_id")) return static_cast<int>(i);
    }
    return -1;
  }

  std::string log(std::size_t i) const {
    std::ifstream in(dir_.sub(members_[i].name + ".log"));
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }

 private:
  std::string scheme() const { return tls_ ? "https" : "http"; }

  void spawn(std::size_t i, bool fresh) {
    auto& m = members_[i];
    std::string initial;
    for (const auto& o : members_)
      initial += (initial.empty() ? "" : ",") + o.name + "=" + scheme() + "://127.0.0.1:" + std::to_string(o.peer_port);
    const std::string client = scheme() + "://127.0.0.1:" + std::to_string(m.client_port);
    const std::string peer = scheme() + "://127.0.0.1:" + std::to_string(m.peer_port);
    std::vector<std::string> args = {"etcd",
                                     "--name", m.name,
                                     "--data-dir", dir_.sub(m.name),
                                     "--listen-client-urls", client,
                                     "--advertise-client-urls", client,
                                     "--listen-peer-urls", peer,
                                     "--initial-advertise-peer-urls", peer,
                                     "--initial-cluster", initial,
                                     "--initial-cluster-token", "shardd-test",
                                     "--initial-cluster-state", fresh ? "new" : "existing",
                                     "--heartbeat-interval", "50",
                                     "--election-timeout", "500",
                                     "--log-level", "warn"};
    if (tls_) {
      const auto& c = test_certs();
      for (const char* flag : {"--cert-file", "--peer-cert-file"}) args.insert(args.end(), {flag, c.cert("node-9")});
      for (const char* flag : {"--key-file", "--peer-key-file"}) args.insert(args.end(), {flag, c.key("node-9")});
      for (const char* flag : {"--trusted-ca-file", "--peer-trusted-ca-file"}) args.insert(args.end(), {flag, c.ca()});
      args.insert(args.end(), {"--client-cert-auth", "--peer-client-cert-auth"});
    }
    m.pid = spawn_logged(std::move(args), dir_.sub(m.name + ".log"));
  }

  void wait_ready(std::size_t i) {
    const auto& m = members_[i];
    std::string curl = "curl -s -m 1 ";
    if (tls_) {
      const auto& c = test_certs();
      curl += "--cacert " + c.ca() + " --cert " + c.cert("node-1") + " --key " + c.key("node-1") + " ";
    }
    curl += scheme() + "://127.0.0.1:" + std::to_string(m.client_port) + "/health";
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (std::chrono::steady_clock::now() < until) {
      int status = 0;
      if (::waitpid(m.pid, &status, WNOHANG) == m.pid) {
        members_[i].pid = -1;
        throw std::runtime_error("etcd " + m.name + " exited during start-up; log:\n" + log(i));
      }
      auto [rc, out] = run_command(curl);
      if (rc == 0 && out.find("\"health\":\"true\"") != std::string::npos) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    throw std::runtime_error("etcd " + m.name + " not healthy in 30 s; log:\n" + log(i));
  }

  bool tls_;
  temp_dir dir_;
  std::vector<member> members_;
};

}  // namespace shardd::test
