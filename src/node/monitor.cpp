#include "node/monitor.hpp"

#include "node/ring_actor.hpp"
#include "common/log.hpp"
#include "storage/store.hpp"
#include "shardd/json_fields.hpp"
#include "shardd/text.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <fstream>

#include <sys/statvfs.h>
#include <unistd.h>

namespace shardd {

namespace json = boost::json;

namespace {

constexpr std::size_t counter_count = 8;

std::array<std::uint64_t, counter_count> read_counters(const shard_counters& c) {
  auto l = [](const std::atomic<std::uint64_t>& a) { return a.load(std::memory_order_relaxed); };
  return {l(c.reads), l(c.writes), l(c.deletes), l(c.scans), l(c.scanned), l(c.bytes_in), l(c.bytes_out), l(c.errors)};
}

std::uint64_t delta(std::uint64_t now, std::uint64_t before) { return now >= before ? now - before : now; }

/// A p99 needs this many requests in an interval to be watched (fewer: the interval is skipped).
constexpr std::uint64_t min_latency_samples = 20;
constexpr std::uint64_t min_hot_key_samples = 32;  // sampled requests before a hottest key's share is told
/// The load a heartbeat reports is the rate over this many sampling intervals (or all there are).
constexpr std::size_t load_smoothing_samples = 6;
/// A trend is fitted over at most this many samples of its window.
constexpr std::size_t forecast_max_points = 720;

/// The detector of each series. Rates: a change of a few requests per second on an idle shard
/// is not news (min_sigma 2/s). Latency: p99 moves by a quarter without meaning much.
anomaly_settings settings_for(anomaly_series s) {
  anomaly_settings a;
  switch (s) {
    case anomaly_series::read_rate:
    case anomaly_series::write_rate: a.min_sigma = 2.0; a.rel_sigma = 0.05; break;
    case anomaly_series::p99_latency: a.min_sigma = 500.0; a.rel_sigma = 0.25; break;
    case anomaly_series::error_rate: a.min_sigma = 0.5; a.rel_sigma = 0.05; break;
    case anomaly_series::disk_growth: a.min_sigma = 1024.0 * 1024; a.rel_sigma = 0.1; break;
  }
  return a;
}

std::int64_t unix_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::uint64_t rss_bytes() {
  std::ifstream f("/proc/self/statm");
  std::uint64_t size = 0, resident = 0;
  if (!(f >> size >> resident)) return 0;
  return resident * static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
}

}  // namespace

latency_summary latency_summary::of(const histogram& h) {
  return {h.count(), h.quantile(0.5), h.quantile(0.9), h.quantile(0.99), h.max()};
}

void monitor::sparse_histogram::add_to(histogram& h) const {
  for (const auto& [i, n] : buckets) h.add_bucket(i, n);
  h.add_totals(sum, max);
}

std::string to_json(const monitor_settings& s) {
  json::object o;
  o["interval_ms"] = s.interval_ms;
  o["history_ms"] = s.history_ms;
  return to_json_text(o);
}

std::optional<monitor_settings> monitor_settings_from_json(std::string_view text) {
  auto v = parse_json(text, "monitor settings");
  if (!v || !v->is_object()) return std::nullopt;
  json_fields f(v->get_object(), "");
  monitor_settings s;
  auto interval = f.opt_u64("interval_ms", s.interval_ms, 0, monitor_max_interval_ms);
  auto history = f.opt_u64("history_ms", s.history_ms, monitor_min_history_ms, monitor_max_history_ms);
  if (!interval || !history || !f.finish()) return std::nullopt;
  if (*interval != 0 && *interval < monitor_min_interval_ms) return std::nullopt;
  s.interval_ms = static_cast<std::uint32_t>(*interval);
  s.history_ms = *history;
  return s;
}

namespace {
/// The settings a node starts with: those set through the API and kept in its store, else the
/// config file's.
monitor_settings initial_settings(const node_config& cfg, const storage::store& store) {
  monitor_settings s{cfg.monitor_interval_ms, cfg.monitor_history_ms};
  auto stored = store.get_meta(monitor_settings_key);
  if (!stored || !*stored) return s;
  if (auto kept = monitor_settings_from_json(**stored)) return *kept;
  SHARDD_LOG(warn, "monitor_settings_unreadable", "stored", **stored, "using", "the config file's");
  return s;
}
}  // namespace

monitor::monitor(asio::any_io_executor ex, const node_config& cfg, storage::store& store, ring_actor& ring)
    : monitor(std::move(ex), cfg, store, ring, initial_settings(cfg, store)) {}

monitor::monitor(asio::any_io_executor ex, const node_config& cfg, storage::store& store, ring_actor& ring,
                 monitor_settings start)
    : cfg_(cfg), store_(store), ring_(ring), strand_(asio::make_strand(ex)), timer_(strand_),
      epoch_(std::chrono::steady_clock::now()), unix_epoch_ms_(unix_ms()), interval_ms_(start.interval_ms),
      history_ms_(start.history_ms),
      disk_growth_{anomaly_detector(settings_for(anomaly_series::disk_growth))},
      incarnation_((std::uint64_t(std::random_device{}()) << 32 | std::random_device{}()) | 1) {  // never 0
  if (interval_ms_.load() != cfg.monitor_interval_ms || history_ms_.load() != cfg.monitor_history_ms)
    SHARDD_LOG(info, "monitor_settings_stored", "interval_ms", interval_ms_.load(), "history_ms", history_ms_.load());
}

void monitor::push_event(std::string type, std::string summary, std::string fields_json) {
  std::lock_guard lock(outbox_mutex_);
  peer::member_event e;
  e.seq = next_event_seq_++;
  e.type = std::move(type);
  e.summary = summary.substr(0, peer::max_event_summary);
  e.fields_json = fields_json.size() <= peer::max_event_fields ? std::move(fields_json) : std::string("{}");
  outbox_.push_back(std::move(e));
  if (outbox_.size() > outbox_max) {
    SHARDD_LOG(warn, "event_dropped", "seq", outbox_.front().seq, "summary", outbox_.front().summary);
    outbox_.pop_front();
  }
}

std::vector<peer::member_event> monitor::pending_events(std::size_t n) const {
  std::lock_guard lock(outbox_mutex_);
  std::vector<peer::member_event> out;
  for (std::size_t i = 0; i < outbox_.size() && i < n; ++i) out.push_back(outbox_[i]);
  return out;
}

void monitor::acknowledge_events(std::uint64_t up_to_seq) {
  std::lock_guard lock(outbox_mutex_);
  while (!outbox_.empty() && outbox_.front().seq <= up_to_seq) outbox_.pop_front();
}

std::string monitor::index_name(std::uint32_t index_id) const {
  const auto snap = ring_.snapshot();
  for (const auto& [name, ix] : snap->map->indexes)
    if (ix.id == index_id) return name;
  return std::to_string(index_id);
}

std::string monitor::subject(const anomaly& a) const {
  std::string s = anomaly_series_names[static_cast<std::size_t>(a.series)];
  if (a.per_shard) s += " of " + index_name(a.index_id) + "/" + std::to_string(a.shard_id);
  return s;
}

std::string monitor::anomaly_fields(const anomaly& a) const {
  json::object o;
  o["anomaly"] = a.id;
  o["series"] = anomaly_series_names[static_cast<std::size_t>(a.series)];
  if (a.per_shard) {
    o["index"] = index_name(a.index_id);
    o["shard"] = a.shard_id;
  }
  o["state"] = a.closed_unix_ms ? "closed" : "open";
  o["value"] = std::round(a.value * 1000) / 1000;
  o["baseline"] = std::round(a.baseline * 1000) / 1000;
  o["score"] = std::round(a.score * 1000) / 1000;
  if (a.closed_unix_ms) {
    o["peak_score"] = std::round(a.peak_score * 1000) / 1000;
    o["closed_because"] = a.closed_because;
  }
  return to_json_text(o);
}

monitor::shard_series monitor::fresh_series() {
  shard_series s;
  for (std::size_t i = 0; i < shard_anomaly_series; ++i) s.watch[i].detector = anomaly_detector(settings_for(anomaly_series(i)));
  return s;
}

void monitor::observe(watched& w, anomaly_series series, bool per_shard, std::uint64_t key, double value) {
  const double mean = w.detector.mean();
  const double sigma = w.detector.sigma();
  const auto st = w.detector.add(value);
  if (st.changed == anomaly_detector::change::opened) {
    anomaly a;
    a.id = next_anomaly_id_++;
    a.series = series;
    a.per_shard = per_shard;
    a.index_id = static_cast<std::uint32_t>(key >> 32);
    a.shard_id = static_cast<std::uint32_t>(key);
    a.opened_unix_ms = unix_ms();
    a.value = a.last_value = value;
    a.baseline = mean;
    a.sigma = sigma;
    a.score = a.peak_score = st.score;
    w.open_id = a.id;
    SHARDD_LOG(warn, "anomaly_opened", "id", a.id, "series", anomaly_series_names[std::size_t(series)], "index_id",
               a.index_id, "shard", a.shard_id, "value", value, "baseline", mean, "score", st.score);
    char figures[160];
    std::snprintf(figures, sizeof figures, " at %.3f (baseline %.3f, score %.1f)", value, mean, st.score);
    push_event("anomaly", "anomaly " + std::to_string(a.id) + " opened: " + subject(a) + figures, anomaly_fields(a));
    open_.emplace(a.id, std::move(a));
    return;
  }
  if (w.open_id == 0) return;
  auto it = open_.find(w.open_id);
  if (it == open_.end()) {
    w.open_id = 0;
    return;
  }
  it->second.last_value = value;
  if (std::abs(st.score) > std::abs(it->second.peak_score)) it->second.peak_score = st.score;
  if (st.changed == anomaly_detector::change::closed) close_anomaly(w, "back within its baseline");
}

void monitor::close_anomaly(watched& w, std::string because) {
  auto it = open_.find(w.open_id);
  w.open_id = 0;
  if (it == open_.end()) return;
  auto a = std::move(it->second);
  open_.erase(it);
  a.closed_unix_ms = unix_ms();
  a.closed_because = std::move(because);
  SHARDD_LOG(info, "anomaly_closed", "id", a.id, "series", anomaly_series_names[std::size_t(a.series)], "because",
             a.closed_because);
  push_event("anomaly", "anomaly " + std::to_string(a.id) + " closed (" + a.closed_because + "): " + subject(a),
             anomaly_fields(a));
  closed_.push_back(std::move(a));
  while (closed_.size() > anomalies_kept) closed_.pop_front();
}

void monitor::publish_open_count() { open_count_.store(static_cast<std::uint32_t>(open_.size()), std::memory_order_relaxed); }

monitor::~monitor() = default;

std::int64_t monitor::now_ms() const {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - epoch_).count();
}

