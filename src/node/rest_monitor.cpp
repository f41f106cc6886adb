// REST: the monitor's surface — windows of per-shard and per-node statistics, Prometheus
// metrics, the monitor's settings and the controller's cluster-wide load table.
#include "node/controller.hpp"
#include "node/event_journal.hpp"
#include "node/gather.hpp"
#include "node/monitor.hpp"
#include "node/rest_internal.hpp"
#include "node/store_ops.hpp"
#include "shardd/json_fields.hpp"
#include "shardd/text.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <limits>
#include <type_traits>

namespace shardd {

namespace {

constexpr std::string_view default_window = "5m";

std::map<std::uint32_t, std::string> index_names(const partition_map& m) {
  std::map<std::uint32_t, std::string> out;
  for (const auto& [name, ix] : m.indexes) out.emplace(ix.id, name);
  return out;
}

/// An index's name from `index_names`, or its id when the map no longer has it.
std::string name_of(const std::map<std::uint32_t, std::string>& names, std::uint32_t index_id) {
  auto it = names.find(index_id);
  return it != names.end() ? it->second : std::to_string(index_id);
}

double per_sec(std::uint64_t n, double secs) { return secs > 0 ? static_cast<double>(n) / secs : 0.0; }

/// Rates print with three decimals at most.
double round3(double v) { return std::round(v * 1000) / 1000; }

json::object latency_json(const std::array<latency_summary, load_op_count>& lat) {
  json::object o;
  for (std::size_t op = 0; op < load_op_count; ++op) {
    const auto& l = lat[op];
    if (l.count == 0) continue;
    json::object e;
    e["count"] = l.count;
    e["p50"] = l.p50;
    e["p90"] = l.p90;
    e["p99"] = l.p99;
    e["max"] = l.max;
    o[load_op_names[op]] = std::move(e);
  }
  return o;
}

json::object view_json(const stats_view& v, const std::string& node, const partition_map& m) {
  const auto names = index_names(m);
  const double s = v.seconds;
  json::object o;
  o["node"] = node;
  o["window_seconds"] = round3(s);
  o["samples"] = v.samples;
  o["age_ms"] = v.age_ms;
  o["interval_ms"] = v.settings.interval_ms;
  o["history_ms"] = v.settings.history_ms;
  const auto& f = v.node.now;
  json::object n;
  n["disk_used_bytes"] = f.disk_used;
  n["disk_free_bytes"] = f.disk_free;
  n["disk_total_bytes"] = f.disk_total;
  n["disk_used_change_bytes"] = v.node.disk_used_change;
  n["data_bytes"] = f.data_bytes;
  n["pending_compaction_bytes"] = f.pending_compaction_bytes;
  n["l0_files"] = f.l0_files;
  n["memtable_bytes"] = f.memtable_bytes;
  n["rss_bytes"] = f.rss_bytes;
  n["rest_connections"] = f.rest_connections;
  n["peer_connections"] = f.peer_connections;
  if (f.heartbeat_rtt_us) n["heartbeat_rtt_us"] = *f.heartbeat_rtt_us; else n["heartbeat_rtt_us"] = nullptr;
  n["requests"] = v.node.rest_requests;
  n["requests_per_sec"] = round3(per_sec(v.node.rest_requests, s));
  n["errors"] = v.node.rest_errors;
  n["forwarded"] = v.node.forwarded;
  n["forwarded_per_sec"] = round3(per_sec(v.node.forwarded, s));
  n["migration_in_bytes_per_sec"] = round3(per_sec(v.node.migration_bytes_in, s));
  n["migration_out_bytes_per_sec"] = round3(per_sec(v.node.migration_bytes_out, s));
  n["latency_us"] = latency_json(v.node.latency);
  o["totals"] = std::move(n);
  json::array peers;
  for (const auto& p : v.peers) {
    json::object e;
    e["node"] = p.node;
    if (p.at_unix_ms) {
      e["rtt_us"] = p.rtt_us;
      e["max_rtt_us"] = p.max_us;  // of the last ten answered
      e["answered_unix_ms"] = p.at_unix_ms;
    } else {
      e["rtt_us"] = nullptr;
    }
    e["reachable"] = p.error.empty();
    if (!p.error.empty()) e["error"] = p.error;
    peers.push_back(std::move(e));
  }
  o["peers"] = std::move(peers);
  json::array shards;
  for (const auto& sw : v.shards) {
    json::object e;
    e["index"] = name_of(names, sw.index_id);
    e["shard"] = sw.shard_id;
    e["records"] = sw.records;
    e["bytes"] = sw.bytes;
    e["reads"] = sw.reads;
    e["writes"] = sw.writes;
    e["deletes"] = sw.deletes;
    e["scans"] = sw.scans;
    e["scanned"] = sw.scanned;
    e["bytes_in"] = sw.bytes_in;
    e["bytes_out"] = sw.bytes_out;
    e["errors"] = sw.errors;
    e["reads_per_sec"] = round3(per_sec(sw.reads, s));
    e["writes_per_sec"] = round3(per_sec(sw.writes, s));
    e["deletes_per_sec"] = round3(per_sec(sw.deletes, s));
    e["scans_per_sec"] = round3(per_sec(sw.scans, s));
    e["bytes_in_per_sec"] = round3(per_sec(sw.bytes_in, s));
    e["bytes_out_per_sec"] = round3(per_sec(sw.bytes_out, s));
    e["latency_us"] = latency_json(sw.latency);
    shards.push_back(std::move(e));
  }
  o["shards"] = std::move(shards);
  return o;
}

std::string num(const json::value& v) {
  if (v.is_int64()) return std::to_string(v.get_int64());
  if (v.is_uint64()) return std::to_string(v.get_uint64());
  if (v.is_double()) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.1f", v.get_double());
    return buf;
  }
  if (v.is_string()) return std::string(v.get_string());
  return "-";
}

std::string p99_of(const json::object& shard, const char* op) {
  const auto* lat = shard.if_contains("latency_us");
  const auto* e = lat && lat->is_object() ? lat->get_object().if_contains(op) : nullptr;
  const auto* p = e && e->is_object() ? e->get_object().if_contains("p99") : nullptr;
  return p ? num(*p) : "-";
}

/// One row per shard of every node answer (`nodes`: objects as view_json makes them).
cat_table stats_text(const json::array& nodes) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& nv : nodes) {
    if (!nv.is_object()) continue;
    const auto& n = nv.get_object();
    const std::string node = n.contains("node") ? num(n.at("node")) : "-";
    const auto* shards = n.if_contains("shards");
    if (!shards || !shards->is_array()) {
      rows.push_back({node, "-", "-", "-", "-", "-", "-", "-", "-", "-", "-", "-", "-", "-"});
      continue;
    }
    for (const auto& sv : shards->get_array()) {
      const auto& s = sv.get_object();
      auto g = [&](const char* k) { return s.contains(k) ? num(s.at(k)) : "-"; };
      rows.push_back({node, g("index"), g("shard"), g("records"), g("bytes"), g("reads_per_sec"), g("writes_per_sec"),
                      g("deletes_per_sec"), g("scans_per_sec"), g("bytes_in_per_sec"), g("bytes_out_per_sec"), g("errors"),
                      p99_of(s, "read"), p99_of(s, "write")});
    }
  }
  return {{{"node", text_col, "node id"},
           {"index", text_col, "index name"},
           {"shard", num_col, "shard number"},
           {"records", num_col, "records at the window's end"},
           {"bytes", bytes_col, "bytes at the window's end"},
           {"read/s", num_col, "point reads per second over the window"},
           {"write/s", num_col, "writes per second"},
           {"delete/s", num_col, "deletes per second"},
           {"scan/s", num_col, "records scanned per second"},
           {"in_B/s", bytes_col, "bytes written per second"},
           {"out_B/s", bytes_col, "bytes read per second"},
           {"errors", num_col, "failed operations in the window"},
           {"read_p99_us", num_col, "99th percentile of read latency, microseconds"},
           {"write_p99_us", num_col, "99th percentile of write latency, microseconds"}},
          std::move(rows)};
}

