#include "common/config.hpp"

#include "shardd/json_fields.hpp"

#include <charconv>
#include <filesystem>

namespace shardd {

namespace {

std::string resolve(const std::string& base, const std::string& p) {
  if (p.empty() || base.empty() || std::filesystem::path(p).is_absolute()) return p;
  return (std::filesystem::path(base) / p).lexically_normal().string();
}

result<host_port> read_address(json_fields& f, std::string_view key, host_port fallback) {
  auto s = f.opt_string(key);
  if (!s) return s.error();
  if (!*s) return fallback;
  auto hp = parse_host_port(**s);
  if (!hp) return f.fail(key, hp.error().detail);
  return *hp;
}

}  // namespace

result<std::vector<host_port>> parse_meta(std::string_view meta) {
  if (meta.empty() || meta == "embedded") return std::vector<host_port>{};
  constexpr std::string_view scheme = "etcd://";
  if (!meta.starts_with(scheme))
    return make_error(errc::invalid_argument, "must be \"embedded\" or etcd://HOST:PORT[,HOST:PORT...], not \"" +
                                                  std::string(meta) + "\"");
  std::vector<host_port> out;
  std::string_view rest = meta.substr(scheme.size());
  while (true) {
    const auto comma = rest.find(',');
    auto one = rest.substr(0, comma);
    if (!one.empty() && one.back() == '/' && comma == std::string_view::npos) one.remove_suffix(1);
    auto hp = parse_host_port(one);
    if (!hp) return make_error(errc::invalid_argument, "etcd member \"" + std::string(one) + "\": " + hp.error().detail);
    out.push_back(*hp);
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
  }
  if (out.size() > 16) return make_error(errc::invalid_argument, "at most 16 etcd members");
  return out;
}

result<node_config> parse_config(std::string_view text, const std::string& base_dir) {
  auto parsed = parse_json(text, "config");
  if (!parsed) return parsed.error();
  if (!parsed->is_object()) return make_error(errc::invalid_argument, "config: expected a JSON object");
  node_config c;
  json_fields root(parsed->get_object(), "");
  SHARDD_READ_OPT_STRING(c.node_id, root, "node_id");
  SHARDD_READ_OPT_STRING(c.cluster_id, root, "cluster_id");
  SHARDD_READ_OPT_STRING(c.data_dir, root, "data_dir");
  SHARDD_READ_OPT_STRING(c.log_level, root, "log_level");
  SHARDD_READ(c.weight, root.opt_u64("weight", c.weight, 0, 1000));
  SHARDD_READ(c.threads, root.opt_u64("threads", c.threads, 1, 64));
  SHARDD_READ(c.shutdown_timeout_ms, root.opt_u64("shutdown_timeout_ms", c.shutdown_timeout_ms, 100, 600000));

  {
    auto meta = root.opt_string("meta");
    if (!meta) return meta.error();
    if (*meta) {
      auto eps = parse_meta(**meta);
      if (!eps) return root.fail("meta", eps.error().detail);
      c.etcd.endpoints = std::move(*eps);
    }
  }
  const boost::json::object* obj = nullptr;
  SHARDD_READ(obj, root.opt_object("etcd"));
  if (obj) {
    json_fields f(*obj, "etcd");
    SHARDD_READ_OPT_STRING(c.etcd.ca, f, "ca");
    SHARDD_READ_OPT_STRING(c.etcd.cert, f, "cert");
    SHARDD_READ_OPT_STRING(c.etcd.key, f, "key");
    SHARDD_READ_OPT_STRING(c.etcd.prefix, f, "prefix");
    SHARDD_READ_OPT_STRING(c.etcd.user, f, "user");
    SHARDD_READ_OPT_STRING(c.etcd.password, f, "password");
    SHARDD_READ(c.etcd.election_ttl_s, f.opt_u64("election_ttl_s", c.etcd.election_ttl_s, 1, 60));
    SHARDD_READ(c.etcd.timeout_ms, f.opt_u64("timeout_ms", c.etcd.timeout_ms, 100, 60000));
    if (auto fin = f.finish(); !fin) return fin.error();
  }
  SHARDD_READ(obj, root.opt_object("rest"));
  if (obj) {
    json_fields f(*obj, "rest");
    SHARDD_READ(c.rest_listen, read_address(f, "listen", c.rest_listen));
    SHARDD_READ_OPT_STRING(c.token, f, "token");
    SHARDD_READ(c.max_body_bytes, f.opt_u64("max_body_bytes", c.max_body_bytes, 1024, 64ull << 20));
    SHARDD_READ(c.idle_timeout_ms, f.opt_u64("idle_timeout_ms", c.idle_timeout_ms, 100, 3600000));
    SHARDD_READ(c.request_timeout_ms, f.opt_u64("request_timeout_ms", c.request_timeout_ms, 100, 600000));
    SHARDD_READ(c.header_timeout_ms, f.opt_u64("header_timeout_ms", c.header_timeout_ms, 100, 600000));
    SHARDD_READ(c.max_connections, f.opt_u64("max_connections", c.max_connections, 1, 1000000));
    SHARDD_READ(c.access_log, f.opt_bool("access_log", c.access_log));
    SHARDD_READ(c.access_log_sample, f.opt_double("access_log_sample", c.access_log_sample, 0.0, 1.0));
    if (auto fin = f.finish(); !fin) return fin.error();
  }
  SHARDD_READ(obj, root.opt_object("peer"));
  if (obj) {
    json_fields f(*obj, "peer");
    SHARDD_READ(c.peer_listen, read_address(f, "listen", c.peer_listen));
    SHARDD_READ(c.peer_max_in_flight, f.opt_u64("max_in_flight", c.peer_max_in_flight, 1, 65536));
    SHARDD_READ(c.peer_write_timeout_ms, f.opt_u64("write_timeout_ms", c.peer_write_timeout_ms, 100, 3600000));
    SHARDD_READ(c.peer_idle_timeout_ms, f.opt_u64("idle_timeout_ms", c.peer_idle_timeout_ms, 1000, 86400000));
    if (auto fin = f.finish(); !fin) return fin.error();
  }
  SHARDD_READ(obj, root.opt_object("tls"));
  if (obj) {
    json_fields f(*obj, "tls");
    SHARDD_READ_OPT_STRING(c.tls.cert, f, "cert");
    SHARDD_READ_OPT_STRING(c.tls.key, f, "key");
    SHARDD_READ_OPT_STRING(c.tls.ca, f, "ca");
    if (auto fin = f.finish(); !fin) return fin.error();
  }
  SHARDD_READ(obj, root.opt_object("cluster"));
  if (obj) {
    json_fields f(*obj, "cluster");
    SHARDD_READ(c.bootstrap, f.opt_bool("bootstrap", c.bootstrap));
    auto join = f.opt_string("join");
    if (!join) return join.error();
    if (*join && !(*join)->empty()) {
      auto hp = parse_host_port(**join);
      if (!hp) return f.fail("join", hp.error().detail);
      c.join = *hp;
    }
    SHARDD_READ(c.vnodes_per_weight, f.opt_u64("vnodes_per_weight", c.vnodes_per_weight, 1, 4096));
    SHARDD_READ(c.placement_epsilon, f.opt_double("placement_epsilon", c.placement_epsilon, 0.0, 10.0));
    SHARDD_READ(c.default_shards, f.opt_u64("default_shards", c.default_shards, 1, 4096));
    SHARDD_READ(c.heartbeat_interval_ms, f.opt_u64("heartbeat_interval_ms", c.heartbeat_interval_ms, 50, 60000));
    SHARDD_READ(c.heartbeat_miss_limit, f.opt_u64("heartbeat_miss_limit", c.heartbeat_miss_limit, 1, 100));
    if (auto fin = f.finish(); !fin) return fin.error();
  }
  SHARDD_READ(obj, root.opt_object("migration"));
  if (obj) {
    json_fields f(*obj, "migration");
    SHARDD_READ(c.migration_undo_window_ms, f.opt_u64("undo_window_ms", c.migration_undo_window_ms, 0, 7 * 24 * 3600 * 1000ull));
    SHARDD_READ(c.migration_bytes_per_sec, f.opt_u64("max_bytes_per_sec", c.migration_bytes_per_sec));
    SHARDD_READ(c.migration_adaptive, f.opt_bool("adaptive", c.migration_adaptive));
    SHARDD_READ(c.migration_adaptive_p99_ms, f.opt_double("adaptive_p99_ms", c.migration_adaptive_p99_ms, 0.001, 60000));
    SHARDD_READ(c.migration_adaptive_min_bytes_per_sec,
                f.opt_u64("adaptive_min_bytes_per_sec", c.migration_adaptive_min_bytes_per_sec, 4096, UINT64_MAX));
    SHARDD_READ(c.migration_threads, f.opt_u64("threads", c.migration_threads, 1, 16));
    SHARDD_READ(c.migration_nice, f.opt_u64("nice", c.migration_nice, 0, 19));
    SHARDD_READ(c.migration_high_nice, f.opt_u64("high_priority_nice", c.migration_high_nice, 0, 19));
    SHARDD_READ(c.migration_compress_min_ratio, f.opt_double("compress_min_ratio", c.migration_compress_min_ratio, 0, 1000));
    if (c.migration_compress_min_ratio > 0 && c.migration_compress_min_ratio < 1)
      return f.fail("compress_min_ratio", "must be 0 (never compress) or at least 1");
    SHARDD_READ(c.migration_max_outgoing, f.opt_u64("max_outgoing", c.migration_max_outgoing, 1, 1000));
    SHARDD_READ(c.migration_max_incoming, f.opt_u64("max_incoming", c.migration_max_incoming, 1, 1000));
    for (const char* gone : {"convergence", "convergence_batch"})
      if (f.find(gone))
        return f.fail(gone, "the rebalancer makes every automatic move now: set rebalance.mode (auto, plan-only or off) instead");
    SHARDD_READ(c.migration_keep_finished_ms,
                f.opt_u64("keep_finished_ms", c.migration_keep_finished_ms, 0, 365 * 24 * 3600 * 1000ull));
    SHARDD_READ(c.migration_keep_finished, f.opt_u64("keep_finished", c.migration_keep_finished, 0, 1000000));
    if (auto fin = f.finish(); !fin) return fin.error();
  }
  SHARDD_READ(obj, root.opt_object("rebalance"));
  if (obj) {
    json_fields f(*obj, "rebalance");
    if (auto r = read_rebalance_settings(f, c.rebalance); !r) return r.error();
    if (auto fin = f.finish(); !fin) return fin.error();
  }
  SHARDD_READ(obj, root.opt_object("monitor"));
  if (obj) {
    json_fields f(*obj, "monitor");
    SHARDD_READ(c.monitor_interval_ms, f.opt_u64("interval_ms", c.monitor_interval_ms, 0, monitor_max_interval_ms));
    SHARDD_READ(c.monitor_history_ms, f.opt_u64("history_ms", c.monitor_history_ms, monitor_min_history_ms, monitor_max_history_ms));
    SHARDD_READ(c.monitor_shard_bytes_limit, f.opt_u64("shard_bytes_limit", c.monitor_shard_bytes_limit, 0, 1ull << 50));
    SHARDD_READ(c.monitor_disk_watermark_percent,
                f.opt_u64("disk_watermark_percent", c.monitor_disk_watermark_percent, 1, 100));
    SHARDD_READ(c.monitor_forecast_horizon_ms,
                f.opt_u64("forecast_horizon_ms", c.monitor_forecast_horizon_ms, 60 * 1000, 365 * 24 * 3600 * 1000ull));
    if (auto fin = f.finish(); !fin) return fin.error();
    if (c.monitor_interval_ms != 0 && c.monitor_interval_ms < monitor_min_interval_ms)
      return make_error(errc::invalid_argument, "monitor.interval_ms: must be 0 (off) or at least " +
                                                    std::to_string(monitor_min_interval_ms));
  }
  SHARDD_READ(obj, root.opt_object("storage"));
  if (obj) {
    json_fields f(*obj, "storage");
    auto d = f.opt_string("durability");
    if (!d) return d.error();
    if (*d) {
      if (**d == "fsync")
        c.durability = durability_mode::fsync;
      else if (**d == "async")
        c.durability = durability_mode::async;
      else
        return f.fail("durability", "must be \"fsync\" or \"async\"");
    }
    SHARDD_READ(c.block_cache_mb, f.opt_u64("block_cache_mb", c.block_cache_mb, 8, 1u << 20));
    SHARDD_READ(c.read_threads, f.opt_u64("read_threads", c.read_threads, 1, 64));
    SHARDD_READ(c.capacity_bytes, f.opt_u64("capacity_bytes", c.capacity_bytes, 0, std::uint64_t{1} << 60));
    if (auto fin = f.finish(); !fin) return fin.error();
  }
  SHARDD_READ(obj, root.opt_object("limits"));
  if (obj) {
    json_fields f(*obj, "limits");
    SHARDD_READ(c.max_doc_bytes, f.opt_u64("max_doc_bytes", c.max_doc_bytes, 16, 64u << 20));
    SHARDD_READ(c.max_scan_page_bytes, f.opt_u64("max_scan_page_bytes", c.max_scan_page_bytes, 64u << 10, 256u << 20));
    if (auto fin = f.finish(); !fin) return fin.error();
  }
  if (auto fin = root.finish(); !fin) return fin.error();

  c.data_dir = resolve(base_dir, c.data_dir);
  c.tls.cert = resolve(base_dir, c.tls.cert);
  c.tls.key = resolve(base_dir, c.tls.key);
  c.tls.ca = resolve(base_dir, c.tls.ca);
  c.etcd.ca = resolve(base_dir, c.etcd.ca);
  c.etcd.cert = resolve(base_dir, c.etcd.cert);
  c.etcd.key = resolve(base_dir, c.etcd.key);
  return c;
}

#undef SHARDD_READ
#undef SHARDD_READ_OPT_STRING

result<void> apply_overrides(node_config& c, const config_overrides& o) {
  if (o.node_id) c.node_id = *o.node_id;
  if (o.data_dir) c.data_dir = *o.data_dir;
  if (o.log_level) c.log_level = *o.log_level;
  if (o.token) c.token = *o.token;
  if (o.tls_cert) c.tls.cert = *o.tls_cert;
  if (o.tls_key) c.tls.key = *o.tls_key;
  if (o.tls_ca) c.tls.ca = *o.tls_ca;
  if (o.rest_listen) {
    auto hp = parse_host_port(*o.rest_listen);
    if (!hp) return make_error(errc::invalid_argument, "--rest-listen: " + hp.error().detail);
    c.rest_listen = *hp;
  }
  if (o.peer_listen) {
    auto hp = parse_host_port(*o.peer_listen);
    if (!hp) return make_error(errc::invalid_argument, "--peer-listen: " + hp.error().detail);
    c.peer_listen = *hp;
  }
  if (o.join) {
    auto hp = parse_host_port(*o.join);
    if (!hp) return make_error(errc::invalid_argument, "--join: " + hp.error().detail);
    c.join = *hp;
  }
  if (o.bootstrap) c.bootstrap = true;
  if (o.meta) {
    auto eps = parse_meta(*o.meta);
    if (!eps) return make_error(errc::invalid_argument, "--meta: " + eps.error().detail);
    c.etcd.endpoints = std::move(*eps);
  }
  if (o.etcd_ca) c.etcd.ca = *o.etcd_ca;
  if (o.etcd_cert) c.etcd.cert = *o.etcd_cert;
  if (o.etcd_key) c.etcd.key = *o.etcd_key;
  if (o.etcd_user) c.etcd.user = *o.etcd_user;
  if (o.etcd_password) c.etcd.password = *o.etcd_password;
  return {};
}

result<void> validate(const node_config& c) {
  auto bad = [](std::string s) { return make_error(errc::invalid_argument, std::move(s)); };
  if (c.node_id.empty()) return bad("node_id: is required (config node_id or --node-id)");
  if (c.node_id.size() > 64) return bad("node_id: at most 64 characters");
  for (char ch : c.node_id)
    if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' || ch == '.'))
      return bad("node_id: only letters, digits, '-', '_' and '.' are allowed");
  if (c.cluster_id.empty()) return bad("cluster_id: must not be empty");
  if (c.data_dir.empty()) return bad("data_dir: is required (config data_dir or --data-dir)");
  if (c.token.size() < 16) return bad("rest.token: is required and must be at least 16 characters (config rest.token or SHARDD_TOKEN)");
  if (c.tls.cert.empty()) return bad("tls.cert: is required");
  if (c.tls.key.empty()) return bad("tls.key: is required");
  if (c.tls.ca.empty()) return bad("tls.ca: is required");
  for (auto [field, path] : {std::pair{"tls.cert", &c.tls.cert}, {"tls.key", &c.tls.key}, {"tls.ca", &c.tls.ca}}) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(*path, ec)) return bad(std::string(field) + ": no such file: " + *path);
  }
  static const char* levels[] = {"trace", "debug", "info", "warn", "error", "critical", "off"};
  if (std::find(std::begin(levels), std::end(levels), c.log_level) == std::end(levels))
    return bad("log_level: must be one of trace, debug, info, warn, error, critical, off");
  if (c.bootstrap && c.join) return bad("cluster.bootstrap and cluster.join exclude each other: a node either starts a cluster or joins one");
  if (c.etcd.enabled()) {
    if (c.bootstrap || c.join)
      return bad("cluster.bootstrap and cluster.join are for the embedded plane: with meta etcd://... every node finds the "
                 "cluster (or founds it) in etcd");
    if (c.etcd.cert.empty() != c.etcd.key.empty()) return bad("etcd.cert and etcd.key: give both or neither");
    if (c.etcd.user.empty() != c.etcd.password.empty())
      return bad("etcd.user and etcd.password: give both or neither (the password also as SHARDD_ETCD_PASSWORD)");
    if (!c.etcd.cert.empty() && c.etcd.ca.empty()) return bad("etcd.cert: a client certificate needs etcd.ca (https)");
    if (c.etcd.prefix.empty() || c.etcd.prefix.front() != '/' || c.etcd.prefix.back() != '/')
      return bad("etcd.prefix: must start and end with '/'");
    for (auto [field, path] : {std::pair{"etcd.ca", &c.etcd.ca}, {"etcd.cert", &c.etcd.cert}, {"etcd.key", &c.etcd.key}}) {
      std::error_code ec;
      if (!path->empty() && !std::filesystem::is_regular_file(*path, ec)) return bad(std::string(field) + ": no such file: " + *path);
    }
  } else if (!c.etcd.ca.empty() || !c.etcd.cert.empty() || !c.etcd.user.empty()) {
    return bad("etcd.ca, etcd.cert, etcd.user: set only with meta etcd://...");
  }
  if (c.rest_listen == c.peer_listen) return bad("peer.listen: must differ from rest.listen");
  if (c.max_doc_bytes > c.max_body_bytes) return bad("limits.max_doc_bytes: must not exceed rest.max_body_bytes");
  return {};
}

}  // namespace shardd