monitor_settings monitor::settings() const {
  return {interval_ms_.load(std::memory_order_relaxed), history_ms_.load(std::memory_order_relaxed)};
}

void monitor::start() {
  ring_.loads().set_counting(interval_ms_.load() != 0);
  asio::post(strand_, [this] {
    if (stopped_) return;
    const auto gen = ++generation_;
    asio::co_spawn(strand_, loop(gen), asio::detached);
  });
}

void monitor::stop() {
  asio::post(strand_, [this] {
    stopped_ = true;
    ++generation_;
    timer_.cancel();
  });
}

asio::awaitable<void> monitor::apply(monitor_settings s) {
  auto change = [this, s] {
    if (s.interval_ms != interval_ms_ || s.history_ms != history_ms_) {
      json::object f;
      f["interval_ms"] = s.interval_ms;
      f["history_ms"] = s.history_ms;
      f["was_interval_ms"] = interval_ms_.load();
      f["was_history_ms"] = history_ms_.load();
      push_event("monitor", "monitor settings: interval_ms " + std::to_string(s.interval_ms) + ", history_ms " +
                                std::to_string(s.history_ms),
                 to_json_text(f));
    }
    interval_ms_ = s.interval_ms;
    history_ms_ = s.history_ms;
    ring_.loads().set_counting(s.interval_ms != 0);
    if (s.interval_ms == 0) {
      // Nothing is measured while off: what is open cannot close by itself, and the baselines
      // would meet a gap when sampling resumes; start them again.
      for (auto& [k, ser] : shards_)
        for (std::size_t i = 0; i < shard_anomaly_series; ++i) {
          if (ser.watch[i].open_id) close_anomaly(ser.watch[i], "sampling was turned off");
          ser.watch[i].detector = anomaly_detector(settings_for(anomaly_series(i)));
        }
      if (disk_growth_.open_id) close_anomaly(disk_growth_, "sampling was turned off");
      disk_growth_.detector = anomaly_detector(settings_for(anomaly_series::disk_growth));
      publish_open_count();
    }
    if (stopped_) return;
    // A new loop takes the new interval now; the old one wakes, sees the generation and ends.
    const auto gen = ++generation_;
    timer_.cancel();
    asio::co_spawn(strand_, loop(gen), asio::detached);
  };
  co_await run_on(strand_, std::move(change));
}

