#include "common/config.hpp"

#include "support/catch_result.hpp"
#include "support/temp_dir.hpp"

#include <fstream>

using namespace shardd;

namespace {

std::string error_of(const std::string& json) {
  auto r = parse_config(json, "/etc/shardd");
  REQUIRE(!r);
  return r.error().detail;
}

// A config that validates: files exist, token long enough.
node_config valid_config(const temp_dir& dir) {
  for (auto f : {"c.pem", "k.pem", "ca.pem"}) std::ofstream(dir.sub(f)) << "x";
  auto r = parse_config(R"({"node_id":"n1","data_dir":"d","rest":{"token":"0123456789abcdef"},
                            "tls":{"cert":"c.pem","key":"k.pem","ca":"ca.pem"}})",
                        dir.path());
  REQUIRE(r);
  return *r;
}

}  // namespace

TEST_CASE("a full config parses into typed fields with relative paths resolved") {
  auto r = parse_config(R"({
    "node_id": "n1", "cluster_id": "c", "data_dir": "data", "log_level": "debug", "weight": 3, "threads": 4,
    "rest": {"listen": "[::1]:8443", "token": "t", "max_body_bytes": 2048, "idle_timeout_ms": 500},
    "peer": {"listen": "10.0.0.1:9000"},
    "tls": {"cert": "c.pem", "key": "/abs/k.pem", "ca": "ca.pem"},
    "cluster": {"join": "10.0.0.2:9000", "vnodes_per_weight": 64, "placement_epsilon": 0.25},
    "storage": {"durability": "async", "block_cache_mb": 64},
    "migration": {"undo_window_ms": 5000, "max_bytes_per_sec": 1000000, "threads": 3, "nice": 7, "high_priority_nice": 2, "compress_min_ratio": 2.5,
                  "max_outgoing": 5, "max_incoming": 6, "adaptive": true, "adaptive_p99_ms": 0.5,
                  "adaptive_min_bytes_per_sec": 65536},
    "rebalance": {"mode": "plan-only", "strategy": "bytes", "threshold": 0.2, "weights": {"load": 0}},
    "limits": {"max_doc_bytes": 1024}
  })", "/etc/shardd");
  REQUIRE(r);
  CHECK(r->data_dir == "/etc/shardd/data");
  CHECK(r->tls.cert == "/etc/shardd/c.pem");
  CHECK(r->tls.key == "/abs/k.pem");
  CHECK(r->rest_listen == host_port{"::1", 8443});
  CHECK(r->rest_listen.to_string() == "[::1]:8443");
  CHECK(r->peer_listen == host_port{"10.0.0.1", 9000});
  CHECK(r->join == host_port{"10.0.0.2", 9000});
  CHECK(r->weight == 3);
  CHECK(r->vnodes_per_weight == 64);
  CHECK(r->placement_epsilon == 0.25);
  CHECK(r->durability == durability_mode::async);
  CHECK(r->max_body_bytes == 2048);
  CHECK(r->max_doc_bytes == 1024);
  CHECK(r->migration_undo_window_ms == 5000);
  CHECK(r->migration_bytes_per_sec == 1000000);
  CHECK(r->migration_threads == 3);
  CHECK(r->migration_nice == 7);
  CHECK(r->migration_high_nice == 2);
  CHECK(r->migration_compress_min_ratio == 2.5);
  CHECK(r->migration_adaptive);
  CHECK(r->migration_adaptive_p99_ms == 0.5);
  CHECK(r->migration_adaptive_min_bytes_per_sec == 65536);
  CHECK(r->rebalance.mode == rebalance_mode::plan_only);
  CHECK(r->rebalance.strategy == rebalance_strategy::bytes);
  CHECK(r->rebalance.threshold == 0.2);
  CHECK(r->rebalance.weight_load == 0);
  CHECK(r->rebalance.weight_bytes == 1);  // untouched: the default
  CHECK(r->migration_max_outgoing == 5);
  CHECK(r->migration_max_incoming == 6);
}

