// The rebalancer, on the controller: snapshot -> plan_rebalance (the core) -> queued moves.
#include "node/controller.hpp"

#include "common/log.hpp"
#include "node/store_ops.hpp"

#include <charconv>

namespace shardd {

using asio::awaitable;

namespace {

constexpr std::string_view next_plan_key = "rebalance/next_plan";

std::int64_t now_wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

awaitable<void> controller::load_plan_number() {
  if (!meta_) co_return;
  if (auto v = co_await meta_->get(std::string(next_plan_key)); v && *v) {
    std::uint64_t n = 0;
    if (auto [p, ec] = std::from_chars((*v)->data(), (*v)->data() + (*v)->size(), n); ec == std::errc{} && n > 0)
      next_plan_ = std::max(next_plan_, n);
  }
}

awaitable<std::string> controller::new_plan_id() {
  auto id = "p" + std::to_string(next_plan_++);
  // Plan ids go on across restarts, so the journal and the migration records never name two
  // plans alike.
  std::vector<storage::write_op> ops;
  ops.push_back({storage::op_kind::meta_put, std::string(next_plan_key), std::to_string(next_plan_)});
  co_await write_meta(std::move(ops), "plan_number_not_saved");
  co_return id;
}

rebalance_run controller::make_plan(const partition_map& m) {
  rebalance_run run;
  run.created_ms = now_wall_ms();
  run.plan = plan_rebalance(make_input(m));
  return run;
}

rebalance_input controller::make_input(const partition_map& m) {
  rebalance_input in;
  in.map = &m;
  in.migrations = &migrations_;
  in.settings = m.settings.rebalance;
  in.now_ms = static_cast<std::uint64_t>(now_wall_ms());
  in.continuing = rebalance_continuing_;
  std::unordered_map<std::uint64_t, std::string> reporter;
  auto take = [&](const std::string& from, const std::vector<peer::shard_load>& loads) {
    for (const auto& l : loads) {
      const auto key = shard_key(l.index_id, l.shard_id);
      in.metrics[key] = {l.bytes, l.records, l.reads_per_sec, l.writes_per_sec, 0, l.top_key_share};
      reporter[key] = from;
    }
  };
  std::set<std::string, std::less<>> reported;
  for (const auto& [id, l] : leases_)
    if (l.load_at) {
      take(id, l.load);
      reported.insert(id);
    }
  if (local_load_)
    if (auto mine = local_load_()) {
      take(cfg_.node_id, mine->shards);
      reported.insert(cfg_.node_id);
    }
  // A shard that just moved keeps its load over the move (see load_memory).
  load_memory_.apply(m, in.metrics, reporter, static_cast<std::int64_t>(in.now_ms));
  in.hot = hot_tracker_.observe(m, in.metrics, in.settings, static_cast<std::int64_t>(in.now_ms));
  // A member that owns no shard has nothing to report (its heartbeats leave the load out).
  std::set<std::string_view> owning;
  for (const auto& [name, ix] : m.indexes)
    for (const auto& sh : ix.shards) owning.insert(sh.owner);
  for (const auto& [id, n] : m.nodes)
    if (n.state == node_state::up && !reported.contains(id) && owning.contains(id)) in.unreported.insert(id);
  // The ETA without a cap: the mean rate of the last finished moves.
  std::uint64_t sum = 0, count = 0;
  for (auto it = migrations_.rbegin(); it != migrations_.rend() && count < 20; ++it)
    if (it->second.rate_bytes_per_sec > 0) sum += it->second.rate_bytes_per_sec, ++count;
  if (count) in.observed_bytes_per_sec = sum / count;
  in.disks = disks(m.settings.rebalance.disk);
  if (in.settings.predictive) track_growth(in);
  return in;
}

namespace {

constexpr std::size_t growth_points = 60;  ///< points per trend
constexpr std::size_t growth_min_points = 4;
constexpr double growth_min_r2 = 0.5;  ///< a trend this poor (or worse) predicts nothing

/// Adds (t, y) to `pts` (at most growth_points, oldest dropped) and returns the fitted slope
/// when it rises and fits well, else 0.
double add_and_fit(std::deque<trend_point>& pts, double t, double y, bool add) {
  if (add) {
    pts.push_back({t, y});
    while (pts.size() > growth_points) pts.pop_front();
  }
  if (pts.size() < growth_min_points) return 0;
  const std::vector<trend_point> v(pts.begin(), pts.end());
  const auto tr = fit_trend(v);
  return tr && tr->slope > 0 && tr->r2 >= growth_min_r2 ? tr->slope : 0;
}

}  // namespace

void controller::track_growth(rebalance_input& in) {
  const auto now = std::chrono::steady_clock::now();
  const bool add = now - growth_at_ >= std::chrono::seconds(1);
  if (add) growth_at_ = now;
  const double t = std::chrono::duration<double>(now.time_since_epoch()).count();
  std::unordered_map<std::uint64_t, std::deque<trend_point>> kept;
  for (auto& [key, mt] : in.metrics) {
    auto it = shard_growth_.find(key);
    std::deque<trend_point> pts = it != shard_growth_.end() ? std::move(it->second) : std::deque<trend_point>{};
    mt.bytes_per_sec_trend = add_and_fit(pts, t, static_cast<double>(mt.bytes), add);
    kept.emplace(key, std::move(pts));
  }
  shard_growth_ = std::move(kept);  // shards gone (dropped, split) are forgotten
  std::map<std::string, std::deque<trend_point>, std::less<>> disks_kept;
  for (auto& [id, d] : in.disks) {
    if (d.total == 0) continue;
    auto it = disk_growth_.find(id);
    std::deque<trend_point> pts = it != disk_growth_.end() ? std::move(it->second) : std::deque<trend_point>{};
    d.used_per_sec_trend = add_and_fit(pts, t, static_cast<double>(d.used), add);
    disks_kept.emplace(id, std::move(pts));
  }
  disk_growth_ = std::move(disks_kept);
}

awaitable<void> controller::on(rebalance_plan_msg& q) {
  auto snap = co_await plane_.load();
  if (!snap) {
    q.reply.send(snap.error());
    co_return;
  }
  if (q.what_if) {
    // A copy of the map, changed as asked, through the same planner.
    partition_map copy = *(*snap)->map;
    auto in = make_input(copy);
    if (auto ok = apply_simulation(*q.what_if, copy, in); !ok) {
      q.reply.send(ok.error());
      co_return;
    }
    rebalance_run sim;
    sim.created_ms = now_wall_ms();
    sim.plan = plan_rebalance(in);
    sim.plan.map_version = (*snap)->map->version;
    q.reply.send(std::move(sim));
    co_return;
  }
  auto run = make_plan(*(*snap)->map);
  if (q.keep) {
    run.id = co_await new_plan_id();
    last_plan_ = run;
    event e;
    e.type = "rebalance";
    e.summary = "plan " + run.id + " (asked): " + run.plan.summary;
    e.fields = {{"plan", run.id},
                {"map_version", static_cast<std::int64_t>(run.plan.map_version)},
                {"moves", static_cast<std::int64_t>(run.plan.moves.size())},
                {"bytes", static_cast<std::int64_t>(run.plan.bytes_to_move)}};
    co_await record(std::move(e));
  }
  q.reply.send(std::move(run));
}

void controller::after_split(std::uint32_t index_id, std::uint32_t shard, std::uint32_t new_id, std::uint64_t hot_after_ms) {
  const auto now = now_wall_ms();
  load_memory_.split(shard_key(index_id, shard), shard_key(index_id, new_id), now);
  hot_tracker_.split(shard_key(index_id, shard), shard_key(index_id, new_id), now, hot_after_ms);
}

awaitable<std::vector<std::string>> controller::split_hot(const rebalance_run& run, std::vector<std::string>& skipped) {
  std::vector<std::string> done;
  for (const auto& sp : run.plan.splits) {
    const auto& h = sp.shard;
    const std::string name = h.index + "/" + std::to_string(h.shard);
    std::string why = "rebalance plan " + run.id + ": hot shard " + name + " " + sp.detail;
    auto snap = co_await plane_.load();
    if (!snap) {
      skipped.push_back(name + ": " + snap.error().detail);
      continue;
    }
    const auto* ix = (*snap)->map->find_index(h.index);
    const auto* sh = ix && ix->id == h.index_id ? ix->find_shard(h.shard) : nullptr;
    if (!sh) {
      skipped.push_back(name + ": the shard is gone");
      continue;
    }
    SHARDD_LOG(info, "hot_split", "plan", run.id, "index", h.index, "shard", h.shard, "node", h.node,
               "requests_per_sec", h.rate, "share_of_node", h.share);
    // Its clock waits from now: a range shard's median still to come, or a split refused, is
    // not asked for again at the next tick (a split made quiets the new half too).
    hot_tracker_.split(shard_key(h.index_id, h.shard), shard_key(h.index_id, h.shard), now_wall_ms(),
                       (*snap)->map->settings.rebalance.hot.after_ms);
    if (ix->strategy == partitioning::range) {
      // At the owner's median key, asked off the loop: the split follows as median_done_msg.
      reply_to<map_result> nobody(std::make_shared<reply_to<map_result>::channel>(strand_, 1));
      split_at_median(sh->owner, h.index, h.index_id, h.shard, std::move(nobody), std::move(why));
      done.push_back(name);
      continue;
    }
    if (auto res = co_await split_hash(h.index, h.index_id, h.shard, std::move(why)); !res)
      skipped.push_back(name + ": " + res.error().detail);
    else
      done.push_back(name);
  }
  co_return done;
}

awaitable<rebalance_applied> controller::apply_plan(const rebalance_run& run) {
  rebalance_applied out;
  out.map_version = run.plan.map_version;
  out.split = co_await split_hot(run, out.skipped);
  for (const auto& mv : run.plan.moves) {
    migrate_request q{mv.index, mv.shard, mv.target, mv.priority, 0};
    auto r = co_await create(std::move(q), mv.reason, run.id);
    if (r)
      out.started.push_back(*r);
    else
      out.skipped.push_back(mv.index + "/" + std::to_string(mv.shard) + ": " + r.error().detail);
  }
  // A plan that did not reach threshold / 2 (its budget ran out, say) goes on next time, below
  // the threshold too.
  rebalance_continuing_ = !run.plan.converged && !run.plan.moves.empty();
  event e;
  e.type = "rebalance";
  e.summary = "plan " + run.id + " applied: " +
              (out.split.empty() ? std::string() : std::to_string(out.split.size()) + " hot shard(s) split, ") +
              std::to_string(out.started.size()) + " move(s) queued" +
              (out.skipped.empty() ? std::string() : ", " + std::to_string(out.skipped.size()) + " refused") + "; " +
              run.plan.summary;
  e.fields = {{"plan", run.id},
              {"map_version", static_cast<std::int64_t>(run.plan.map_version)},
              {"moves", static_cast<std::int64_t>(out.started.size())},
              {"splits", static_cast<std::int64_t>(out.split.size())},
              {"bytes", static_cast<std::int64_t>(run.plan.bytes_to_move)}};
  co_await record(std::move(e));
  SHARDD_LOG(info, "rebalance_applied", "plan", run.id, "moves", out.started.size(), "splits", out.split.size(), "skipped", out.skipped.size(),
             "map_version", run.plan.map_version);
  co_return out;
}

awaitable<void> controller::on(rebalance_apply_msg& q) {
  if (!last_plan_ || last_plan_->id != q.id) {
    q.reply.send(make_error(errc::not_found, "plan " + q.id + " is not the latest plan" +
                                                 (last_plan_ ? " (the latest is " + last_plan_->id + ")" : std::string()) +
                                                 ": make one with POST /v1/rebalance/plan"));
    co_return;
  }
  auto snap = co_await plane_.load();
  if (!snap) {
    q.reply.send(snap.error());
    co_return;
  }
  const auto version = (*snap)->map->version;
  if (version != last_plan_->plan.map_version || (q.if_match && *q.if_match != version)) {
    rebalance_applied stale;
    stale.stale = true;
    stale.map_version = version;
    q.reply.send(std::move(stale));
    co_return;
  }
  const auto run = *last_plan_;
  last_plan_.reset();  // a plan is applied once
  q.reply.send(co_await apply_plan(run));
}

awaitable<void> controller::rebalance_tick() {
  if (!peers_ || !store_) co_return;
  auto snap = co_await plane_.load();
  if (!snap) co_return;
  const auto& m = *(*snap)->map;
  if (m.settings.rebalance.mode == rebalance_mode::off) rebalance_continuing_ = false;
  if (m.settings.rebalance.mode != rebalance_mode::automatic) co_return;
  const auto now = std::chrono::steady_clock::now();
  if (now - last_rebalance_ < std::chrono::milliseconds(m.settings.rebalance.interval_ms)) co_return;
  last_rebalance_ = now;
  auto run = make_plan(m);
  if (run.plan.moves.empty() && run.plan.splits.empty()) {
    if (run.plan.converged) rebalance_continuing_ = false;
    // Waiting for a member's first load report (a node that just joined): plan again at the
    // next tick, not a whole interval later.
    for (const auto& h : run.plan.held)
      if (h.rule == "no_load_data") last_rebalance_ = {};
    co_return;
  }
  run.id = co_await new_plan_id();
  (void)co_await apply_plan(run);
}

}  // namespace shardd