asio::awaitable<void> monitor::loop(std::uint64_t gen) {
  while (!stopped_ && gen == generation_) {
    const auto interval = interval_ms_.load(std::memory_order_relaxed);
    if (interval == 0) co_return;  // off: apply() starts a loop again
    sample();
    if (!pinging_ && sources_.ping) {
      pinging_ = true;
      asio::co_spawn(strand_, ping_peers(), asio::detached);
    }
    timer_.expires_after(std::chrono::milliseconds(interval));
    (void)co_await timer_.async_wait(asio::as_tuple(asio::use_awaitable));
  }
}

asio::awaitable<void> monitor::ping_peers() {
  const auto snap = ring_.snapshot();
  std::vector<std::string> ids;
  for (const auto& [id, n] : snap->map->nodes)
    if (id != cfg_.node_id && n.state != node_state::down && n.state != node_state::left) ids.push_back(id);
  for (const auto& id : ids) {
    if (stopped_) break;
    auto r = co_await sources_.ping(id);
    std::lock_guard lock(peers_mutex_);
    auto& t = peers_[id];
    t.last.node = id;
    if (r) {
      t.last.rtt_us = std::max<std::uint64_t>(*r, 1);
      t.last.at_unix_ms = unix_ms();
      t.last.error.clear();
      t.recent.push_back(t.last.rtt_us);
      while (t.recent.size() > 10) t.recent.pop_front();
      t.last.max_us = *std::max_element(t.recent.begin(), t.recent.end());
    } else {
      t.last.error = r.error().detail.substr(0, 200);
    }
  }
  {
    // Nodes no longer asked (down, left, gone from the map) leave the table.
    std::lock_guard lock(peers_mutex_);
    std::erase_if(peers_, [&](const auto& e) { return std::find(ids.begin(), ids.end(), e.first) == ids.end(); });
  }
  pinging_ = false;
}