// --- Prometheus text exposition (format 0.0.4) ---------------------------------------------

std::string label_value(std::string_view v) {
  std::string out;
  for (char ch : v) {
    if (ch == '\\') out += "\\\\";
    else if (ch == '"') out += "\\\"";
    else if (ch == '\n') out += "\\n";
    else out += ch;
  }
  return out;
}

/// Latency bucket bounds in seconds (the `le` labels), as microseconds.
constexpr std::array<std::uint64_t, 16> latency_bounds_us = {100,    250,    500,     1000,    2500,    5000,    10000,   25000,
                                                             50000, 100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000};

class exposition {
 public:
  void family(std::string_view name, std::string_view type, std::string_view help) {
    out_.append("# HELP ").append(name).append(" ").append(help).append("\n");
    out_.append("# TYPE ").append(name).append(" ").append(type).append("\n");
  }
  void sample(std::string_view name, std::string_view labels, double v) {
    out_.append(name);
    if (!labels.empty()) out_.append("{").append(labels).append("}");
    char buf[64];
    if (v == static_cast<double>(static_cast<std::uint64_t>(v)) && v >= 0 && v < 1e18)
      std::snprintf(buf, sizeof buf, " %" PRIu64 "\n", static_cast<std::uint64_t>(v));
    else
      std::snprintf(buf, sizeof buf, " %.9g\n", v);
    out_.append(buf);
  }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

std::string format_le(std::uint64_t us) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", static_cast<double>(us) / 1e6);
  return buf;
}

}  // namespace

awaitable<json::array> rest_api::fan_out(call& c, std::string target, json::object mine, http_method method,
                                         std::string body) {
  // Every other node that is up answers for itself, at once; the others are listed with why
  // they did not.
  std::vector<std::string> asked;
  std::vector<net::http_request> reqs;
  for (const auto& [id, n] : c.snap->map->nodes)
    if (id != ctx_.config.node_id && n.state == node_state::up) asked.push_back(id);
  reqs.reserve(asked.size());
  std::vector<awaitable<result<cluster_client::relayed>>> calls;
  for (const auto& id : asked) {
    net::http_request r;
    r.method = method;
    r.method_text = std::string(method_name(method));
    r.target = target;
    r.body = body;
    if (!body.empty()) r.content_type = "application/json";
    reqs.push_back(std::move(r));
    calls.push_back(cluster_.forward(id, reqs.back(), c.snap->map->version));
  }
  auto answers = co_await gather(std::move(calls));
  json::array nodes;
  nodes.push_back(std::move(mine));
  for (std::size_t i = 0; i < answers.size(); ++i) {
    std::string why;
    if (!answers[i]) {
      why = answers[i].error().detail;
    } else if (answers[i]->response.status != 200) {
      why = "answered " + std::to_string(answers[i]->response.status);
    } else {
      boost::system::error_code ec;
      auto v = json::parse(answers[i]->response.body, ec);
      if (!ec && v.is_object()) {
        nodes.push_back(std::move(v));
        continue;
      }
      why = "an unreadable answer";
    }
    json::object e;
    e["node"] = asked[i];
    e["error"] = why;
    nodes.push_back(std::move(e));
  }
  for (const auto& [id, n] : c.snap->map->nodes)
    if (id != ctx_.config.node_id && n.state != node_state::up && n.state != node_state::left) {
      json::object e;
      e["node"] = id;
      e["error"] = std::string("the node is ") + std::string(to_string(n.state));
      nodes.push_back(std::move(e));
    }
  co_return nodes;
}

std::optional<std::string> rest_api::parse_scope(call& c, bool& cluster) {
  const std::string scope = c.param("scope") ? *c.param("scope") : std::string("node");
  if (scope != "node" && scope != "cluster") return std::string("scope must be node or cluster");
  cluster = scope == "cluster" && !c.forwarded && ctx_.peer;
  return std::nullopt;
}