TEST_CASE("config errors name the field") {
  CHECK(error_of("[]").find("JSON object") != std::string::npos);
  CHECK(error_of("{").find("not valid JSON") != std::string::npos);
  CHECK(error_of(R"({"node_idd":"x"})") == "node_idd: unknown field");
  CHECK(error_of(R"({"rest":{"listen":"nohost"}})").starts_with("rest.listen:"));
  CHECK(error_of(R"({"rest":{"listen":"h:0"}})").starts_with("rest.listen:"));
  CHECK(error_of(R"({"rest":{"listen":"::1:80"}})").find("brackets") != std::string::npos);
  CHECK(error_of(R"({"rest":{"max_body_bytes":-1}})").starts_with("rest.max_body_bytes:"));
  // A body must fit a peer frame when it is forwarded: 64 MiB at most.
  CHECK(error_of(R"({"rest":{"max_body_bytes":67108865}})").starts_with("rest.max_body_bytes:"));
  CHECK(error_of(R"({"rest":{"max_body_bytes":67108864},"limits":{"max_doc_bytes":67108865}})")
            .starts_with("limits.max_doc_bytes:"));
  CHECK(error_of(R"({"rest":{"tokn":"x"}})") == "rest.tokn: unknown field");
  CHECK(error_of(R"({"weight":"heavy"})").starts_with("weight:"));
  CHECK(error_of(R"({"threads":0})").starts_with("threads:"));
  CHECK(error_of(R"({"cluster":{"placement_epsilon":-1}})").starts_with("cluster.placement_epsilon:"));
  CHECK(error_of(R"({"cluster":{"bootstrap":"yes"}})").starts_with("cluster.bootstrap:"));
  CHECK(error_of(R"({"storage":{"durability":"maybe"}})").starts_with("storage.durability:"));
  CHECK(error_of(R"({"tls":[]})").starts_with("tls:"));
  CHECK(error_of(R"({"migration":{"threads":0}})").starts_with("migration.threads:"));
  CHECK(error_of(R"({"migration":{"nice":20}})").starts_with("migration.nice:"));
  CHECK(error_of(R"({"migration":{"nice":-1}})").starts_with("migration.nice:"));
  CHECK(error_of(R"({"migration":{"high_priority_nice":20}})").starts_with("migration.high_priority_nice:"));
  CHECK(error_of(R"({"migration":{"compress_min_ratio":0.5}})").starts_with("migration.compress_min_ratio: must be 0"));
  CHECK(error_of(R"({"migration":{"compress_min_ratio":-1}})").starts_with("migration.compress_min_ratio:"));
  CHECK(error_of(R"({"migration":{"compress_min_ratio":"4"}})").starts_with("migration.compress_min_ratio:"));
  // The settings the rebalancer replaced are refused with what to use instead.
  CHECK(error_of(R"({"migration":{"convergence":false}})").starts_with("migration.convergence: the rebalancer"));
  CHECK(error_of(R"({"migration":{"convergence_batch":4}})").find("rebalance.mode") != std::string::npos);
  CHECK(error_of(R"({"rebalance":{"mode":"sometimes"}})").starts_with("rebalance.mode:"));
  CHECK(error_of(R"({"rebalance":{"threshold":0}})").starts_with("rebalance.threshold:"));
  CHECK(error_of(R"({"rebalance":{"every":5}})") == "rebalance.every: unknown field");
  CHECK(error_of(R"({"monitor":{"interval_ms":50}})").starts_with("monitor.interval_ms:"));
  CHECK(error_of(R"({"monitor":{"history_ms":0}})").starts_with("monitor.history_ms:"));
  CHECK(error_of(R"({"monitor":{"every":5}})") == "monitor.every: unknown field");
  auto off = parse_config(R"({"monitor":{"interval_ms":0,"history_ms":600000}})", "/etc/shardd");
  REQUIRE(off);
  CHECK(off->monitor_interval_ms == 0);
  CHECK(off->monitor_history_ms == 600000);
  CHECK(off->monitor_disk_watermark_percent == 85);
  CHECK(error_of(R"({"monitor":{"disk_watermark_percent":0}})").starts_with("monitor.disk_watermark_percent:"));
  CHECK(error_of(R"({"monitor":{"disk_watermark_percent":101}})").starts_with("monitor.disk_watermark_percent:"));
  CHECK(error_of(R"({"monitor":{"forecast_horizon_ms":5}})").starts_with("monitor.forecast_horizon_ms:"));
  auto tuned = parse_config(R"({"monitor":{"shard_bytes_limit":0,"forecast_horizon_ms":3600000}})", "/etc/shardd");
  REQUIRE(tuned);
  CHECK(tuned->monitor_shard_bytes_limit == 0);
  CHECK(tuned->monitor_forecast_horizon_ms == 3600000);
}