asio::awaitable<history_view> monitor::history(history_query q) {
  auto compute = [this, q] {
    history_view v;
    v.interval_ms = interval_ms_.load(std::memory_order_relaxed);
    if (node_.size() < 2) return v;
    const auto end = node_.back().t_ms;
    const auto from = end - std::max<std::int64_t>(q.window.count(), 1);
    std::size_t nb = node_.size() - 1;
    while (nb > 0 && node_[nb].t_ms > from) --nb;
    if (nb == node_.size() - 1) --nb;  // at least one interval
    const auto points = std::max<std::size_t>(q.points, 1);
    const std::int64_t span = end - node_[nb].t_ms;
    const std::int64_t step = std::max<std::int64_t>(1, (span + static_cast<std::int64_t>(points) - 1) / static_cast<std::int64_t>(points));
    v.step_ms = std::max<std::int64_t>(step, v.interval_ms);  // points are samples: never closer than an interval
    v.seconds = static_cast<double>(span) / 1000.0;
    // The samples that end a point: each at least `step` after the one before, and the last.
    std::vector<std::size_t> idx{nb};
    for (std::size_t j = nb + 1; j < node_.size(); ++j) {
      const bool last = j + 1 == node_.size();
      if (node_[j].t_ms - node_[idx.back()].t_ms >= step) {
        idx.push_back(j);
      } else if (last) {
        if (idx.size() - 1 >= points) idx.back() = j;  // the short tail joins the point before
        else idx.push_back(j);
      }
    }
    const std::size_t k_count = idx.size() - 1;
    std::vector<std::int64_t> t(idx.size());
    for (std::size_t k = 0; k < idx.size(); ++k) t[k] = node_[idx[k]].t_ms;
    for (std::size_t k = 1; k <= k_count; ++k) {
      const auto& a = node_[idx[k - 1]].f;
      const auto& b = node_[idx[k]].f;
      const double secs = std::max<double>(1, static_cast<double>(t[k] - t[k - 1])) / 1000.0;
      v.t_unix_ms.push_back(unix_epoch_ms_ + t[k]);
      v.requests_per_sec.push_back(static_cast<double>(delta(b.rest_requests, a.rest_requests)) / secs);
      v.forwarded_per_sec.push_back(static_cast<double>(delta(b.forwarded, a.forwarded)) / secs);
      v.data_bytes.push_back(b.data_bytes);
      v.disk_used_bytes.push_back(b.disk_used);
      v.rss_bytes.push_back(b.rss_bytes);
    }
    // For one shard: the index of its newest sample at or before each point's time.
    auto positions = [&](const shard_series& ser) {
      std::vector<std::optional<std::size_t>> pos(idx.size());
      std::size_t i = 0;
      for (std::size_t k = 0; k < idx.size(); ++k) {
        while (i < ser.samples.size() && ser.samples[i].t_ms <= t[k]) ++i;
        if (i > 0) pos[k] = i - 1;
      }
      return pos;
    };
    auto requests_of = [](const shard_sample& b, const shard_sample& a) {
      std::uint64_t n = 0;
      for (std::size_t c = 0; c < 4; ++c) n += delta(b.counters[c], a.counters[c]);
      return n;
    };
    // Every shard's intervals feed the node's p99; the busiest `top` of those asked for get series.
    std::vector<histogram> node_p99(idx.size());
    std::vector<std::pair<std::uint64_t, std::uint64_t>> ranked;  // (requests, key)
    for (const auto& [key, ser] : shards_) {
      if (ser.samples.empty()) continue;
      const auto pos = positions(ser);
      for (std::size_t k = 1; k <= k_count; ++k)
        for (std::size_t j = pos[k - 1] ? *pos[k - 1] + 1 : 0; pos[k] && j <= *pos[k]; ++j)
          for (const auto& h : ser.samples[j].interval) h.add_to(node_p99[k]);
      const auto index_id = static_cast<std::uint32_t>(key >> 32);
      const auto shard_id = static_cast<std::uint32_t>(key);
      if ((q.index_id && *q.index_id != index_id) || (q.shard_id && *q.shard_id != shard_id)) continue;
      std::uint64_t n = 0;
      const auto first = pos.front() ? *pos.front() : 0;
      if (pos.back() && *pos.back() > first) n = requests_of(ser.samples[*pos.back()], ser.samples[first]);
      ranked.emplace_back(n, key);
    }
    for (std::size_t k = 1; k <= k_count; ++k)
      v.p99_us.push_back(node_p99[k].count() ? std::optional<std::uint64_t>(node_p99[k].quantile(0.99)) : std::nullopt);
    v.shards_total = ranked.size();
    std::sort(ranked.begin(), ranked.end(), [](const auto& a, const auto& b) {
      return a.first != b.first ? a.first > b.first : a.second < b.second;
    });
    if (ranked.size() > q.top) ranked.resize(q.top);
    for (const auto& [n, key] : ranked) {
      const auto& ser = shards_.at(key);
      const auto pos = positions(ser);
      shard_history h;
      h.index_id = static_cast<std::uint32_t>(key >> 32);
      h.shard_id = static_cast<std::uint32_t>(key);
      h.requests = n;
      for (std::size_t k = 1; k <= k_count; ++k) {
        const double secs = std::max<double>(1, static_cast<double>(t[k] - t[k - 1])) / 1000.0;
        if (pos[k - 1] && pos[k]) {
          const auto& a = ser.samples[*pos[k - 1]];
          const auto& b = ser.samples[*pos[k]];
          h.reads_per_sec.push_back(static_cast<double>(delta(b.counters[0], a.counters[0]) + delta(b.counters[3], a.counters[3])) / secs);
          h.writes_per_sec.push_back(static_cast<double>(delta(b.counters[1], a.counters[1]) + delta(b.counters[2], a.counters[2])) / secs);
        } else {
          h.reads_per_sec.emplace_back();
          h.writes_per_sec.emplace_back();
        }
        histogram lat;
        for (std::size_t j = pos[k - 1] ? *pos[k - 1] + 1 : 0; pos[k] && j <= *pos[k]; ++j)
          for (const auto& x : ser.samples[j].interval) x.add_to(lat);
        h.p99_us.push_back(lat.count() ? std::optional<std::uint64_t>(lat.quantile(0.99)) : std::nullopt);
        if (pos[k] && !ser.samples[*pos[k]].counters_only) {
          h.bytes.push_back(ser.samples[*pos[k]].bytes);
          h.records.push_back(ser.samples[*pos[k]].records);
        } else {
          h.bytes.emplace_back();
          h.records.emplace_back();
        }
      }
      v.shards.push_back(std::move(h));
    }
    return v;
  };
  co_return co_await run_on(strand_, std::move(compute));
}