awaitable<http_response> rest_api::stats(call& c) {
  if (!ctx_.mon) co_return c.fail(503, "unavailable", "this node runs no monitor");
  const std::string wtext = c.param("window") ? *c.param("window") : std::string(default_window);
  auto w = parse_window(wtext);
  if (!w) co_return c.fail(w.error());
  if (static_cast<std::uint64_t>(w->count()) > monitor_max_history_ms)
    co_return c.fail(400, "invalid-argument", "window must not exceed the longest history, " +
                                                  std::to_string(monitor_max_history_ms / 3600000) + "h");
  bool cluster = false;
  if (auto bad = parse_scope(c, cluster)) co_return c.fail(400, "invalid-argument", *bad);

  auto view = co_await ctx_.mon->window(*w);
  auto mine = view_json(view, ctx_.config.node_id, *c.snap->map);
  if (!cluster) {
    if (c.text()) {
      json::array one;
      one.push_back(std::move(mine));
      co_return c.table(stats_text(one));
    }
    co_return json_response(200, to_json_text(mine));
  }
  auto nodes = co_await fan_out(c, "/v1/stats?window=" + wtext, std::move(mine));
  if (c.text()) co_return c.table(stats_text(nodes));
  json::object o;
  o["window"] = wtext;
  o["nodes"] = std::move(nodes);
  co_return json_response(200, to_json_text(o));
}

awaitable<http_response> rest_api::metrics(call& c) {
  exposition x;
  const auto& self = ctx_.config.node_id;
  const std::string node_label = "node=\"" + label_value(self) + "\"";
  const auto snap = c.snap;
  const auto names = index_names(*snap->map);

  x.family("shardd_map_version", "gauge", "Version of the partition map this node holds.");
  x.sample("shardd_map_version", node_label, static_cast<double>(snap->map->version));

  if (ctx_.mon) {
    const auto f = ctx_.mon->figures_now();
    const auto settings = ctx_.mon->settings();
    auto gauge = [&](const char* name, const char* help, double v) {
      x.family(name, "gauge", help);
      x.sample(name, node_label, v);
    };
    auto counter = [&](const char* name, const char* help, double v) {
      x.family(name, "counter", help);
      x.sample(name, node_label, v);
    };
    gauge("shardd_monitor_interval_seconds", "The monitor's sampling interval (0: sampling off).", settings.interval_ms / 1000.0);
    gauge("shardd_disk_used_bytes", "Bytes in use on the file system of the data directory.", static_cast<double>(f.disk_used));
    gauge("shardd_disk_free_bytes", "Bytes available to shardd on the file system of the data directory.", static_cast<double>(f.disk_free));
    gauge("shardd_disk_total_bytes", "Size of the file system of the data directory.", static_cast<double>(f.disk_total));
    gauge("shardd_data_bytes", "Bytes of RocksDB's live table files.", static_cast<double>(f.data_bytes));
    gauge("shardd_rocksdb_pending_compaction_bytes", "RocksDB's estimate of the bytes compaction must rewrite.",
          static_cast<double>(f.pending_compaction_bytes));
    gauge("shardd_rocksdb_l0_files", "Level-0 table files of the records column family.", static_cast<double>(f.l0_files));
    gauge("shardd_rocksdb_memtable_bytes", "Bytes in RocksDB memtables.", static_cast<double>(f.memtable_bytes));
    gauge("shardd_resident_memory_bytes", "Resident set size of the process.", static_cast<double>(f.rss_bytes));
    gauge("shardd_rest_connections", "Open REST connections.", static_cast<double>(f.rest_connections));
    gauge("shardd_peer_connections", "Open incoming peer connections.", static_cast<double>(f.peer_connections));
    if (f.heartbeat_rtt_us)
      gauge("shardd_heartbeat_rtt_seconds", "Round trip of the last heartbeat to the controller.", *f.heartbeat_rtt_us / 1e6);
    const auto peers = ctx_.mon->peer_rtts();
    if (!peers.empty()) {
      x.family("shardd_peer_rtt_seconds", "gauge", "Round trip of the monitor's last answered ping to each other node.");
      for (const auto& p : peers)
        if (p.at_unix_ms) x.sample("shardd_peer_rtt_seconds", node_label + ",peer=\"" + label_value(p.node) + "\"", p.rtt_us / 1e6);
      x.family("shardd_peer_reachable", "gauge", "1 if the monitor's last ping to the node was answered, else 0.");
      for (const auto& p : peers) x.sample("shardd_peer_reachable", node_label + ",peer=\"" + label_value(p.node) + "\"", p.error.empty() ? 1 : 0);
    }
    counter("shardd_rest_requests_total", "REST requests answered, forwarded ones included.", static_cast<double>(f.rest_requests));
    counter("shardd_rest_errors_total", "REST requests answered with a 5xx status.", static_cast<double>(f.rest_errors));
    counter("shardd_forwarded_requests_total", "Requests relayed to the node that owns their shard.", static_cast<double>(f.forwarded));
    counter("shardd_migration_received_bytes_total", "Shard data received by moves to this node.", static_cast<double>(f.migration_bytes_in));
    counter("shardd_migration_sent_bytes_total", "Shard data sent by moves from this node.", static_cast<double>(f.migration_bytes_out));
    counter("shardd_migration_compression_saved_bytes_total",
            "Bytes of batches sent by moves from this node that compression kept off the wire.",
            static_cast<double>(f.migration_wire_saved));
    gauge("shardd_anomalies_open", "Anomalies open on this node.", ctx_.mon->anomalies_open());
    x.family("shardd_anomaly", "gauge",
             "1 for each open anomaly, by series (and index and shard for a shard's series); see GET /v1/anomalies.");
    for (const auto& a : co_await ctx_.mon->anomalies(0)) {
      std::string labels = "series=\"" + std::string(anomaly_series_names[static_cast<std::size_t>(a.series)]) + "\",";
      if (a.per_shard) {
        labels += "index=\"" + label_value(name_of(names, a.index_id)) + "\",shard=\"" +
                  std::to_string(a.shard_id) + "\",";
      }
      x.sample("shardd_anomaly", labels + node_label + ",id=\"" + std::to_string(a.id) + "\"", 1);
    }
  }

  // Per shard: every shard this node owns in its map.
  struct shard_row {
    std::string labels;
    const shard_counters* c;
    std::optional<storage::shard_stats> st;
  };
  std::vector<shard_row> rows;
  if (snap->load)
    for (const auto& sc : snap->load->all()) {
      std::string labels = "index=\"" + label_value(name_of(names, sc->index_id)) +
                           "\",shard=\"" + std::to_string(sc->shard_id) + "\"," + node_label;
      rows.push_back({std::move(labels), sc.get(), ctx_.store.stats(sc->index_id, sc->shard_id)});
    }
  auto per_shard = [&](const char* name, const char* type, const char* help, auto value) {
    x.family(name, type, help);
    for (const auto& r : rows) x.sample(name, r.labels, static_cast<double>(value(r)));
  };
  auto ld = [](const std::atomic<std::uint64_t>& a) { return a.load(std::memory_order_relaxed); };
  per_shard("shardd_shard_records", "gauge", "Records in the shard.", [](const shard_row& r) { return r.st ? r.st->records : 0; });
  per_shard("shardd_shard_bytes", "gauge", "Bytes of keys and documents in the shard.",
            [](const shard_row& r) { return r.st ? r.st->bytes : 0; });
  per_shard("shardd_shard_reads_total", "counter", "Point reads of the shard.", [&](const shard_row& r) { return ld(r.c->reads); });
  per_shard("shardd_shard_writes_total", "counter", "Records put into the shard.", [&](const shard_row& r) { return ld(r.c->writes); });
  per_shard("shardd_shard_deletes_total", "counter", "Records deleted from the shard.", [&](const shard_row& r) { return ld(r.c->deletes); });
  per_shard("shardd_shard_scans_total", "counter", "Scan requests that read the shard.", [&](const shard_row& r) { return ld(r.c->scans); });
  per_shard("shardd_shard_scanned_records_total", "counter", "Records scans returned from the shard.",
            [&](const shard_row& r) { return ld(r.c->scanned); });
  per_shard("shardd_shard_written_bytes_total", "counter", "Bytes of keys and documents written to the shard.",
            [&](const shard_row& r) { return ld(r.c->bytes_in); });
  per_shard("shardd_shard_read_bytes_total", "counter", "Bytes of keys and documents read from the shard.",
            [&](const shard_row& r) { return ld(r.c->bytes_out); });
  per_shard("shardd_shard_errors_total", "counter", "Requests on the shard that failed on the server side.",
            [&](const shard_row& r) { return ld(r.c->errors); });

  x.family("shardd_shard_request_duration_seconds", "histogram",
           "Time to serve a request on the shard, by operation (only operations seen).");
  for (const auto& r : rows)
    for (std::size_t op = 0; op < load_op_count; ++op) {
      const auto h = r.c->latency_us[op].snapshot();
      if (h.count() == 0) continue;
      const std::string base = r.labels + ",op=\"" + load_op_names[op] + "\"";
      for (auto b : latency_bounds_us)
        x.sample("shardd_shard_request_duration_seconds_bucket", base + ",le=\"" + format_le(b) + "\"",
                 static_cast<double>(h.count_at_most(b)));
      x.sample("shardd_shard_request_duration_seconds_bucket", base + ",le=\"+Inf\"", static_cast<double>(h.count()));
      x.sample("shardd_shard_request_duration_seconds_sum", base, static_cast<double>(h.sum()) / 1e6);
      x.sample("shardd_shard_request_duration_seconds_count", base, static_cast<double>(h.count()));
    }
  http_response res;
  res.content_type = "text/plain; version=0.0.4; charset=utf-8";
  res.body = x.take();
  co_return res;
}