TEST_CASE("validation demands what a node cannot run without") {
  temp_dir dir;
  auto c = valid_config(dir);
  REQUIRE(validate(c));
  auto fails = [&](auto mutate, const std::string& field) {
    auto copy = c;
    mutate(copy);
    auto r = validate(copy);
    REQUIRE(!r);
    CHECK(r.error().detail.starts_with(field));
  };
  fails([](node_config& x) { x.node_id.clear(); }, "node_id");
  fails([](node_config& x) { x.node_id = "bad id"; }, "node_id");
  fails([](node_config& x) { x.data_dir.clear(); }, "data_dir");
  fails([](node_config& x) { x.token = "short"; }, "rest.token");
  fails([](node_config& x) { x.tls.cert = "/nonexistent.pem"; }, "tls.cert");
  fails([](node_config& x) { x.tls.ca.clear(); }, "tls.ca");
  fails([](node_config& x) { x.log_level = "loud"; }, "log_level");
  fails([](node_config& x) { x.peer_listen = x.rest_listen; }, "peer.listen");
  fails([](node_config& x) { x.bootstrap = true; x.join = host_port{"h", 1}; }, "cluster.bootstrap");
  fails([](node_config& x) { x.max_doc_bytes = x.max_body_bytes + 1; }, "limits.max_doc_bytes");
}

TEST_CASE("flags override the file and bad flag values name the flag") {
  temp_dir dir;
  auto c = valid_config(dir);
  config_overrides o;
  o.node_id = "other";
  o.rest_listen = "127.0.0.1:1234";
  o.bootstrap = true;
  REQUIRE(apply_overrides(c, o));
  CHECK(c.node_id == "other");
  CHECK(c.rest_listen.port == 1234);
  CHECK(c.bootstrap);
  config_overrides bad;
  bad.peer_listen = "nope";
  auto r = apply_overrides(c, bad);
  REQUIRE(!r);
  CHECK(r.error().detail.starts_with("--peer-listen"));
}

TEST_CASE("the example config in conf/ parses and sets what it shows") {
  std::ifstream in(std::string(SHARDD_SOURCE_ROOT) + "/conf/shardd.example.json");
  REQUIRE(in);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto r = parse_config(text, "/etc/shardd");
  INFO((r ? std::string() : r.error().detail));
  REQUIRE(r);
  CHECK(r->node_id == "node-1");
  CHECK(r->migration_undo_window_ms == 30000);
  CHECK(r->rebalance.mode == rebalance_mode::automatic);
  CHECK(r->read_threads == 2);
  CHECK(r->migration_compress_min_ratio == 4);
}

TEST_CASE("meta: the embedded plane by default, or etcd members with TLS files resolved, checked against the cluster flags") {
  temp_dir dir;
  auto c = valid_config(dir);
  CHECK(!c.etcd.enabled());
  auto eps = parse_meta("etcd://10.0.0.1:2379,etcd-2.example:2379/");
  REQUIRE(eps);
  REQUIRE(eps->size() == 2);
  CHECK((*eps)[1].to_string() == "etcd-2.example:2379");
  CHECK(parse_meta("embedded")->empty());
  CHECK(parse_meta("")->empty());
  CHECK(!parse_meta("http://127.0.0.1:2379"));
  CHECK(!parse_meta("etcd://127.0.0.1"));       // no port
  CHECK(!parse_meta("etcd://127.0.0.1:2379,"));  // an empty member

  auto file = parse_config(R"({"meta":"etcd://127.0.0.1:2379","etcd":{"ca":"ca.pem","election_ttl_s":3,"prefix":"/p/"}})",
                           "/etc/shardd");
  REQUIRE(file);
  CHECK(file->etcd.endpoints.size() == 1);
  CHECK(file->etcd.ca == "/etc/shardd/ca.pem");
  CHECK(file->etcd.election_ttl_s == 3);
  CHECK(file->etcd.prefix == "/p/");
  CHECK(error_of(R"({"meta":"zk://h:1"})").find("meta") != std::string::npos);
  CHECK(error_of(R"({"etcd":{"election_ttl_s":0}})").find("etcd.election_ttl_s") != std::string::npos);
  CHECK(error_of(R"({"etcd":{"usr":"x"}})").find("etcd.usr") != std::string::npos);

  config_overrides o;
  o.meta = "etcd://127.0.0.1:2379";
  REQUIRE(apply_overrides(c, o));
  CHECK(c.etcd.enabled());
  CHECK(validate(c));
  c.bootstrap = true;
  auto v = validate(c);
  REQUIRE(!v);
  CHECK(v.error().detail.find("cluster.bootstrap and cluster.join are for the embedded plane") != std::string::npos);
  c.bootstrap = false;
  c.etcd.cert = dir.sub("c.pem");
  CHECK(!validate(c));  // a client certificate without its key
  c.etcd.key = dir.sub("k.pem");
  CHECK(!validate(c));  // and without a CA: https needs one
  c.etcd.ca = dir.sub("ca.pem");
  CHECK(validate(c));
  c.etcd.user = "shardd";
  CHECK(!validate(c));  // a user without a password
  c.etcd.password = "pw";
  CHECK(validate(c));
  c.etcd.prefix = "shardd";
  CHECK(!validate(c));
  config_overrides bad;
  bad.meta = "etcd:/x";
  CHECK(!apply_overrides(c, bad));
}
