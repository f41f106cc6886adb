#pragma once
// A cluster of real shardd processes for integration tests.

#include "support/json_body.hpp"
#include "support/process.hpp"
#include "support/temp_dir.hpp"

#include <catch2/catch.hpp>

#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace shardd::test {

/// Fast heartbeats so that failure detection fits in a test (down after 3 missed 200 ms
/// beats), and a short undo window for migrations.
inline constexpr const char* fast_config =
    R"({"cluster":{"heartbeat_interval_ms":200,"heartbeat_miss_limit":3},"migration":{"undo_window_ms":300}})";

/// fast_config with more `migration` fields (`"name":value` pairs, comma-separated).
inline std::string with_migration_config(const std::string& fields) {
  return R"({"cluster":{"heartbeat_interval_ms":200,"heartbeat_miss_limit":3},"migration":{"undo_window_ms":300,)" + fields + "}}";
}

/// node-1 bootstraps; the others join it. Every node is up when the constructor returns.
struct cluster {
  temp_dir dir;
  std::vector<std::unique_ptr<shardd_process>> nodes;

  std::string config;  ///< every node's config file

  explicit cluster(int n = 3, std::map<int, std::vector<std::pair<std::string, std::string>>> env = {},
                   std::string config_json = fast_config)
      : config(std::move(config_json)) {
    for (int i = 1; i <= n; ++i) add(env.count(i) ? env[i] : std::vector<std::pair<std::string, std::string>>{}, false);
    wait_states(std::vector<std::string>(static_cast<std::size_t>(n), "up"));
  }

  /// Starts one more node that joins.
  shardd_process& add(std::vector<std::pair<std::string, std::string>> env = {}, bool wait = true) {
    const int i = static_cast<int>(nodes.size()) + 1;
    node_options o;
    o.id = "node-" + std::to_string(i);
    o.data_dir = dir.sub(o.id);
    o.config_json = config;
    o.env = std::move(env);
    if (i > 1) {
      o.bootstrap = false;
      o.join = "127.0.0.1:" + std::to_string(nodes[0]->peer_port());
    }
    nodes.push_back(std::make_unique<shardd_process>(std::move(o)));
    nodes.back()->start();
    if (wait) wait_states(std::vector<std::string>(nodes.size(), "up"));
    return *nodes.back();
  }

  shardd_process& node(int i) { return *nodes[static_cast<std::size_t>(i - 1)]; }

  /// Node states as `via` sees them, in id order.
  std::vector<std::string> states(int via = 1) {
    auto c = node(via).client();
    auto b = body(c->get("/v1/cluster"));
    std::vector<std::string> out;
    for (const auto& n : b.at("nodes").as_array()) out.emplace_back(n.at("state").as_string());
    return out;
  }

  void wait_states(const std::vector<std::string>& want, int via = 1, std::chrono::seconds limit = std::chrono::seconds(15)) {
    const auto until = std::chrono::steady_clock::now() + limit;
    std::vector<std::string> got;
    while (std::chrono::steady_clock::now() < until) {
      try {
        got = states(via);
        if (got == want) return;
      } catch (const std::exception&) {
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    std::string seen;
    for (const auto& g : got) seen += g + " ";
    FAIL("node states did not become as wanted; last seen: " + seen);
  }
};

/// NDJSON puts of keys prefix<from>..prefix<to-1>, with `routing` if not empty.
inline std::string ndjson_puts(int from, int to, const std::string& prefix = "k", const std::string& routing = {},
                               std::size_t pad = 0) {
  std::string out;
  const std::string padding(pad, 'p');
  for (int i = from; i < to; ++i) {
    out += R"({"op":"put","key":")" + prefix + std::to_string(i) + "\"";
    if (!routing.empty()) out += R"(,"routing":")" + routing + "\"";
    out += R"(,"doc":{"n":)" + std::to_string(i);
    if (pad) out += R"(,"pad":")" + padding + "\"";
    out += "}}\n";
  }
  return out;
}

/// Owner node of every shard of an index, as /v1/shards reports it.
inline std::map<std::int64_t, std::string> owners(net::https_client& c, const std::string& index) {
  std::map<std::int64_t, std::string> out;
  // Named: a range-for over a member of a temporary would outlive the temporary.
  const auto b = body(c.get("/v1/shards?index=" + index));
  for (const auto& s : b.at("shards").as_array()) out[s.at("shard").as_int64()] = std::string(s.at("node").as_string());
  return out;
}

}  // namespace shardd::test