awaitable<http_response> rest_api::monitor_settings_endpoint(call& c) {
  if (!ctx_.mon) co_return c.fail(503, "unavailable", "this node runs no monitor");
  bool cluster = false;
  if (auto bad = parse_scope(c, cluster)) co_return c.fail(400, "invalid-argument", *bad);
  auto s = ctx_.mon->settings();
  std::string applied;  // the body sent on to the other nodes: every field, as applied here
  if (c.req.method == http_method::put) {
    auto parsed = parse_json(c.req.body, "request body");
    if (!parsed) co_return c.fail(parsed.error());
    if (!parsed->is_object()) co_return c.fail(400, "invalid-argument", "monitor settings must be a JSON object");
    json_fields f(parsed->get_object(), "");
    auto interval = f.opt_u64("interval_ms", s.interval_ms, 0, monitor_max_interval_ms);
    if (!interval) co_return c.fail(interval.error());
    auto history = f.opt_u64("history_ms", s.history_ms, monitor_min_history_ms, monitor_max_history_ms);
    if (!history) co_return c.fail(history.error());
    if (auto fin = f.finish(); !fin) co_return c.fail(fin.error());
    if (*interval != 0 && *interval < monitor_min_interval_ms)
      co_return c.fail(400, "invalid-argument",
                       "interval_ms: must be 0 (off) or at least " + std::to_string(monitor_min_interval_ms));
    s.interval_ms = static_cast<std::uint32_t>(*interval);
    s.history_ms = *history;
    // Kept in the node's store, so a restart keeps them (the config file gives the first ones).
    std::vector<storage::write_op> ops;
    ops.push_back({storage::op_kind::meta_put, std::string(monitor_settings_key), to_json(s)});
    if (auto w = co_await async_write(ctx_.store, std::move(ops)); !w) co_return c.fail(w.error());
    co_await ctx_.mon->apply(s);
    SHARDD_LOG(info, "monitor_settings_changed", "interval_ms", s.interval_ms, "history_ms", s.history_ms);
    applied = to_json(s);
  }
  json::object o;
  o["node"] = ctx_.config.node_id;
  o["interval_ms"] = s.interval_ms;
  o["history_ms"] = s.history_ms;
  o["sampling"] = s.interval_ms != 0;
  if (!cluster) co_return json_response(200, to_json_text(o));
  // Every node's settings (a PUT: set on each, as this node applied them); a node that did not
  // take them is listed with why, and `complete` says whether every node did.
  auto nodes = co_await fan_out(c, "/v1/monitor/settings", std::move(o), c.req.method, std::move(applied));
  bool all = true;
  for (const auto& n : nodes)
    if (n.as_object().contains("error")) all = false;
  json::object out;
  out["nodes"] = std::move(nodes);
  out["complete"] = all;
  co_return json_response(200, to_json_text(out));
}