std::vector<peer_rtt> monitor::peer_rtts() const {
  std::lock_guard lock(peers_mutex_);
  std::vector<peer_rtt> out;
  out.reserve(peers_.size());
  for (const auto& [id, t] : peers_) out.push_back(t.last);
  return out;
}

node_figures monitor::figures_now() const {
  node_figures f;
  struct statvfs vfs {};
  if (::statvfs(cfg_.data_dir.c_str(), &vfs) == 0) {
    f.disk_total = std::uint64_t(vfs.f_blocks) * vfs.f_frsize;
    f.disk_free = std::uint64_t(vfs.f_bavail) * vfs.f_frsize;
    f.disk_used = (std::uint64_t(vfs.f_blocks) - vfs.f_bfree) * vfs.f_frsize;
  }
  const auto e = store_.figures();
  f.data_bytes = e.sst_bytes;
  f.pending_compaction_bytes = e.pending_compaction_bytes;
  f.l0_files = e.l0_files;
  f.memtable_bytes = e.memtable_bytes;
  f.rss_bytes = rss_bytes();
  if (sources_.rest_connections) f.rest_connections = sources_.rest_connections();
  if (sources_.peer_connections) f.peer_connections = sources_.peer_connections();
  if (sources_.heartbeat_rtt_us) f.heartbeat_rtt_us = sources_.heartbeat_rtt_us();
  const auto& n = ring_.loads().node();
  auto l = [](const std::atomic<std::uint64_t>& a) { return a.load(std::memory_order_relaxed); };
  f.rest_requests = l(n.rest_requests);
  f.rest_errors = l(n.rest_errors);
  f.forwarded = l(n.forwarded);
  f.migration_bytes_in = l(n.migration_bytes_in);
  f.migration_bytes_out = l(n.migration_bytes_out);
  f.migration_wire_saved = l(n.migration_wire_saved);
  return f;
}

