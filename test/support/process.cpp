#include "support/process.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace shardd::test {

namespace {

/// One port the kernel has free now (it may hand the same one out again once it is closed).
std::uint16_t kernel_free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw std::runtime_error("socket failed");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    throw std::runtime_error("bind failed");
  }
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

}  // namespace

std::uint16_t free_port() {
  // The kernel may give a port just closed to the next caller: a node's REST and peer ports
  // once came out equal. No port is handed out twice in one test process.
  static std::mutex mutex;
  static std::set<std::uint16_t> given;
  std::lock_guard lock(mutex);
  for (int attempt = 0; attempt < 1000; ++attempt) {
    const auto port = kernel_free_port();
    if (given.insert(port).second) return port;
  }
  throw std::runtime_error("no port left that this process has not handed out already");
}

std::string shardd_binary() {
  const char* p = std::getenv("SHARDD_BIN");
  if (!p) throw std::runtime_error("SHARDD_BIN is not set (run the tests through meson test)");
  return p;
}

std::string source_root() {
  const char* p = std::getenv("SHARDD_SOURCE_ROOT");
  if (!p) throw std::runtime_error("SHARDD_SOURCE_ROOT is not set (run the tests through meson test)");
  return p;
}

std::pair<int, std::string> run_command(const std::string& cmd) {
  std::string out;
  FILE* f = ::popen((cmd + " 2>&1").c_str(), "r");
  if (!f) throw std::runtime_error("popen failed: " + cmd);
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
  int status = ::pclose(f);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : 128, out};
}

const certs& test_certs() {
  static certs c = [] {
    certs out;
    std::string tmpl = (std::filesystem::temp_directory_path() / "shardd-certs-XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    out.dir = tmpl + "/main";
    out.rogue_dir = tmpl + "/rogue";
    const auto script = source_root() + "/scripts/dev-certs.sh";
    auto [rc, text] = run_command(script + " " + out.dir + " node-1 node-2 node-3 node-4 node-5 node-6 node-7 node-8 node-9");
    if (rc != 0) throw std::runtime_error("dev-certs.sh failed: " + text);
    auto [rc2, text2] = run_command(script + " " + out.rogue_dir + " rogue node-1");
    if (rc2 != 0) throw std::runtime_error("dev-certs.sh (rogue) failed: " + text2);
    // The folder goes when the test process exits.
    static std::string cleanup_dir;
    cleanup_dir = tmpl;
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(cleanup_dir, ec);
    });
    return out;
  }();
  return c;
}

shardd_process::shardd_process(node_options opts) : opts_(std::move(opts)) {
  if (opts_.data_dir.empty()) throw std::invalid_argument("node_options.data_dir is required");
  if (opts_.rest_port == 0) opts_.rest_port = free_port();
  if (opts_.peer_port == 0) opts_.peer_port = free_port();
  std::filesystem::create_directories(opts_.data_dir);
  log_path_ = opts_.data_dir + "/shardd.log";
}

shardd_process::~shardd_process() {
  if (pid_ > 0) kill9();
}

void shardd_process::spawn() {
  const auto& c = test_certs();
  std::vector<std::string> args = {shardd_binary()};
  if (!opts_.config_json.empty()) {
    const auto path = opts_.data_dir + "/shardd.json";
    std::ofstream(path) << opts_.config_json;
    args.insert(args.end(), {"--config", path});
  }
  args.insert(args.end(), {"--node-id", opts_.id, "--data-dir", opts_.data_dir + "/data", "--rest-listen",
                           "127.0.0.1:" + std::to_string(opts_.rest_port), "--peer-listen",
                           "127.0.0.1:" + std::to_string(opts_.peer_port), "--tls-cert", c.cert(opts_.id), "--tls-key",
                           c.key(opts_.id), "--tls-ca", c.ca()});
  if (opts_.bootstrap) args.push_back("--bootstrap");
  if (opts_.join) args.insert(args.end(), {"--join", *opts_.join});
  args.insert(args.end(), opts_.extra_args.begin(), opts_.extra_args.end());

  auto env = opts_.env;
  env.insert(env.begin(), {"SHARDD_TOKEN", test_token});
  pid_ = spawn_logged(std::move(args), log_path_, env);
}

int spawn_logged(std::vector<std::string> args, const std::string& log_path,
                 const std::vector<std::pair<std::string, std::string>>& env) {
  int log_fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) throw std::runtime_error("cannot open " + log_path);
  pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    ::dup2(log_fd, 1);
    ::dup2(log_fd, 2);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    for (const auto& [k, v] : env) ::setenv(k.c_str(), v.c_str(), 1);
    ::execvp(argv[0], argv.data());
    std::_Exit(127);
  }
  ::close(log_fd);
  return pid;
}

void shardd_process::start() {
  spawn();
  net::https_client probe("127.0.0.1", opts_.rest_port, test_certs().ca());
  probe.set_timeout(std::chrono::milliseconds(1000));
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < until) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      throw std::runtime_error("shardd exited during start-up; log:\n" + log());
    }
    try {
      if (probe.get("/v1/health").status == 200) return;
    } catch (const std::exception&) {
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  throw std::runtime_error("shardd did not become healthy in 30 s; log:\n" + log());
}

int shardd_process::start_and_wait_exit(std::chrono::milliseconds timeout) {
  spawn();
  return wait_exit(timeout);
}

int shardd_process::wait_exit(std::chrono::milliseconds timeout) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  while (pid_ > 0) {
    int status = 0;
    pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      pid_ = -1;
      if (WIFEXITED(status)) return WEXITSTATUS(status);
      if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
      return -1;
    }
    if (std::chrono::steady_clock::now() > until) {
      kill9();
      return -2;  // did not exit in time
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return -1;
}

int shardd_process::terminate(std::chrono::milliseconds timeout) {
  if (pid_ <= 0) return -1;
  ::kill(pid_, SIGTERM);
  return wait_exit(timeout);
}

void shardd_process::kill9() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  int status = 0;
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
}

std::string shardd_process::log() const {
  std::ifstream in(log_path_);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::unique_ptr<net::https_client> shardd_process::client() const {
  return std::make_unique<net::https_client>("127.0.0.1", opts_.rest_port, test_certs().ca(), test_token);
}

}  // namespace shardd::test