awaitable<http_response> rest_api::cluster_load(call& c) {
  auto members = co_await ctx_.ctl->members();
  if (!members) co_return c.fail(members.error());
  const auto names = index_names(*c.snap->map);
  json::array nodes;
  std::vector<std::vector<std::string>> rows;
  std::sort(members->begin(), members->end(), [](const member_status& a, const member_status& b) { return a.node_id < b.node_id; });
  for (const auto& m : *members) {
    const auto* n = c.snap->map->find_node(m.node_id);
    if (!n || n->state == node_state::left) continue;
    json::object o;
    o["node"] = m.node_id;
    if (m.load_age) o["age_ms"] = m.load_age->count(); else o["age_ms"] = nullptr;
    double reads = 0, writes = 0, in = 0, out = 0;
    std::uint64_t records = 0, bytes = 0;
    json::array shards;
    for (const auto& l : m.load) {
      json::object e;
      const std::string ix = name_of(names, l.index_id);
      e["index"] = ix;
      e["shard"] = l.shard_id;
      e["records"] = l.records;
      e["bytes"] = l.bytes;
      e["reads_per_sec"] = round3(l.reads_per_sec);
      e["writes_per_sec"] = round3(l.writes_per_sec);
      e["bytes_in_per_sec"] = round3(l.bytes_in_per_sec);
      e["bytes_out_per_sec"] = round3(l.bytes_out_per_sec);
      shards.push_back(std::move(e));
      reads += l.reads_per_sec, writes += l.writes_per_sec, in += l.bytes_in_per_sec, out += l.bytes_out_per_sec;
      records += l.records, bytes += l.bytes;
      rows.push_back({m.node_id, ix, std::to_string(l.shard_id), std::to_string(l.records), std::to_string(l.bytes),
                      num(json::value(round3(l.reads_per_sec))), num(json::value(round3(l.writes_per_sec))),
                      num(json::value(round3(l.bytes_in_per_sec))), num(json::value(round3(l.bytes_out_per_sec))),
                      m.load_age ? std::to_string(m.load_age->count()) : "-"});
    }
    o["records"] = records;
    o["bytes"] = bytes;
    o["reads_per_sec"] = round3(reads);
    o["writes_per_sec"] = round3(writes);
    o["bytes_in_per_sec"] = round3(in);
    o["bytes_out_per_sec"] = round3(out);
    o["shards"] = std::move(shards);
    nodes.push_back(std::move(o));
  }
  if (c.text())
    co_return c.table({{{"node", text_col, "node id"},
                        {"index", text_col, "index name"},
                        {"shard", num_col, "shard number"},
                        {"records", num_col, "records, from the node's last heartbeat"},
                        {"bytes", bytes_col, "bytes"},
                        {"read/s", num_col, "point reads per second"},
                        {"write/s", num_col, "writes per second"},
                        {"in_B/s", bytes_col, "bytes written per second"},
                        {"out_B/s", bytes_col, "bytes read per second"},
                        {"age_ms", num_col, "age of the heartbeat that carried it, milliseconds"}},
                       std::move(rows)});
  json::object o;
  o["map_version"] = c.snap->map->version;
  o["nodes"] = std::move(nodes);
  co_return json_response(200, to_json_text(o));
}

// --- anomalies, forecasts, hot keys ------------------------------------------------------------

namespace {

json::object anomaly_json(const anomaly& a, const std::map<std::uint32_t, std::string>& names) {
  json::object e;
  e["id"] = a.id;
  e["state"] = a.closed_unix_ms ? "closed" : "open";
  e["series"] = anomaly_series_names[static_cast<std::size_t>(a.series)];
  if (a.per_shard) {
    e["index"] = name_of(names, a.index_id);
    e["shard"] = a.shard_id;
  } else {
    e["index"] = nullptr;
    e["shard"] = nullptr;
  }
  e["opened_unix_ms"] = a.opened_unix_ms;
  if (a.closed_unix_ms) e["closed_unix_ms"] = a.closed_unix_ms; else e["closed_unix_ms"] = nullptr;
  e["value"] = round3(a.value);
  e["baseline"] = round3(a.baseline);
  e["sigma"] = round3(a.sigma);
  e["score"] = round3(a.score);
  e["peak_score"] = round3(a.peak_score);
  e["last_value"] = round3(a.last_value);
  if (a.closed_unix_ms) e["closed_because"] = a.closed_because;
  return e;
}

cat_table anomalies_text(const json::array& nodes) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& nv : nodes) {
    if (!nv.is_object()) continue;
    const auto& n = nv.get_object();
    const std::string node = n.contains("node") ? num(n.at("node")) : "-";
    const auto* list = n.if_contains("anomalies");
    if (!list || !list->is_array()) {
      rows.push_back({node, "-", n.contains("error") ? num(n.at("error")) : "-", "-", "-", "-", "-", "-", "-"});
      continue;
    }
    for (const auto& av : list->get_array()) {
      const auto& a = av.get_object();
      auto g = [&](const char* k) { return a.contains(k) && !a.at(k).is_null() ? num(a.at(k)) : "-"; };
      rows.push_back({node, g("id"), g("state"), g("series"), g("index"), g("shard"), g("value"), g("baseline"), g("score")});
    }
  }
  return {{{"node", text_col, "node that detected it"},
           {"id", text_col, "anomaly id"},
           {"state", text_col, "open or closed"},
           {"series", text_col, "the series that left its baseline"},
           {"index", text_col, "index name (- for a node series)"},
           {"shard", num_col, "shard number (- for a node series)"},
           {"value", num_col, "the value that opened it"},
           {"baseline", num_col, "the series' baseline then"},
           {"score", num_col, "how far from the baseline, in robust deviations"}},
          std::move(rows)};
}