void monitor::sample() {
  const auto t = now_ms();
  const auto snap = ring_.snapshot();
  std::vector<peer::shard_load> load;
  std::map<std::uint64_t, shard_series> next;
  // Shards no longer here: what is open on them closes.
  if (snap->load)
    for (auto& [key, ser] : shards_) {
      if (snap->load->find(static_cast<std::uint32_t>(key >> 32), static_cast<std::uint32_t>(key)) ||
          !ring_.loads().counting())
        continue;
      for (auto& w : ser.watch)
        if (w.open_id) close_anomaly(w, "the shard left this node");
    }
  bool have_rates = false;
  histogram foreground;  // every request served on this node's shards in the interval
  if (snap->load) {
    for (const auto& c : snap->load->all()) {
      const auto key = load_key(c->index_id, c->shard_id);
      auto it = shards_.find(key);
      shard_series ser = it != shards_.end() ? std::move(it->second) : fresh_series();
      if (ser.samples.empty() && !node_.empty()) {
        // A shard new here: its counters started at zero when the map gave it this node,
        // after the last sample; counting from that sample keeps what came in between.
        shard_sample zero;
        zero.t_ms = node_.back().t_ms;
        zero.counters_only = true;
        ser.samples.push_back(std::move(zero));
      }
      shard_sample s;
      s.t_ms = t;
      s.counters = read_counters(*c);
      c->hot.rotate(std::chrono::steady_clock::now());
      if (auto st = store_.stats(c->index_id, c->shard_id)) {
        s.records = st->records;
        s.bytes = st->bytes;
      }
      for (std::size_t op = 0; op < load_op_count; ++op) {
        auto cum = c->latency_us[op].snapshot();
        const auto d = cum.since(ser.last[op]);
        if (d.count() > 0) {
          auto& sp = s.interval[op];
          const auto& counts = d.counts();
          for (std::size_t i = 0; i < counts.size(); ++i)
            if (counts[i]) sp.buckets.emplace_back(static_cast<std::uint16_t>(i), static_cast<std::uint32_t>(std::min<std::uint64_t>(counts[i], UINT32_MAX)));
          sp.sum = d.sum();
          sp.max = d.max();
        }
        ser.last[op] = std::move(cum);
      }
      peer::shard_load l{c->index_id, c->shard_id, s.records, s.bytes, 0, 0, 0, 0};
      // How much of the shard's load its hottest key carries (the rebalancer does not split a
      // shard one key makes hot); unknown (0) below a few dozen samples.
      if (auto top = c->hot.top(1, std::chrono::steady_clock::now()); top.sampled >= min_hot_key_samples && !top.top.empty())
        l.top_key_share = std::min(1.0, static_cast<double>(top.top.front().count) / static_cast<double>(top.sampled));
      if (!ser.samples.empty()) {
        const auto& prev = ser.samples.back();
        const double secs = std::max<double>(1, static_cast<double>(t - prev.t_ms)) / 1000.0;
        auto rate = [&](std::size_t i) { return static_cast<double>(delta(s.counters[i], prev.counters[i])) / secs; };
        // The load the rebalancer balances on: rates over the last few intervals, not the last
        // one, so nodes sampled at different moments of a bursty load still compare fairly.
        const auto& base = ser.samples[ser.samples.size() > load_smoothing_samples
                                           ? ser.samples.size() - load_smoothing_samples
                                           : 0];
        const double base_secs = std::max<double>(1, static_cast<double>(t - base.t_ms)) / 1000.0;
        auto smooth = [&](std::size_t i) {
          return static_cast<double>(delta(s.counters[i], base.counters[i])) / base_secs;
        };
        l.reads_per_sec = smooth(0) + smooth(4);  // point reads and scanned records
        l.writes_per_sec = smooth(1) + smooth(2);
        l.bytes_in_per_sec = smooth(5);
        l.bytes_out_per_sec = smooth(6);
        have_rates = true;
        observe(ser.watch[0], anomaly_series::read_rate, true, key, rate(0) + rate(3));
        observe(ser.watch[1], anomaly_series::write_rate, true, key, rate(1) + rate(2));
        histogram all;
        for (const auto& sp : s.interval) sp.add_to(all);
        for (const auto& sp : s.interval) sp.add_to(foreground);
        if (all.count() >= min_latency_samples)
          observe(ser.watch[2], anomaly_series::p99_latency, true, key, static_cast<double>(all.quantile(0.99)));
        observe(ser.watch[3], anomaly_series::error_rate, true, key, rate(7));
      }
      load.push_back(l);
      ser.samples.push_back(std::move(s));
      next.emplace(key, std::move(ser));
    }
  }
  shards_ = std::move(next);  // shards no longer here are forgotten
  fg_p99_us_.store(foreground.count() >= min_latency_samples ? std::max<std::uint64_t>(foreground.quantile(0.99), 1) : 0,
                   std::memory_order_relaxed);
  samples_.fetch_add(1, std::memory_order_release);
  node_.push_back(node_sample{t, figures_now()});
  if (node_.size() >= 2) {
    const auto& a = node_[node_.size() - 2];
    const auto& b = node_.back();
    const double secs = std::max<double>(1, static_cast<double>(b.t_ms - a.t_ms)) / 1000.0;
    // The store's own bytes (table files and memtables), not the file system's: another
    // process writing to the same disk is not this node's anomaly.
    auto store_bytes = [](const node_figures& f) { return static_cast<double>(f.data_bytes + f.memtable_bytes); };
    observe(disk_growth_, anomaly_series::disk_growth, false, 0, (store_bytes(b.f) - store_bytes(a.f)) / secs);
  }
  publish_open_count();
  trim(t);
  // Forecasts against the limits: every sample at intervals of a second or more, else every second.
  const auto interval = std::max<std::uint32_t>(1, interval_ms_.load(std::memory_order_relaxed));
  if (++samples_since_forecast_ >= std::max<std::uint32_t>(1, 1000 / interval)) {
    samples_since_forecast_ = 0;
    check_forecasts();
  }
  if (have_rates || load.empty()) {
    auto report = std::make_shared<peer::load_report>();
    report->shards = std::move(load);
    report->anomalies_open = anomalies_open();
    latest_.store(std::move(report), std::memory_order_release);
  }
}

void monitor::trim(std::int64_t now) {
  const auto keep = static_cast<std::int64_t>(history_ms_.load(std::memory_order_relaxed));
  // Keep one sample older than the history so a window of the whole history has a start.
  auto trim_one = [&](auto& dq) {
    while (dq.size() > 2 && now - dq[1].t_ms > keep) dq.pop_front();
  };
  trim_one(node_);
  for (auto& [k, ser] : shards_) trim_one(ser.samples);
}

