// scripts/shardctl against a real cluster: every command an operator reaches for, its exit
// codes, and its progress output for waited-for moves and drains.

#include "support/cluster.hpp"
#include "support/json_body.hpp"
#include "support/process.hpp"

#include <boost/json/parse.hpp>

#include <sstream>

using namespace shardd;
using namespace shardd::test;
namespace json = boost::json;

namespace {

struct shardctl {
  std::string env;
  explicit shardctl(const shardd_process& n) {
    env = "SHARDD_URL=" + n.url() + " SHARDD_TOKEN=" + test_token + " SHARDD_CACERT=" + test_certs().ca() + " ";
  }
  /// Runs `shardctl ARGS` (a shell command line); {exit code, stdout+stderr}.
  std::pair<int, std::string> operator()(const std::string& args, const std::string& stdin_text = {}) const {
    std::string cmd = env + "python3 " + source_root() + "/scripts/shardctl " + args;
    if (stdin_text.empty()) return run_command(cmd + " < /dev/null 2>&1");
    return run_command("printf '%s' '" + stdin_text + "' | " + cmd + " 2>&1");
  }
};

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

}  // namespace

TEST_CASE("shardctl: records, tables, a migration and a drain waited for with progress, and its exit codes") {
  cluster cl(3);
  shardctl ctl(cl.node(2));

  // Environment and usage.
  {
    auto [rc, out] = run_command("env -u SHARDD_URL python3 " + source_root() + "/scripts/shardctl count x 2>&1");
    CHECK(rc == 2);
    CHECK(out.find("SHARDD_URL") != std::string::npos);
    auto [rc2, out2] = run_command("SHARDD_URL=https://127.0.0.1:1 SHARDD_TOKEN=x python3 " + source_root() + "/scripts/shardctl count x 2>&1");
    CHECK(rc2 == 3);
    CHECK(out2.find("cannot reach") != std::string::npos);
  }

  auto [rc, out] = ctl("create-index users --shards 6");
  INFO(out);
  REQUIRE(rc == 0);
  CHECK(out.find("created users: hash, 6 shards") != std::string::npos);
  for (int i = 0; i < 30; ++i) REQUIRE(ctl("put users k" + std::to_string(i) + " '{\"n\":" + std::to_string(i) + "}'").first == 0);
  // A key with a space and a slash, and a document on stdin.
  std::tie(rc, out) = ctl("put users 'a b/c'", R"({"n":99})");
  INFO(out);
  CHECK(rc == 0);
  CHECK(out.find("created users/a b/c") != std::string::npos);
  std::tie(rc, out) = ctl("get users 'a b/c'");
  CHECK(rc == 0);
  CHECK(json::parse(out).at("n").as_int64() == 99);
  std::tie(rc, out) = ctl("count users");
  CHECK(out == "31\n");
  std::tie(rc, out) = ctl("delete users 'a b/c'");
  CHECK(out.find("deleted") != std::string::npos);
  std::tie(rc, out) = ctl("get users 'a b/c'");
  CHECK(rc == 1);
  CHECK(out.find("404 not-found") != std::string::npos);
  CHECK(out.find("request id") != std::string::npos);
  std::tie(rc, out) = ctl("put users k1 'not json'");
  CHECK(rc == 2);

  // Tables with _cat options.
  std::tie(rc, out) = ctl("cat shards -h shard,node -s shard:desc --no-header");
  INFO(out);
  REQUIRE(rc == 0);
  auto rows = lines_of(out);
  REQUIRE(rows.size() == 6);
  CHECK(rows.front().find("5  node-") != std::string::npos);
  CHECK(rows.back().find("0  node-") != std::string::npos);
  std::tie(rc, out) = ctl("cat cluster -h node,colour");
  CHECK(rc == 1);
  CHECK(out.find("columns: node, state") != std::string::npos);
  std::tie(rc, out) = ctl("cat index users --help-columns");
  CHECK(out.find("records") != std::string::npos);

  // A migration, waited for: progress lines, then done.
  auto c1 = cl.node(1).client();
  const auto before = owners(*c1, "users");
  const auto shard = before.begin()->first;
  const std::string target = before.begin()->second == "node-1" ? "node-2" : "node-1";
  std::tie(rc, out) = ctl("migrate users " + std::to_string(shard) + " " + target + " --wait");
  INFO(out);
  CHECK(rc == 0);
  CHECK(out.find("done m") != std::string::npos);
  CHECK(owners(*c1, "users")[shard] == target);
  // A move that cannot be made: refused, exit 1, the problem named.
  std::tie(rc, out) = ctl("migrate users " + std::to_string(shard) + " " + target);
  CHECK(rc == 1);
  CHECK(out.find("400") != std::string::npos);

  // A drain, waited for: shards moved of the total, then left; then the node removed.
  std::tie(rc, out) = ctl("drain node-3 --wait");
  INFO(out);
  CHECK(rc == 0);
  CHECK(out.find("left node-3") != std::string::npos);
  CHECK(out.find("100.0%") != std::string::npos);
  for (const auto& [s, n] : owners(*c1, "users")) CHECK(n != "node-3");
  std::tie(rc, out) = ctl("cat cluster -h node,state -s node --no-header");
  CHECK(out.find("node-3  left") != std::string::npos);
  cl.node(3).terminate();
  std::tie(rc, out) = ctl("remove-node node-3");
  CHECK(rc == 0);
  CHECK(out.find("removed node-3 (was left") != std::string::npos);
  std::tie(rc, out) = ctl("count users");
  CHECK(out == "30\n");
  std::tie(rc, out) = ctl("drop-index users");
  CHECK(rc == 0);
  std::tie(rc, out) = ctl("count users");
  CHECK(rc == 1);

  // The monitor's settings on every node (node-3 has left: two nodes).
  std::tie(rc, out) = ctl("monitor --interval-ms 700");
  CHECK(rc == 0);
  CHECK(out == "node-1: sampling every 700 ms, history 3600000 ms\nnode-2: sampling every 700 ms, history 3600000 ms\n");
  std::tie(rc, out) = ctl("monitor --this-node --interval-ms 0");  // the node it asks: node-2
  CHECK(out == "node-2: sampling off, history 3600000 ms\n");
  std::tie(rc, out) = ctl("monitor");
  CHECK(out == "node-1: sampling every 700 ms, history 3600000 ms\nnode-2: sampling off, history 3600000 ms\n");
  std::tie(rc, out) = ctl("monitor --interval-ms 5");
  CHECK(rc == 1);
  CHECK(out.find("400") != std::string::npos);
}