json::object forecast_part(const series_forecast& f) {
  json::object o;
  o["now"] = round3(f.now);
  o["slope_per_hour"] = round3(f.slope_per_hour);
  o["r2"] = round3(f.r2);
  o["points"] = f.points;
  if (f.limit) o["limit"] = round3(*f.limit); else o["limit"] = nullptr;
  if (f.seconds_to_limit) o["seconds_to_limit"] = round3(*f.seconds_to_limit); else o["seconds_to_limit"] = nullptr;
  return o;
}

cat_table forecast_text(const json::array& nodes) {
  std::vector<std::vector<std::string>> rows;
  auto part = [](const json::object& o, const char* series, const char* field) -> std::string {
    const auto* p = o.if_contains(series);
    const auto* v = p && p->is_object() ? p->get_object().if_contains(field) : nullptr;
    return v && !v->is_null() ? num(*v) : "-";
  };
  for (const auto& nv : nodes) {
    if (!nv.is_object()) continue;
    const auto& n = nv.get_object();
    const std::string node = n.contains("node") ? num(n.at("node")) : "-";
    if (const auto* d = n.if_contains("disk"); d && d->is_object())
      rows.push_back({node, "(disk)", "-", part(n, "disk", "now"), part(n, "disk", "slope_per_hour"), part(n, "disk", "r2"),
                      part(n, "disk", "seconds_to_limit"), "-", "-"});
    const auto* shards = n.if_contains("shards");
    if (!shards || !shards->is_array()) continue;
    for (const auto& sv : shards->get_array()) {
      const auto& s = sv.get_object();
      rows.push_back({node, num(s.at("index")), num(s.at("shard")), part(s, "bytes", "now"), part(s, "bytes", "slope_per_hour"),
                      part(s, "bytes", "r2"), part(s, "bytes", "seconds_to_limit"), part(s, "records", "now"),
                      part(s, "write_rate", "slope_per_hour")});
    }
  }
  return {{{"node", text_col, "node id"},
           {"index", text_col, "index name ((disk) for the node's data disk)"},
           {"shard", num_col, "shard number"},
           {"bytes", bytes_col, "bytes now"},
           {"bytes/h", num_col, "fitted growth, bytes per hour"},
           {"r2", num_col, "goodness of the linear fit (0 to 1)"},
           {"s_to_limit", num_col, "seconds until the limit at that growth (- for never or no limit)"},
           {"records", num_col, "records now"},
           {"write_rate/h", num_col, "fitted change of the write rate per hour"}},
          std::move(rows)};
}

}  // namespace

awaitable<http_response> rest_api::anomalies(call& c) {
  if (!ctx_.mon) co_return c.fail(503, "unavailable", "this node runs no monitor");
  bool cluster = false;
  if (auto bad = parse_scope(c, cluster)) co_return c.fail(400, "invalid-argument", *bad);
  const std::string state = c.param("state") ? *c.param("state") : std::string("all");
  if (state != "all" && state != "open") co_return c.fail(400, "invalid-argument", "state must be open or all");
  std::size_t limit = 50;
  if (auto l = c.param("limit")) {
    const auto n = parse_decimal(*l, 0, anomalies_kept);
    if (!n) co_return c.fail(400, "invalid-argument", "limit must be a number from 0 to " + std::to_string(anomalies_kept));
    limit = static_cast<std::size_t>(*n);
  }
  const auto list = co_await ctx_.mon->anomalies(state == "open" ? 0 : limit);
  const auto names = index_names(*c.snap->map);
  json::object mine;
  mine["node"] = ctx_.config.node_id;
  mine["open"] = ctx_.mon->anomalies_open();
  json::array arr;
  for (const auto& a : list) arr.push_back(anomaly_json(a, names));
  mine["anomalies"] = std::move(arr);
  json::array nodes;
  if (cluster) {
    nodes = co_await fan_out(c, "/v1/anomalies?state=" + state + "&limit=" + std::to_string(limit), std::move(mine));
  } else {
    if (!c.text()) co_return json_response(200, to_json_text(mine));
    nodes.push_back(std::move(mine));
  }
  if (c.text()) co_return c.table(anomalies_text(nodes));
  json::object o;
  o["nodes"] = std::move(nodes);
  co_return json_response(200, to_json_text(o));
}

awaitable<http_response> rest_api::forecast(call& c) {
  if (!ctx_.mon) co_return c.fail(503, "unavailable", "this node runs no monitor");
  bool cluster = false;
  if (auto bad = parse_scope(c, cluster)) co_return c.fail(400, "invalid-argument", *bad);
  const std::string wtext = c.param("window") ? *c.param("window") : std::string("1h");
  auto w = parse_window(wtext);
  if (!w) co_return c.fail(w.error());
  if (static_cast<std::uint64_t>(w->count()) > monitor_max_history_ms)
    co_return c.fail(400, "invalid-argument", "window must not exceed the longest history, " +
                                                  std::to_string(monitor_max_history_ms / 3600000) + "h");
  forecast_limits lim;
  if (ctx_.config.monitor_shard_bytes_limit) lim.shard_bytes = static_cast<double>(ctx_.config.monitor_shard_bytes_limit);
  std::string query = "window=" + wtext;
  if (auto v = c.param("shard_bytes_limit")) {
    const auto n = parse_decimal(*v, 1, UINT64_MAX / 2);
    if (!n) co_return c.fail(400, "invalid-argument", "shard_bytes_limit must be a positive number of bytes");
    lim.shard_bytes = static_cast<double>(*n);
    query += "&shard_bytes_limit=" + *v;
  }
  if (auto v = c.param("shard_records_limit")) {
    const auto n = parse_decimal(*v, 1, UINT64_MAX / 2);
    if (!n) co_return c.fail(400, "invalid-argument", "shard_records_limit must be a positive number of records");
    lim.shard_records = static_cast<double>(*n);
    query += "&shard_records_limit=" + *v;
  }
  std::uint64_t watermark_percent = ctx_.config.monitor_disk_watermark_percent;
  if (auto v = c.param("disk_watermark_percent")) {
    const auto n = parse_decimal(*v, 1, 100);
    if (!n) co_return c.fail(400, "invalid-argument", "disk_watermark_percent must be a whole number from 1 to 100");
    watermark_percent = *n;
    query += "&disk_watermark_percent=" + *v;
  }
  lim.disk_watermark = static_cast<double>(watermark_percent) / 100.0;
  const auto f = co_await ctx_.mon->forecast(*w, lim);
  const auto names = index_names(*c.snap->map);
  json::object mine;
  mine["node"] = ctx_.config.node_id;
  mine["window_seconds"] = round3(f.seconds);
  auto disk = forecast_part(f.disk_used);
  disk["total_bytes"] = f.disk_total;
  disk["watermark_percent"] = watermark_percent;
  mine["disk"] = std::move(disk);
  json::array shards;
  for (const auto& s : f.shards) {
    json::object e;
    e["index"] = name_of(names, s.index_id);
    e["shard"] = s.shard_id;
    e["bytes"] = forecast_part(s.bytes);
    e["records"] = forecast_part(s.records);
    e["write_rate"] = forecast_part(s.write_rate);
    shards.push_back(std::move(e));
  }
  mine["shards"] = std::move(shards);
  json::array nodes;
  if (cluster) {
    nodes = co_await fan_out(c, "/v1/forecast?" + query, std::move(mine));
  } else {
    if (!c.text()) co_return json_response(200, to_json_text(mine));
    nodes.push_back(std::move(mine));
  }
  if (c.text()) co_return c.table(forecast_text(nodes));
  json::object o;
  o["nodes"] = std::move(nodes);
  co_return json_response(200, to_json_text(o));
}