asio::awaitable<stats_view> monitor::window(std::chrono::milliseconds w) {
  auto compute = [this, w] {
    stats_view v;
    v.settings = settings();
    v.peers = peer_rtts();
    if (node_.empty()) return v;
    const auto end = node_.back().t_ms;
    const auto from = end - std::max<std::int64_t>(w.count(), 1);
    v.age_ms = now_ms() - end;
    // The start of the window: the newest sample at or before `from` (or the oldest there is).
    auto start_of = [from](const auto& dq) {
      std::size_t i = dq.size() - 1;
      while (i > 0 && dq[i].t_ms > from) --i;
      if (i == dq.size() - 1 && i > 0) --i;  // a window is at least one interval
      return i;
    };
    const auto nb = start_of(node_);
    const auto& base = node_[nb].f;
    const auto& last = node_.back().f;
    v.seconds = static_cast<double>(end - node_[nb].t_ms) / 1000.0;
    v.samples = node_.size() - nb;
    v.node.now = last;
    v.node.rest_requests = delta(last.rest_requests, base.rest_requests);
    v.node.rest_errors = delta(last.rest_errors, base.rest_errors);
    v.node.forwarded = delta(last.forwarded, base.forwarded);
    v.node.migration_bytes_in = delta(last.migration_bytes_in, base.migration_bytes_in);
    v.node.migration_bytes_out = delta(last.migration_bytes_out, base.migration_bytes_out);
    v.node.disk_used_change = static_cast<std::int64_t>(last.disk_used) - static_cast<std::int64_t>(base.disk_used);
    std::array<histogram, load_op_count> node_lat;
    for (const auto& [key, ser] : shards_) {
      if (ser.samples.empty()) continue;
      const auto sb = start_of(ser.samples);
      const auto& a = ser.samples[sb];
      const auto& b = ser.samples.back();
      shard_window sw;
      sw.index_id = static_cast<std::uint32_t>(key >> 32);
      sw.shard_id = static_cast<std::uint32_t>(key);
      sw.records = b.records;
      sw.bytes = b.bytes;
      std::array<std::uint64_t, counter_count> d{};
      for (std::size_t i = 0; i < counter_count; ++i) d[i] = sb + 1 < ser.samples.size() ? delta(b.counters[i], a.counters[i]) : 0;
      sw.reads = d[0], sw.writes = d[1], sw.deletes = d[2], sw.scans = d[3], sw.scanned = d[4];
      sw.bytes_in = d[5], sw.bytes_out = d[6], sw.errors = d[7];
      for (std::size_t op = 0; op < load_op_count; ++op) {
        histogram h;
        for (std::size_t j = sb + 1; j < ser.samples.size(); ++j) ser.samples[j].interval[op].add_to(h);
        sw.latency[op] = latency_summary::of(h);
        node_lat[op].merge(h);
      }
      v.shards.push_back(std::move(sw));
    }
    for (std::size_t op = 0; op < load_op_count; ++op) v.node.latency[op] = latency_summary::of(node_lat[op]);
    return v;
  };
  co_return co_await run_on(strand_, std::move(compute));
}

asio::awaitable<std::vector<anomaly>> monitor::anomalies(std::size_t closed_max) {
  auto list = [this, closed_max] {
    std::vector<anomaly> out;
    for (auto it = open_.rbegin(); it != open_.rend(); ++it) out.push_back(it->second);
    std::size_t n = 0;
    for (auto it = closed_.rbegin(); it != closed_.rend() && n < closed_max; ++it, ++n) out.push_back(*it);
    return out;
  };
  co_return co_await run_on(strand_, std::move(list));
}

namespace {

series_forecast fit(const std::vector<trend_point>& pts, std::optional<double> limit) {
  series_forecast f;
  f.limit = limit;
  if (pts.empty()) return f;
  f.now = pts.back().y;
  f.points = pts.size();
  const auto tr = fit_trend(pts);
  if (!tr) return f;
  f.slope_per_hour = tr->slope * 3600;
  f.r2 = tr->r2;
  if (limit) f.seconds_to_limit = tr->time_to(*limit, pts.back().t);
  return f;
}

}  // namespace

asio::awaitable<forecast_view> monitor::forecast(std::chrono::milliseconds w, forecast_limits lim) {
  co_return co_await run_on(strand_, [this, w, lim] { return compute_forecast(w, lim); });
}