namespace {

constexpr std::size_t history_max_points = 500;
constexpr std::size_t history_max_top = 50;
/// With scope=cluster every node's series come back in one answer: points × (top + 1) at most
/// this (about 1 MiB of JSON per node at most).
constexpr std::size_t history_max_cluster_values = 20000;

json::array doubles3(const std::vector<double>& v) {
  json::array a;
  a.reserve(v.size());
  for (double x : v) a.push_back(round3(x));
  return a;
}

template <class T>
json::array optionals(const std::vector<std::optional<T>>& v) {
  json::array a;
  a.reserve(v.size());
  for (const auto& x : v) {
    if (!x) a.push_back(nullptr);
    else if constexpr (std::is_floating_point_v<T>) a.push_back(round3(*x));
    else a.push_back(*x);
  }
  return a;
}

json::array integers(const std::vector<std::uint64_t>& v) { return json::array(v.begin(), v.end()); }

json::object history_json(const history_view& v, const std::string& node, const partition_map& m) {
  const auto names = index_names(m);
  json::object o;
  o["node"] = node;
  o["interval_ms"] = v.interval_ms;
  o["window_seconds"] = round3(v.seconds);
  o["step_ms"] = v.step_ms;
  o["t"] = json::array(v.t_unix_ms.begin(), v.t_unix_ms.end());
  json::object n;
  n["requests_per_sec"] = doubles3(v.requests_per_sec);
  n["forwarded_per_sec"] = doubles3(v.forwarded_per_sec);
  n["p99_us"] = optionals(v.p99_us);
  n["data_bytes"] = integers(v.data_bytes);
  n["disk_used_bytes"] = integers(v.disk_used_bytes);
  n["rss_bytes"] = integers(v.rss_bytes);
  o["totals"] = std::move(n);
  o["shards_total"] = v.shards_total;
  json::array shards;
  for (const auto& h : v.shards) {
    json::object e;
    e["index"] = name_of(names, h.index_id);
    e["shard"] = h.shard_id;
    e["requests"] = h.requests;
    e["reads_per_sec"] = optionals(h.reads_per_sec);
    e["writes_per_sec"] = optionals(h.writes_per_sec);
    e["p99_us"] = optionals(h.p99_us);
    e["bytes"] = optionals(h.bytes);
    e["records"] = optionals(h.records);
    shards.push_back(std::move(e));
  }
  o["shards"] = std::move(shards);
  return o;
}

}  // namespace

awaitable<http_response> rest_api::stats_history(call& c) {
  if (!ctx_.mon) co_return c.fail(503, "unavailable", "this node runs no monitor");
  history_query q;
  const std::string wtext = c.param("window") ? *c.param("window") : std::string("15m");
  auto w = parse_window(wtext);
  if (!w) co_return c.fail(w.error());
  if (static_cast<std::uint64_t>(w->count()) > monitor_max_history_ms)
    co_return c.fail(400, "invalid-argument", "window must not exceed the longest history, " +
                                                  std::to_string(monitor_max_history_ms / 3600000) + "h");
  q.window = *w;
  if (auto p = c.param("points")) {
    const auto n = parse_decimal(*p, 1, history_max_points);
    if (!n) co_return c.fail(400, "invalid-argument", "points must be a number from 1 to " + std::to_string(history_max_points));
    q.points = static_cast<std::size_t>(*n);
  }
  if (auto p = c.param("top")) {
    const auto n = parse_decimal(*p, 0, history_max_top);
    if (!n) co_return c.fail(400, "invalid-argument", "top must be a number from 0 to " + std::to_string(history_max_top));
    q.top = static_cast<std::size_t>(*n);
  }
  std::string query = "window=" + wtext + "&points=" + std::to_string(q.points) + "&top=" + std::to_string(q.top);
  if (auto ix = c.param("index")) {
    const auto* entry = c.snap->map->find_index(*ix);
    if (!entry) co_return c.fail(404, "not-found", "index " + quoted(to_valid_utf8(*ix)) + " does not exist");
    q.index_id = entry->id;
    query += "&index=" + *ix;  // a name of the map: [a-z0-9_-]
    if (auto sh = c.param("shard")) {
      const auto n = parse_decimal(*sh, 0, std::numeric_limits<std::uint32_t>::max());
      if (!n || !entry->find_shard(static_cast<std::uint32_t>(*n)))
        co_return c.fail(404, "not-found", "index " + quoted(*ix) + " has no shard " + quoted(to_valid_utf8(*sh)));
      q.shard_id = static_cast<std::uint32_t>(*n);
      query += "&shard=" + std::to_string(*q.shard_id);
    }
  } else if (c.param("shard")) {
    co_return c.fail(400, "invalid-argument", "shard needs index");
  }
  bool cluster = false;
  if (auto bad = parse_scope(c, cluster)) co_return c.fail(400, "invalid-argument", *bad);
  if (const auto* scope = c.param("scope"); scope && *scope == "cluster" && q.points * (q.top + 1) > history_max_cluster_values)
    co_return c.fail(400, "invalid-argument", "with scope=cluster, points * (top + 1) must be at most " +
                                                  std::to_string(history_max_cluster_values) + "; ask for fewer, or node by node");
  auto mine = history_json(co_await ctx_.mon->history(q), ctx_.config.node_id, *c.snap->map);
  if (!cluster) co_return json_response(200, to_json_text(mine));
  json::object o;
  o["window"] = wtext;
  o["nodes"] = co_await fan_out(c, "/v1/stats/history?" + query, std::move(mine));
  co_return json_response(200, to_json_text(o));
}