forecast_view monitor::compute_forecast(std::chrono::milliseconds w, const forecast_limits& lim) const {
  forecast_view v;
  if (node_.empty()) return v;
  const auto end = node_.back().t_ms;
  const auto from = end - std::max<std::int64_t>(w.count(), 1);
  auto secs = [](std::int64_t t_ms) { return static_cast<double>(t_ms) / 1000.0; };
  // The samples of a series in the window, at most `forecast_max_points` of them evenly spread
  // (every k-th, the last one always): a trend needs no more, and the monitor refits every
  // second, so an hour at 100 ms intervals over many shards must not cost 36,000 points each.
  auto chosen = [from](const auto& dq) {
    std::size_t first = dq.size();
    while (first > 0 && dq[first - 1].t_ms >= from) --first;
    return first == dq.size() ? std::vector<std::size_t>{} : spread_positions(first, dq.size() - 1, forecast_max_points);
  };
  std::vector<trend_point> disk;
  const auto nodes = chosen(node_);
  for (auto i : nodes) disk.push_back({secs(node_[i].t_ms), static_cast<double>(node_[i].f.disk_used)});
  v.seconds = nodes.empty() ? 0 : secs(end - node_[nodes.front()].t_ms);
  v.disk_total = node_.back().f.disk_total;
  std::optional<double> watermark;
  if (v.disk_total > 0) watermark = lim.disk_watermark * static_cast<double>(v.disk_total);
  v.disk_used = fit(disk, watermark);
  for (const auto& [key, ser] : shards_) {
    std::vector<trend_point> bytes, records, writes;
    const shard_sample* prev = nullptr;
    for (auto i : chosen(ser.samples)) {
      const auto& s = ser.samples[i];
      if (!s.counters_only) {
        bytes.push_back({secs(s.t_ms), static_cast<double>(s.bytes)});
        records.push_back({secs(s.t_ms), static_cast<double>(s.records)});
      }
      if (prev && s.t_ms > prev->t_ms) {
        const double n = static_cast<double>(delta(s.counters[1], prev->counters[1]) + delta(s.counters[2], prev->counters[2]));
        writes.push_back({secs(s.t_ms), n / secs(s.t_ms - prev->t_ms)});
      }
      prev = &s;
    }
    shard_forecast f;
    f.index_id = static_cast<std::uint32_t>(key >> 32);
    f.shard_id = static_cast<std::uint32_t>(key);
    f.bytes = fit(bytes, lim.shard_bytes);
    f.records = fit(records, lim.shard_records);
    f.write_rate = fit(writes, std::nullopt);
    v.shards.push_back(std::move(f));
  }
  return v;
}

void monitor::check_forecasts() {
  // Over the last hour of history (or all of it), against the configured limits.
  forecast_limits lim;
  if (cfg_.monitor_shard_bytes_limit) lim.shard_bytes = static_cast<double>(cfg_.monitor_shard_bytes_limit);
  lim.disk_watermark = cfg_.monitor_disk_watermark_percent / 100.0;
  const auto window = std::min<std::uint64_t>(history_ms_.load(std::memory_order_relaxed), 3600 * 1000);
  const auto v = compute_forecast(std::chrono::milliseconds(window), lim);
  const double horizon = static_cast<double>(cfg_.monitor_forecast_horizon_ms) / 1000.0;
  std::map<std::uint64_t, bool> next;
  auto check = [&](std::uint64_t key, const series_forecast& f, const std::string& what, const std::string& series,
                   std::optional<std::pair<std::uint32_t, std::uint32_t>> shard) {
    const bool soon = f.seconds_to_limit && *f.seconds_to_limit <= horizon && f.r2 >= 0.5 && f.points >= 5 && f.limit;
    const bool was = forecast_soon_.count(key) && forecast_soon_.at(key);
    next[key] = soon;
    if (soon == was) return;
    json::object o;
    o["series"] = series;
    if (shard) {
      o["index"] = index_name(shard->first);
      o["shard"] = shard->second;
    }
    o["state"] = soon ? "within_horizon" : "beyond_horizon";
    o["now"] = std::round(f.now);
    if (f.limit) o["limit"] = std::round(*f.limit);
    o["slope_per_hour"] = std::round(f.slope_per_hour * 1000) / 1000;
    o["r2"] = std::round(f.r2 * 1000) / 1000;
    if (f.seconds_to_limit) o["seconds_to_limit"] = std::round(*f.seconds_to_limit);
    char text[200];
    if (soon)
      std::snprintf(text, sizeof text, " reaches its limit of %.0f in %.1f h at the present pace (r2 %.2f)", f.limit.value_or(0),
                    *f.seconds_to_limit / 3600.0, f.r2);
    else
      std::snprintf(text, sizeof text, " is no longer forecast to reach its limit within %.1f h", horizon / 3600.0);
    push_event("forecast", what + text, to_json_text(o));
  };
  check(0, v.disk_used, "the disk", "disk_used_bytes", std::nullopt);
  for (const auto& s : v.shards)
    check(load_key(s.index_id, s.shard_id) + 1, s.bytes,
          "shard " + index_name(s.index_id) + "/" + std::to_string(s.shard_id) + " bytes", "shard_bytes",
          std::make_pair(s.index_id, s.shard_id));
  forecast_soon_ = std::move(next);  // shards no longer here are forgotten
}

result<std::chrono::milliseconds> parse_window(std::string_view text) {
  std::size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
  const auto unit = text.substr(digits);
  std::uint64_t scale = 0;
  if (unit.empty() || unit == "s") scale = 1000;
  else if (unit == "ms") scale = 1;
  else if (unit == "m") scale = 60 * 1000;
  else if (unit == "h") scale = 3600 * 1000;
  const auto n = digits ? parse_decimal(text.substr(0, digits), 1, 1000000) : std::nullopt;
  if (!n || scale == 0)
    return make_error(errc::invalid_argument, "window must be a whole number with a unit ms, s, m or h (e.g. 30s, 5m), not '" +
                                                  std::string(text) + "'");
  return std::chrono::milliseconds(*n * scale);
}

}  // namespace shardd