awaitable<http_response> rest_api::hot_keys(call& c, const index_entry& ix, const shard_entry& s) {
  // Runs on the owner (on_shard_owner): it samples the keys.
  std::size_t limit = 10;
  if (auto l = c.param("limit")) {
    const auto n = parse_decimal(*l, 1, hot_key_sampler::capacity);
    if (!n)
      co_return c.fail(400, "invalid-argument", "limit must be a number from 1 to " + std::to_string(hot_key_sampler::capacity));
    limit = static_cast<std::size_t>(*n);
  }
  auto* sc = c.snap->load ? c.snap->load->find(ix.id, s.id) : nullptr;
  if (!sc)
    co_return c.fail(409, "conflict", "the monitor is off on node " + quoted(ctx_.config.node_id) +
                                          " (interval_ms 0): keys are not sampled");
  const auto v = sc->hot.top(limit, std::chrono::steady_clock::now());
  json::object o;
  o["index"] = ix.name;
  o["shard"] = s.id;
  o["node"] = ctx_.config.node_id;
  o["sample_every"] = hot_key_sampler::every;
  o["sampled"] = v.sampled;
  o["seconds"] = round3(v.seconds);
  json::array keys;
  std::vector<std::vector<std::string>> rows;
  for (const auto& e : v.top) {
    json::object k;
    k["key"] = e.key;
    k["count"] = e.count;
    k["error"] = e.error;
    k["estimated_requests"] = e.count * hot_key_sampler::every;
    const double share = v.sampled ? static_cast<double>(e.count) / static_cast<double>(v.sampled) : 0.0;
    k["share"] = round3(share);
    rows.push_back({e.key, std::to_string(e.count), std::to_string(e.error), std::to_string(e.count * hot_key_sampler::every)});
    keys.push_back(std::move(k));
  }
  if (c.text())
    co_return c.table({{{"key", text_col, "the key"},
                        {"sampled", num_col, "sampled requests to it"},
                        {"error", num_col, "how far the count may be over (the sketch's bound)"},
                        {"estimated_requests", num_col, "sampled times the sampling period"}},
                       std::move(rows)});
  o["keys"] = std::move(keys);
  co_return json_response(200, to_json_text(o));
}

// --- the event journal ---------------------------------------------------------------------

namespace {

/// "2026-12-03T01:02:03.456Z".
std::string utc_time(std::int64_t unix_ms) {
  const std::time_t t = static_cast<std::time_t>(unix_ms / 1000);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buf[40];
  const auto n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  std::snprintf(buf + n, sizeof buf - n, ".%03dZ", static_cast<int>(unix_ms % 1000));
  return buf;
}

}  // namespace

awaitable<http_response> rest_api::events(call& c) {
  std::uint64_t since = 0;
  if (auto v = c.param("since")) {
    const auto n = parse_decimal(*v, 0, UINT64_MAX / 2);
    if (!n) co_return c.fail(400, "invalid-argument", "since must be an event id (a whole number)");
    since = *n;
  }
  std::size_t limit = 100;
  if (auto v = c.param("limit")) {
    const auto n = parse_decimal(*v, 1, 1000);
    if (!n) co_return c.fail(400, "invalid-argument", "limit must be a number from 1 to 1000");
    limit = static_cast<std::size_t>(*n);
  }
  std::vector<std::string> types;
  if (auto v = c.param("type")) {
    std::string_view rest = *v;
    while (true) {
      const auto comma = rest.find(',');
      const auto t = rest.substr(0, comma);
      if (std::find(event_types.begin(), event_types.end(), t) == event_types.end())
        co_return c.fail(400, "invalid-argument", "type must be a comma-separated list of map, node, migration, settings, anomaly, monitor, forecast; not " +
                                                      quoted(std::string(t)));
      types.emplace_back(t);
      if (comma == std::string_view::npos) break;
      rest.remove_prefix(comma + 1);
    }
  }
  auto page = co_await ctx_.ctl->events(since, std::move(types), limit);
  if (!page) co_return c.fail(page.error());
  if (c.text()) {
    std::vector<std::vector<std::string>> rows;
    for (const auto& e : page->events) {
      std::string changes;
      for (const auto& l : e.changes) changes.append(changes.empty() ? "" : "; ").append(l);
      rows.push_back({std::to_string(e.id), utc_time(e.unix_ms), e.type, e.summary, changes.empty() ? "-" : changes});
    }
    co_return c.table({{{"id", num_col, "event id"},
                        {"time", text_col, "when, UTC"},
                        {"type", text_col, "map, node, migration, settings, anomaly, monitor or forecast"},
                        {"summary", text_col, "what happened"},
                        {"changes", text_col, "a map event's changes, separated by ; (- for none)"}},
                       std::move(rows)});
  }
  std::string out = "{\"first_id\":" + std::to_string(page->first_id) + ",\"last_id\":" + std::to_string(page->last_id) +
                    ",\"events\":[";
  for (std::size_t i = 0; i < page->events.size(); ++i) {
    if (i) out += ',';
    out += to_json(page->events[i]);
  }
  out += "]}";
  co_return json_response(200, std::move(out));
}

}  // namespace shardd
