#include "shardd/rebalance.hpp"

#include <boost/json/array.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <numeric>

namespace shardd {

namespace json = boost::json;

namespace {

constexpr std::array<std::string_view, 5> strategy_names{"shards", "bytes", "records", "load", "weighted"};
constexpr std::array<std::string_view, 3> mode_names{"auto", "plan-only", "off"};
constexpr double min_cost_bytes = 1024.0 * 1024.0;  // every shard costs at least 1 MiB to move
constexpr std::uint64_t disk_report_lag_ms = 60'000;  // a finished move's bytes leave the source's disk report within this

std::string percent(double ratio) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f%%", ratio * 100.0);
  return buf;
}

std::string fixed2(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", v);
  return buf;
}

struct item {
  const index_entry* ix = nullptr;
  const shard_entry* sh = nullptr;
  shard_metrics m;
  double weight = 0;
  int node = -1;  // where it is (in flight: where it goes)
  bool movable = true;
  bool in_flight = false;  // a migration holds it
  bool cooling = false;
  std::uint64_t cooled_ms = 0;  // how long ago it last moved
};

struct node_item {
  const node_entry* e = nullptr;
  bool dest = false;        // up, weight > 0, not draining: takes shards
  bool must_empty = false;  // draining, or up with weight 0: every shard goes
  bool down = false;
  bool full = false;  // disk at its low watermark or above: takes no shard
  const node_disk* disk = nullptr;
  std::uint64_t disk_out = 0, disk_in = 0;  // bytes the plan moves off and onto it
  double share = 0;
  double score = 0, score_before = 0;
  std::uint32_t shards = 0, shards_before = 0;
  std::uint64_t bytes = 0, bytes_before = 0;
  std::uint64_t out_bytes = 0, in_bytes = 0;
  std::vector<int> items;
};

double ratio_of(const node_item& n) { return n.share > 0 ? n.score / n.share : 0.0; }

// How far a node's score lies outside the band [lo * share, hi * share] (a node that must be
// emptied: all of it).
double distance(const node_item& n, double score, double lo, double hi) {
  if (n.must_empty) return score;
  if (!n.dest) return 0;
  return std::max(0.0, score - hi * n.share) + std::max(0.0, lo * n.share - score);
}


}  // namespace

std::string_view to_string(rebalance_strategy s) noexcept { return strategy_names[static_cast<std::size_t>(s)]; }
std::optional<rebalance_strategy> parse_rebalance_strategy(std::string_view s) noexcept {
  for (std::size_t i = 0; i < strategy_names.size(); ++i)
    if (strategy_names[i] == s) return static_cast<rebalance_strategy>(i);
  return std::nullopt;
}
std::string_view to_string(rebalance_mode m) noexcept { return mode_names[static_cast<std::size_t>(m)]; }
std::optional<rebalance_mode> parse_rebalance_mode(std::string_view s) noexcept {
  for (std::size_t i = 0; i < mode_names.size(); ++i)
    if (mode_names[i] == s) return static_cast<rebalance_mode>(i);
  return std::nullopt;
}

std::string to_string(const disk_watermark& w) {
  if (w.used_share > 0) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g%%", w.used_share * 100.0);
    return buf;
  }
  constexpr std::array<std::pair<std::string_view, std::uint64_t>, 4> units{
      {{"tb", 1ull << 40}, {"gb", 1ull << 30}, {"mb", 1ull << 20}, {"kb", 1ull << 10}}};
  for (const auto& [name, size] : units)
    if (w.min_free % size == 0) return std::to_string(w.min_free / size) + std::string(name);
  return std::to_string(w.min_free) + "b";
}

std::optional<disk_watermark> parse_disk_watermark(std::string_view s) {
  if (s.empty() || s.size() > 24) return std::nullopt;
  std::string lower;
  for (char c : s) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (lower.back() == '%') {
    lower.pop_back();
    if (lower.empty() || lower.find_first_not_of("0123456789.") != std::string::npos) return std::nullopt;
    char* end = nullptr;
    const double v = std::strtod(lower.c_str(), &end);
    if (end != lower.c_str() + lower.size() || !(v > 0) || v > 100) return std::nullopt;
    return disk_watermark{v / 100.0, 0};
  }
  std::size_t digits = 0;
  while (digits < lower.size() && std::isdigit(static_cast<unsigned char>(lower[digits]))) ++digits;
  if (digits == 0 || digits > 15) return std::nullopt;
  const auto unit = std::string_view(lower).substr(digits);
  std::uint64_t mult = 0;
  if (unit == "b" || unit.empty()) mult = 1;
  else if (unit == "kb") mult = 1ull << 10;
  else if (unit == "mb") mult = 1ull << 20;
  else if (unit == "gb") mult = 1ull << 30;
  else if (unit == "tb") mult = 1ull << 40;
  else return std::nullopt;
  const std::uint64_t n = std::stoull(lower.substr(0, digits));
  if (n == 0 || n > (std::uint64_t{1} << 60) / mult) return std::nullopt;
  return disk_watermark{0, n * mult};
}

bool above(const disk_watermark& w, std::uint64_t used, std::uint64_t total) noexcept {
  if (total == 0) return false;
  if (w.used_share > 0) return static_cast<double>(used) > w.used_share * static_cast<double>(total);
  return (used >= total ? 0 : total - used) < w.min_free;
}

std::uint64_t used_at(const disk_watermark& w, std::uint64_t total) noexcept {
  if (w.used_share > 0) return static_cast<std::uint64_t>(w.used_share * static_cast<double>(total));
  return total > w.min_free ? total - w.min_free : 0;
}

std::string_view to_string(disk_level l) noexcept {
  constexpr std::array<std::string_view, 4> names{"ok", "low", "high", "flood"};
  return names[static_cast<std::size_t>(l)];
}

disk_level level_of(const disk_watermarks& w, std::uint64_t used, std::uint64_t total, disk_level previous) noexcept {
  if (above(w.flood, used, total)) return disk_level::flood;
  if (above(w.high, used, total)) return previous == disk_level::flood ? disk_level::flood : disk_level::high;
  if (above(w.low, used, total)) return disk_level::low;
  return disk_level::ok;
}

static rebalance_plan plan_present(const rebalance_input& in, bool balance = true) {
  const auto& m = *in.map;
  const auto& st = in.settings;
  rebalance_plan plan;
  plan.map_version = m.version;
  plan.strategy = st.strategy;
  plan.threshold = st.threshold;
  const double lo = 1.0 - st.threshold / 2, hi = 1.0 + st.threshold / 2;
  auto hold = [&](held_move h) {
    if (plan.held.size() < in.max_held) plan.held.push_back(std::move(h));
  };

  // Nodes: every member that has not left, by id.
  std::vector<node_item> nodes;
  std::unordered_map<std::string_view, int> node_at;
  for (const auto& [id, e] : m.nodes) {
    if (e.state == node_state::left) continue;
    node_item n;
    n.e = &e;
    n.down = e.state == node_state::down;
    n.dest = e.accepts_shards();
    n.must_empty = e.state == node_state::draining || (e.state == node_state::up && e.weight == 0);
    if (auto d = in.disks.find(id); d != in.disks.end()) {
      n.disk = &d->second;
      n.full = d->second.level != disk_level::ok;
    }
    node_at.emplace(std::string_view(e.id), static_cast<int>(nodes.size()));
    nodes.push_back(std::move(n));
  }

  // Migrations: which shards are held (counted where they go) and which moved lately.
  struct shard_history {
    const migration_record* holder = nullptr;
    std::uint64_t last_moved_ms = 0;
    bool moved = false;
  };
  std::unordered_map<std::uint64_t, shard_history> history;
  std::uint32_t budget_moves_used = 0;
  std::uint64_t budget_bytes_used = 0;
  if (in.migrations) {
    for (const auto& [id, r] : *in.migrations) {
      auto& h = history[shard_key(r.index_id, r.shard)];
      if (holds_shard(r)) h.holder = &r;
      if (r.phase == migration_phase::retiring || r.phase == migration_phase::done) {
        h.moved = true;
        h.last_moved_ms = std::max(h.last_moved_ms, r.updated_ms);
        // The source keeps a moved shard's data through the undo window (retiring), and its
        // disk report shows the space freed a while after: counted as gone meanwhile, so a
        // node above its high watermark does not shed again what it has shed already.
        if (r.phase == migration_phase::retiring || r.updated_ms + disk_report_lag_ms > in.now_ms)
          if (auto at = node_at.find(std::string_view(r.source)); at != node_at.end())
            nodes[static_cast<std::size_t>(at->second)].disk_out += r.bytes_total;
      }
      const bool counts = (r.reason == "balance" || r.reason == "predictive") && r.phase != migration_phase::failed &&
                          r.phase != migration_phase::cancelled && r.phase != migration_phase::rolled_back;
      if (counts && r.created_ms + st.window_ms > in.now_ms) {
        ++budget_moves_used;
        budget_bytes_used += r.bytes_total;
      }
    }
  }

  // Shards, located (moves in flight count as done).
  std::vector<item> items;
  double tot[4] = {0, 0, 0, 0};  // shards, bytes, records, load
  for (const auto& [name, ix] : m.indexes) {
    for (const auto& sh : ix.shards) {
      item it;
      it.ix = &ix;
      it.sh = &sh;
      std::string_view where = sh.owner;
      auto hk = history.find(shard_key(ix.id, sh.id));
      if (sh.state == shard_state::migrating && !sh.target.empty()) {
        where = sh.target;
        it.movable = false;
        it.in_flight = true;
      } else if (hk != history.end() && hk->second.holder) {
        where = hk->second.holder->target;
        it.movable = false;
        it.in_flight = true;
      }
      auto at = node_at.find(where);
      if (at == node_at.end() || nodes[at->second].down) {
        if (at != node_at.end() && plan.held.size() < in.max_held && sh.state == shard_state::active)
          hold({"source_down", ix.name, sh.id, std::string(where), "", "its owner is down: it cannot move"});
        continue;
      }
      it.node = at->second;
      if (auto mt = in.metrics.find(shard_key(ix.id, sh.id)); mt != in.metrics.end()) it.m = mt->second;
      if (it.in_flight) {
        // Its bytes leave the source's disk and reach the target's: counted as done.
        if (auto from = node_at.find(std::string_view(sh.owner)); from != node_at.end() && from->second != it.node)
          nodes[static_cast<std::size_t>(from->second)].disk_out += it.m.bytes;
        nodes[static_cast<std::size_t>(it.node)].disk_in += it.m.bytes;
      }
      if (hk != history.end() && hk->second.moved && hk->second.last_moved_ms + st.cooldown_ms > in.now_ms) {
        it.cooling = true;
        it.cooled_ms = in.now_ms >= hk->second.last_moved_ms ? in.now_ms - hk->second.last_moved_ms : 0;
      }
      tot[0] += 1;
      tot[1] += static_cast<double>(it.m.bytes);
      tot[2] += static_cast<double>(it.m.records);
      tot[3] += it.m.reads_per_sec + it.m.writes_per_sec;
      items.push_back(std::move(it));
    }
  }

  // What each shard weighs under the strategy.
  const double count = tot[0];
  auto component = [](const item& it, int c) {
    switch (c) {
      case 0: return 1.0;
      case 1: return static_cast<double>(it.m.bytes);
      case 2: return static_cast<double>(it.m.records);
      default: return it.m.reads_per_sec + it.m.writes_per_sec;
    }
  };
  const double blend[4] = {st.weight_shards, st.weight_bytes, st.weight_records, st.weight_load};
  double blend_sum = 0;
  for (int c = 0; c < 4; ++c)
    if (blend[c] > 0 && tot[c] > 0) blend_sum += blend[c];
  for (auto& it : items) {
    switch (st.strategy) {
      case rebalance_strategy::shards: it.weight = 1; break;
      case rebalance_strategy::weighted: {
        double w = 0;
        for (int c = 0; c < 4; ++c)
          if (blend[c] > 0 && tot[c] > 0) w += blend[c] * component(it, c) / tot[c];
        // Shares sum to 1 over the cluster; scale so the average shard weighs 1.
        it.weight = blend_sum > 0 ? w / blend_sum * count : 1.0;
        break;
      }
      default: {
        const int c = st.strategy == rebalance_strategy::bytes ? 1 : st.strategy == rebalance_strategy::records ? 2 : 3;
        // An empty shard still weighs 1% of the average one, so empty shards spread too; with
        // nothing measured at all, shards are counted.
        it.weight = tot[c] > 0 ? component(it, c) + 0.01 * tot[c] / count : 1.0;
      }
    }
  }
  double total_score = 0, total_cost = 0, total_weight = 0;
  for (const auto& it : items) {
    total_score += it.weight;
    total_cost += static_cast<double>(it.m.bytes) + min_cost_bytes;
    auto& n = nodes[static_cast<std::size_t>(it.node)];
    n.score += it.weight;
    n.shards += 1;
    n.bytes += it.m.bytes;
    n.items.push_back(static_cast<int>(&it - items.data()));
  }
  for (const auto& n : nodes)
    if (n.dest) total_weight += n.e->weight;
  for (auto& n : nodes) {
    if (n.dest && total_weight > 0) n.share = total_score * n.e->weight / total_weight;
    n.score_before = n.score;
    n.shards_before = n.shards;
    n.bytes_before = n.bytes;
  }

  auto skew = [&] {
    if (total_score <= 0) return 0.0;
    double d = 0;
    for (const auto& n : nodes) d += distance(n, n.score, lo, hi);
    return d / total_score;
  };
  auto ratios = [&](double& mx, double& mn) {
    mx = 0;
    mn = std::numeric_limits<double>::infinity();
    for (const auto& n : nodes)
      if (n.dest && n.share > 0) {
        mx = std::max(mx, ratio_of(n));
        mn = std::min(mn, ratio_of(n));
      }
    if (mn == std::numeric_limits<double>::infinity()) mn = 0;
  };
  ratios(plan.max_ratio_before, plan.min_ratio_before);
  plan.skew_before = skew();

  auto apply = [&](int idx, int to, std::string reason, std::string detail, migration_priority prio) {
    auto& it = items[static_cast<std::size_t>(idx)];
    auto& src = nodes[static_cast<std::size_t>(it.node)];
    auto& dst = nodes[static_cast<std::size_t>(to)];
    src.score -= it.weight;
    src.shards -= 1;
    src.bytes -= it.m.bytes;
    src.out_bytes += it.m.bytes;
    src.items.erase(std::find(src.items.begin(), src.items.end(), idx));
    dst.score += it.weight;
    dst.shards += 1;
    dst.bytes += it.m.bytes;
    dst.in_bytes += it.m.bytes;
    dst.items.push_back(idx);
    rebalance_move mv;
    mv.index = it.ix->name;
    mv.index_id = it.ix->id;
    mv.shard = it.sh->id;
    mv.source = src.e->id;
    mv.target = dst.e->id;
    mv.reason = std::move(reason);
    mv.detail = std::move(detail);
    mv.priority = prio;
    mv.bytes = it.m.bytes;
    mv.records = it.m.records;
    mv.score = it.weight;
    plan.moves.push_back(std::move(mv));
    plan.bytes_to_move += it.m.bytes;
    plan.records_to_move += it.m.records;
    it.node = to;
    it.movable = false;  // once per plan
  };

  // 1. Drains: every shard of a node that must be emptied goes, heaviest first, to the node
  //    whose ratio stays lowest.
  bool draining = false;
  for (std::size_t ni = 0; ni < nodes.size(); ++ni) {
    if (!nodes[ni].must_empty) continue;
    auto list = nodes[ni].items;
    std::stable_sort(list.begin(), list.end(), [&](int a, int b) {
      return items[static_cast<std::size_t>(a)].weight > items[static_cast<std::size_t>(b)].weight;
    });
    for (int idx : list) {
      const auto& it = items[static_cast<std::size_t>(idx)];
      if (!it.movable) continue;  // on its way already
      draining = true;
      int best = -1;
      double best_ratio = 0;
      for (std::size_t d = 0; d < nodes.size(); ++d) {
        if (!nodes[d].dest || nodes[d].share <= 0 || nodes[d].full) continue;
        const double r = (nodes[d].score + it.weight) / nodes[d].share;
        if (best < 0 || r < best_ratio) best = static_cast<int>(d), best_ratio = r;
      }
      if (best < 0) {
        hold({"no_destination", it.ix->name, it.sh->id, nodes[ni].e->id, "",
              "node " + nodes[ni].e->id + " is draining and no node takes shards"});
        continue;
      }
      const std::string why = nodes[ni].e->state == node_state::draining ? "is draining" : "has weight 0";
      apply(idx, best, "drain", "node " + nodes[ni].e->id + " " + why, migration_priority::normal);
    }
  }

  // 2. Disks: a node at its high watermark or above sheds its largest shards until its disk is
  //    predicted under high; each goes to the node whose ratio stays lowest among those whose
  //    disk stays under low.
  bool shedding = false;
  for (std::size_t ni = 0; ni < nodes.size(); ++ni) {
    auto& src = nodes[ni];
    if (!src.disk || src.must_empty || (src.disk->level != disk_level::high && src.disk->level != disk_level::flood)) continue;
    const auto limit = used_at(st.disk.high, src.disk->total);
    auto list = src.items;
    std::stable_sort(list.begin(), list.end(), [&](int a, int b) {
      return items[static_cast<std::size_t>(a)].m.bytes > items[static_cast<std::size_t>(b)].m.bytes;
    });
    const std::string why = "node " + src.e->id + "'s disk is " + percent(static_cast<double>(src.disk->used) /
                                                                            static_cast<double>(std::max<std::uint64_t>(1, src.disk->total))) +
                            " used, above the high watermark " + to_string(st.disk.high);
    for (int idx : list) {
      if (src.disk->used - std::min(src.disk->used, src.disk_out) <= limit) break;
      const auto& it = items[static_cast<std::size_t>(idx)];
      if (!it.movable) continue;
      if (src.down) break;
      int best = -1;
      double best_ratio = 0;
      for (std::size_t d = 0; d < nodes.size(); ++d) {
        auto& dst = nodes[d];
        if (d == ni || !dst.dest || dst.share <= 0 || dst.full) continue;
        if (dst.disk && dst.disk->total > 0 && dst.disk->used + dst.disk_in + it.m.bytes > used_at(st.disk.low, dst.disk->total))
          continue;
        const double r = (dst.score + it.weight) / dst.share;
        if (best < 0 || r < best_ratio) best = static_cast<int>(d), best_ratio = r;
      }
      if (best < 0) {
        hold({"no_destination", it.ix->name, it.sh->id, src.e->id, "", why + ", and no node has room for it under its low watermark"});
        continue;  // a smaller one may fit
      }
      shedding = true;
      src.disk_out += it.m.bytes;
      nodes[static_cast<std::size_t>(best)].disk_in += it.m.bytes;
      apply(idx, best, "disk", why, migration_priority::high);
    }
  }
  for (const auto& n : nodes)
    if (n.full && n.dest)
      hold({"disk_low", "", 0, "", n.e->id,
            "node " + n.e->id + "'s disk is at its " + std::string(to_string(n.disk->level)) + " watermark (" +
                percent(static_cast<double>(n.disk->used) / static_cast<double>(std::max<std::uint64_t>(1, n.disk->total))) +
                " used): it takes no shard"});

  // 2. Balance.
  std::vector<int> dests;
  for (std::size_t i = 0; i < nodes.size(); ++i)
    if (nodes[i].dest && nodes[i].share > 0) dests.push_back(static_cast<int>(i));
  bool beyond = false;
  std::string worst;
  double worst_dev = 0;
  for (int d : dests) {
    const double r = ratio_of(nodes[static_cast<std::size_t>(d)]);
    if (nodes[static_cast<std::size_t>(d)].full && r < 1.0) continue;  // it may take nothing: not a skew to fix
    if (std::abs(r - 1.0) > worst_dev) worst_dev = std::abs(r - 1.0), worst = nodes[static_cast<std::size_t>(d)].e->id;
    if (r > 1.0 + st.threshold || r < 1.0 - st.threshold) beyond = true;
  }
  plan.triggered = beyond || draining || shedding || in.continuing;
  const bool need_metrics = st.strategy != rebalance_strategy::shards && !in.unreported.empty();
  std::string blocked;
  if ((beyond || in.continuing) && !balance) {
    hold({"split_first", "", 0, "", "",
          "balance waits for the split of the hot shard(s): the halves' load decides the next plan's moves"});
    blocked = "a hot shard splits first";
  } else if ((beyond || in.continuing) && need_metrics) {
    for (const auto& id : in.unreported)
      hold({"no_load_data", "", 0, id, "", "node " + id + " has not reported its shards' load yet"});
    blocked = "waiting for the load of " + std::to_string(in.unreported.size()) + " node(s)";
  } else if (beyond || in.continuing) {
    const std::uint32_t moves_left =
        budget_moves_used >= st.max_moves_per_window ? 0 : st.max_moves_per_window - budget_moves_used;
    std::uint32_t moves_made = 0;
    std::uint64_t bytes_made = 0;
    constexpr std::size_t fan = 8;  // sources and targets tried per step
    bool full_sort = false;
    while (true) {
      if (moves_made >= moves_left) {
        hold({"budget", "", 0, "", "",
              std::to_string(st.max_moves_per_window) + " moves per " + std::to_string(st.window_ms / 1000) +
                  " s: none left in this window"});
        break;
      }
      // Nodes by ratio, highest first (ties by id). A step looks only at the ends: the 32 most
      // and the 32 least loaded nodes, unless nothing there moves; then at all of them.
      const auto higher = [&](int a, int b) {
        const double ra = ratio_of(nodes[static_cast<std::size_t>(a)]), rb = ratio_of(nodes[static_cast<std::size_t>(b)]);
        return ra != rb ? ra > rb : a < b;
      };
      constexpr std::size_t ends = 32;
      std::vector<int> by_ratio;
      if (!full_sort && dests.size() > 2 * ends) {
        std::vector<int> top = dests, bottom = dests;
        std::partial_sort(top.begin(), top.begin() + ends, top.end(), higher);
        std::partial_sort(bottom.begin(), bottom.begin() + ends, bottom.end(), [&](int a, int b) { return higher(b, a); });
        by_ratio.assign(top.begin(), top.begin() + ends);
        by_ratio.insert(by_ratio.end(), std::make_reverse_iterator(bottom.begin() + ends), std::make_reverse_iterator(bottom.begin()));
      } else {
        by_ratio = dests;
        std::sort(by_ratio.begin(), by_ratio.end(), higher);
      }
      std::vector<held_move> rejections;
      auto reject = [&](held_move h) {
        if (rejections.size() < in.max_held) rejections.push_back(std::move(h));
      };
      int pick = -1, pick_to = -1;
      double pick_eff = 0, pick_delta = 0;
      int pick_tier = 2;
      std::size_t tried_src = 0;
      for (std::size_t si = 0; si < by_ratio.size() && tried_src < fan && pick < 0; ++si) {
        auto& src = nodes[static_cast<std::size_t>(by_ratio[si])];
        const double rs = ratio_of(src);
        if (src.items.empty()) continue;
        ++tried_src;
        std::size_t tried_dst = 0;
        for (std::size_t di = by_ratio.size(); di-- > 0 && tried_dst < fan;) {
          auto& dst = nodes[static_cast<std::size_t>(by_ratio[di])];
          const double rd = ratio_of(dst);
          if (rd >= rs) break;
          if (dst.full) continue;  // its disk: no shard goes there
          if (!(rs > hi || rd < lo)) continue;  // both inside the band: nothing to gain
          ++tried_dst;
          const double before = distance(src, src.score, lo, hi) + distance(dst, dst.score, lo, hi);
          for (int idx : src.items) {
            const auto& it = items[static_cast<std::size_t>(idx)];
            if (it.in_flight && tried_dst == 1)
              reject({"in_flight", it.ix->name, it.sh->id, src.e->id, "", "a migration to " + src.e->id + " holds it"});
            if (!it.movable) continue;
            const double rd_after = (dst.score + it.weight) / dst.share;
            if (rd_after >= rs) {
              reject({"raises_max", it.ix->name, it.sh->id, src.e->id, dst.e->id,
                      "would take " + dst.e->id + " to " + fixed2(rd_after) + " of its share, not below " + src.e->id +
                          "'s " + fixed2(rs)});
              continue;
            }
            const double delta = before - distance(src, src.score - it.weight, lo, hi) -
                                 distance(dst, dst.score + it.weight, lo, hi);
            if (delta <= 1e-12 * total_score) continue;  // gains nothing
            if (it.cooling) {
              reject({"cooldown", it.ix->name, it.sh->id, src.e->id, dst.e->id,
                      "moved " + std::to_string(it.cooled_ms / 1000) + " s ago (cooldown " +
                          std::to_string(st.cooldown_ms / 1000) + " s)"});
              continue;
            }
            const double cost = static_cast<double>(it.m.bytes) + min_cost_bytes;
            const double benefit = (delta / total_score) / (cost / total_cost);
            if (benefit < st.min_benefit) {
              reject({"benefit", it.ix->name, it.sh->id, src.e->id, dst.e->id,
                      "removes " + percent(delta / total_score) + " of the skew for " + percent(cost / total_cost) +
                          " of the data (benefit " + fixed2(benefit) + " < " + fixed2(st.min_benefit) + ")"});
              continue;
            }
            if (st.max_bytes_per_window > 0 && budget_bytes_used + bytes_made + it.m.bytes > st.max_bytes_per_window) {
              reject({"budget", it.ix->name, it.sh->id, src.e->id, dst.e->id,
                      "its " + std::to_string(it.m.bytes) + " bytes would pass the window's byte budget"});
              continue;
            }
            // A move that leaves its target inside the band beats one that pushes it above:
            // a target pushed above would have to shed what it just received, and no shard
            // moves twice in a plan.
            const int tier = rd_after <= hi ? 0 : 1;
            const double eff = delta / cost;
            const bool better = pick < 0 || tier < pick_tier ||
                                (tier == pick_tier && (eff > pick_eff || (eff == pick_eff && delta > pick_delta)));
            if (better) pick = idx, pick_to = by_ratio[di], pick_eff = eff, pick_delta = delta, pick_tier = tier;
          }
        }
      }
      if (pick < 0 && !full_sort && dests.size() > 2 * ends) {
        full_sort = true;  // nothing at the ends: look at every node once before giving up
        continue;
      }
      if (pick < 0) {
        for (auto& h : rejections) hold(std::move(h));
        break;
      }
      full_sort = false;
      const auto& src = nodes[static_cast<std::size_t>(items[static_cast<std::size_t>(pick)].node)];
      const auto& dst = nodes[static_cast<std::size_t>(pick_to)];
      std::string detail = src.e->id + " at " + fixed2(ratio_of(src)) + " of its share, " + dst.e->id + " at " +
                           fixed2(ratio_of(dst)) + " (" + std::string(to_string(st.strategy)) + ")";
      bytes_made += items[static_cast<std::size_t>(pick)].m.bytes;
      apply(pick, pick_to, "balance", std::move(detail), migration_priority::low);
      ++moves_made;
    }
  }

  // Results.
  ratios(plan.max_ratio_after, plan.min_ratio_after);
  plan.skew_after = skew();
  bool inside = true;
  for (int d : dests) {
    const double r = ratio_of(nodes[static_cast<std::size_t>(d)]);
    if (nodes[static_cast<std::size_t>(d)].full && r < 1.0) continue;
    if (r > hi + 1e-9 || r < lo - 1e-9) inside = false;
  }
  bool emptied = true;
  for (const auto& n : nodes)
    if (n.must_empty)
      for (int idx : n.items)
        if (items[static_cast<std::size_t>(idx)].movable) emptied = false;
  plan.converged = inside && emptied;
  for (const auto& n : nodes) {
    node_score s;
    s.node = n.e->id;
    s.state = std::string(to_string(n.e->state));
    s.weight = n.e->weight;
    s.share = n.share;
    s.before = n.score_before;
    s.after = n.score;
    s.ratio_before = n.share > 0 ? n.score_before / n.share : 0;
    s.ratio_after = ratio_of(n);
    s.shards_before = n.shards_before;
    s.shards_after = n.shards;
    s.bytes_before = n.bytes_before;
    s.bytes_after = n.bytes;
    if (n.disk) {
      s.disk_level = std::string(to_string(n.disk->level));
      s.disk_used = n.disk->used;
      s.disk_total = n.disk->total;
    } else {
      s.disk_level = "unknown";
    }
    plan.nodes.push_back(std::move(s));
  }
  const std::uint64_t rate = m.settings.migration_bytes_per_sec > 0 ? m.settings.migration_bytes_per_sec
                                                                    : in.observed_bytes_per_sec;
  if (plan.bytes_to_move == 0) {
    plan.eta_ms = 0;
  } else if (rate > 0) {
    std::uint64_t busiest = 0;
    for (const auto& n : nodes) busiest = std::max({busiest, n.out_bytes, n.in_bytes});
    plan.eta_ms = static_cast<std::uint64_t>(static_cast<double>(busiest) * 1000.0 / static_cast<double>(rate));
  }
  const std::string t = percent(st.threshold);
  if (!blocked.empty()) {
    plan.summary = "node " + worst + " is " + percent(worst_dev) + " off its share (threshold " + t + "), but " + blocked;
  } else if (!plan.triggered) {
    plan.summary = dests.empty() ? "no node takes shards"
                                 : "every node is within " + t + " of its share (furthest: " +
                                       (worst.empty() ? std::string("all at their share)") : worst + " at " + percent(worst_dev) + ")");
  } else if (plan.moves.empty()) {
    plan.summary = "nothing can move: " + (plan.held.empty() ? std::string("no move removes skew") : plan.held.front().rule +
                                                                                                      ": " + plan.held.front().why);
  } else {
    plan.summary = std::to_string(plan.moves.size()) + " move(s)" + (draining ? " (drains first)" : "") +
                   ": largest share " + fixed2(plan.max_ratio_before) + " -> " + fixed2(plan.max_ratio_after) +
                   ", skew " + percent(plan.skew_before) + " -> " + percent(plan.skew_after) +
                   (plan.converged ? "" : "; not yet within " + percent(st.threshold / 2));
  }
  return plan;
}

migration_record queued_record(const rebalance_move& mv, std::string id, std::uint64_t now_ms) {
  migration_record r;
  r.id = std::move(id);
  r.index = mv.index;
  r.index_id = mv.index_id;
  r.shard = mv.shard;
  r.source = mv.source;
  r.target = mv.target;
  r.priority = mv.priority;
  r.reason = mv.reason;
  r.bytes_total = mv.bytes;
  r.records_total = mv.records;
  r.created_ms = r.updated_ms = now_ms;
  return r;
}

namespace {

std::string duration_text(std::uint64_t ms) {
  if (ms % 3'600'000 == 0) return std::to_string(ms / 3'600'000) + "h";
  if (ms % 60'000 == 0) return std::to_string(ms / 60'000) + "m";
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

}  // namespace

namespace {

std::string rate_text(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, v >= 100 ? "%.0f" : "%.1f", v);
  return buf;
}

// The hot shards of `in.hot` to split now; the others go to `held` with the rule that keeps them.
std::vector<rebalance_split> due_splits(const rebalance_input& in, std::vector<held_move>& held) {
  std::vector<rebalance_split> out;
  const auto& hs = in.settings.hot;
  if (!hs.enabled) return out;
  std::unordered_map<std::uint32_t, std::size_t> added;  // splits per index id in this plan
  for (const auto& h : in.hot) {
    const auto* ix = in.map->find_index(h.index);
    const auto* sh = ix && ix->id == h.index_id ? ix->find_shard(h.shard) : nullptr;
    if (!sh) continue;
    const std::string what = "carries " + percent(h.share) + " of node " + h.node + "'s requests (" + rate_text(h.rate) +
                             "/s; the node is at " + fixed2(h.node_ratio) + " of its share of the load)";
    auto hold = [&](std::string rule, std::string why) {
      if (held.size() < in.max_held) held.push_back({std::move(rule), h.index, h.shard, h.node, "", std::move(why)});
    };
    if (h.hot_for_ms < hs.after_ms) {
      hold("hot", what + " for " + std::to_string(h.hot_for_ms / 1000) + " s of the " + std::to_string(hs.after_ms / 1000) +
                      " s before it splits");
      continue;
    }
    if (sh->state != shard_state::active || (in.migrations && shard_busy(*in.migrations, h.index, h.shard))) {
      hold("in_flight", what + ", but a migration holds it: it splits when the move ends");
      continue;
    }
    if (h.top_key_share >= 0.5) {
      hold("hot_key", what + ", but its hottest key has " + percent(h.top_key_share) +
                          " of its requests: a split cannot divide one key (see GET /v1/shards/{index}/{n}/hot-keys)");
      continue;
    }
    if (ix->shards.size() + added[ix->id] >= max_shards_per_index) {
      hold("max_shards", what + ", but index " + ix->name + " has the most shards an index may have");
      continue;
    }
    ++added[ix->id];
    out.push_back({h, what + " for " + std::to_string(h.hot_for_ms / 1000) + " s: split, then balance the halves"});
  }
  return out;
}

}  // namespace

std::vector<hot_shard> hot_tracker::observe(const partition_map& m,
                                            const std::unordered_map<std::uint64_t, shard_metrics>& metrics,
                                            const rebalance_settings& s, std::int64_t now_ms) {
  std::vector<hot_shard> out;
  std::erase_if(quiet_until_, [&](const auto& q) { return q.second <= now_ms; });
  if (!s.hot.enabled) {
    hot_.clear();
    return out;
  }
  auto rate_of = [&](std::uint32_t ix, std::uint32_t sh) {
    auto it = metrics.find(shard_key(ix, sh));
    return it == metrics.end() ? 0.0 : it->second.reads_per_sec + it->second.writes_per_sec;
  };
  // Each node's load, and the cluster's, over the nodes that take shards.
  std::unordered_map<std::string_view, double> node_rate;
  double total_rate = 0, total_weight = 0;
  for (const auto& [id, n] : m.nodes)
    if (n.accepts_shards()) total_weight += n.weight;
  for (const auto& [name, ix] : m.indexes)
    for (const auto& sh : ix.shards) {
      const double r = rate_of(ix.id, sh.id);
      node_rate[sh.owner] += r;
      if (const auto* n = m.find_node(sh.owner); n && n->accepts_shards()) total_rate += r;
    }
  std::unordered_map<std::uint64_t, entry> next;
  if (total_weight > 0 && total_rate > 0)
    for (const auto& [name, ix] : m.indexes)
      for (const auto& sh : ix.shards) {
        const auto key = shard_key(ix.id, sh.id);
        const auto* n = m.find_node(sh.owner);
        if (!n || !n->accepts_shards() || quiet_until_.contains(key)) continue;
        const double r = rate_of(ix.id, sh.id);
        const double nr = node_rate[sh.owner];
        const double node_ratio = nr / (total_rate * n->weight / total_weight);
        if (!(r > 0) || r < s.hot.min_rate || r < s.hot.share * nr || !(node_ratio > 1.0 + s.threshold)) continue;
        entry e{sh.owner, sh.start, sh.end, now_ms};
        if (auto old = hot_.find(key); old != hot_.end() && old->second.node == e.node && old->second.start == e.start &&
                                       old->second.end == e.end)
          e.since_ms = old->second.since_ms;
        hot_shard h;
        h.index = ix.name;
        h.index_id = ix.id;
        h.shard = sh.id;
        h.node = sh.owner;
        h.rate = r;
        h.share = r / nr;
        h.node_ratio = node_ratio;
        if (auto mt = metrics.find(key); mt != metrics.end()) h.top_key_share = mt->second.top_key_share;
        h.hot_for_ms = static_cast<std::uint64_t>(std::max<std::int64_t>(0, now_ms - e.since_ms));
        out.push_back(std::move(h));
        next.emplace(key, std::move(e));
      }
  hot_ = std::move(next);
  return out;
}

void hot_tracker::split(std::uint64_t from, std::uint64_t to, std::int64_t now_ms, std::uint64_t after_ms) {
  hot_.erase(from);
  hot_.erase(to);
  const auto until = now_ms + static_cast<std::int64_t>(after_ms);
  quiet_until_[from] = until;
  quiet_until_[to] = until;
}

rebalance_plan plan_rebalance(const rebalance_input& in) {
  std::vector<held_move> hot_held;
  auto splits = due_splits(in, hot_held);
  auto with_hot = [&](rebalance_plan p) {
    for (auto& h : hot_held)
      if (p.held.size() < in.max_held) p.held.push_back(h);
    return p;
  };
  auto plan = plan_present(in, splits.empty());
  if (!splits.empty()) {
    plan.splits = std::move(splits);
    plan.summary = std::to_string(plan.splits.size()) + " hot shard(s) split first (" + plan.splits.front().shard.index + "/" +
                   std::to_string(plan.splits.front().shard.shard) + " " + plan.splits.front().detail + ")" +
                   (plan.moves.empty() ? std::string() : "; " + std::to_string(plan.moves.size()) + " drain or disk move(s)");
    return with_hot(std::move(plan));
  }
  if (!in.settings.predictive || plan.triggered || !plan.moves.empty()) return with_hot(std::move(plan));
  // The cluster a horizon ahead, by the trends measured.
  const double secs = static_cast<double>(in.settings.horizon_ms) / 1000.0;
  rebalance_input ahead = in;
  bool grows = false;
  for (auto& [key, mt] : ahead.metrics)
    if (mt.bytes_per_sec_trend > 0) {
      mt.bytes += static_cast<std::uint64_t>(mt.bytes_per_sec_trend * secs);
      grows = true;
    }
  for (auto& [id, d] : ahead.disks)
    if (d.used_per_sec_trend > 0 && d.total > 0) {
      d.used = std::min<std::uint64_t>(d.total, d.used + static_cast<std::uint64_t>(d.used_per_sec_trend * secs));
      d.level = level_of(in.settings.disk, d.used, d.total, d.level);
      grows = true;
    }
  if (!grows) return with_hot(std::move(plan));
  auto future = plan_present(ahead);
  const std::string when = "forecast in " + duration_text(in.settings.horizon_ms);
  if (future.moves.empty()) {
    plan.summary += "; " + when + ": " + future.summary;
    return with_hot(std::move(plan));
  }
  // The present must stay balanced: with the moves made, a plan of the present would not be
  // triggered (else the next tick would move shards back). Balance moves are dropped from the
  // end until it holds; a node forecast past its high watermark sheds whatever the present says.
  auto present_triggered = [&](const std::vector<rebalance_move>& moves) {
    migration_table t = in.migrations ? *in.migrations : migration_table{};
    std::size_t n = 0;
    for (const auto& mv : moves) {
      auto r = queued_record(mv, "forecast-" + std::to_string(n++), in.now_ms);
      t.emplace(r.id, std::move(r));
    }
    rebalance_input now = in;
    now.migrations = &t;
    now.continuing = false;
    return plan_present(now).triggered;
  };
  std::vector<rebalance_move> kept = future.moves;
  std::size_t dropped = 0;
  while (present_triggered(kept)) {
    auto it = std::find_if(kept.rbegin(), kept.rend(), [](const rebalance_move& mv) { return mv.reason != "disk"; });
    if (it == kept.rend()) break;
    rebalance_move gone = *it;
    kept.erase(std::next(it).base());
    ++dropped;
    if (future.held.size() < in.max_held)
      future.held.push_back({"present_balance", gone.index, gone.shard, gone.source, gone.target,
                             "the forecast wants it, but made now it would take the present out of the threshold"});
  }
  if (kept.empty()) {
    plan.summary += "; " + when + ": " + future.summary + ", but no move keeps the present within the threshold";
    return with_hot(std::move(plan));
  }
  future.moves = std::move(kept);
  future.bytes_to_move = future.records_to_move = 0;
  for (auto& mv : future.moves) {
    mv.reason = "predictive";
    mv.priority = migration_priority::low;
    mv.detail = when + ": " + mv.detail;
    future.bytes_to_move += mv.bytes;
    future.records_to_move += mv.records;
  }
  future.predictive = true;
  future.summary = when + ": " + future.summary +
                   (dropped ? "; " + std::to_string(dropped) + " move(s) left for later to keep the present within the threshold" : "");
  return with_hot(std::move(future));
}

json::object to_json_object(const rebalance_plan& p) {
  json::object o;
  o["map_version"] = p.map_version;
  o["strategy"] = to_string(p.strategy);
  o["threshold"] = p.threshold;
  o["triggered"] = p.triggered;
  o["converged"] = p.converged;
  o["predictive"] = p.predictive;
  o["summary"] = p.summary;
  json::array moves;
  for (const auto& mv : p.moves) {
    json::object j;
    j["index"] = mv.index;
    j["shard"] = mv.shard;
    j["source"] = mv.source;
    j["target"] = mv.target;
    j["reason"] = mv.reason;
    j["detail"] = mv.detail;
    j["priority"] = to_string(mv.priority);
    j["bytes"] = mv.bytes;
    j["records"] = mv.records;
    j["score"] = mv.score;
    moves.push_back(std::move(j));
  }
  o["moves"] = std::move(moves);
  json::array nodes;
  for (const auto& n : p.nodes) {
    json::object j;
    j["node"] = n.node;
    j["state"] = n.state;
    j["weight"] = n.weight;
    j["share"] = n.share;
    j["score_before"] = n.before;
    j["score_after"] = n.after;
    j["ratio_before"] = n.ratio_before;
    j["ratio_after"] = n.ratio_after;
    j["shards_before"] = n.shards_before;
    j["shards_after"] = n.shards_after;
    j["bytes_before"] = n.bytes_before;
    j["bytes_after"] = n.bytes_after;
    j["disk_level"] = n.disk_level;
    j["disk_used"] = n.disk_used;
    j["disk_total"] = n.disk_total;
    nodes.push_back(std::move(j));
  }
  o["nodes"] = std::move(nodes);
  o["max_ratio_before"] = p.max_ratio_before;
  o["max_ratio_after"] = p.max_ratio_after;
  o["min_ratio_before"] = p.min_ratio_before;
  o["min_ratio_after"] = p.min_ratio_after;
  o["skew_before"] = p.skew_before;
  o["skew_after"] = p.skew_after;
  o["bytes_to_move"] = p.bytes_to_move;
  o["records_to_move"] = p.records_to_move;
  if (p.eta_ms)
    o["eta_ms"] = *p.eta_ms;
  else
    o["eta_ms"] = nullptr;
  json::array held;
  for (const auto& h : p.held) {
    json::object j;
    j["rule"] = h.rule;
    if (!h.index.empty()) {
      j["index"] = h.index;
      j["shard"] = h.shard;
    }
    if (!h.source.empty()) j["source"] = h.source;
    if (!h.target.empty()) j["target"] = h.target;
    j["why"] = h.why;
    held.push_back(std::move(j));
  }
  o["held"] = std::move(held);
  json::array splits;
  for (const auto& sp : p.splits) {
    json::object j;
    j["index"] = sp.shard.index;
    j["shard"] = sp.shard.shard;
    j["node"] = sp.shard.node;
    j["requests_per_sec"] = sp.shard.rate;
    j["share_of_node"] = sp.shard.share;
    j["node_ratio"] = sp.shard.node_ratio;
    j["top_key_share"] = sp.shard.top_key_share;
    j["hot_for_ms"] = sp.shard.hot_for_ms;
    j["detail"] = sp.detail;
    splits.push_back(std::move(j));
  }
  o["splits"] = std::move(splits);
  return o;
}

json::object to_json_object(const rebalance_settings& s) {
  json::object o;
  o["mode"] = to_string(s.mode);
  o["strategy"] = to_string(s.strategy);
  o["threshold"] = s.threshold;
  json::object w;
  w["shards"] = s.weight_shards;
  w["bytes"] = s.weight_bytes;
  w["records"] = s.weight_records;
  w["load"] = s.weight_load;
  o["weights"] = std::move(w);
  o["interval_ms"] = s.interval_ms;
  o["cooldown_ms"] = s.cooldown_ms;
  o["window_ms"] = s.window_ms;
  o["max_moves_per_window"] = s.max_moves_per_window;
  o["max_bytes_per_window"] = s.max_bytes_per_window;
  o["min_benefit"] = s.min_benefit;
  json::object d;
  d["low"] = to_string(s.disk.low);
  d["high"] = to_string(s.disk.high);
  d["flood"] = to_string(s.disk.flood);
  o["disk_watermarks"] = std::move(d);
  o["predictive"] = s.predictive;
  o["horizon_ms"] = s.horizon_ms;
  json::object h;
  h["enabled"] = s.hot.enabled;
  h["share"] = s.hot.share;
  h["min_rate"] = s.hot.min_rate;
  h["after_ms"] = s.hot.after_ms;
  o["hot_split"] = std::move(h);
  return o;
}

result<void> read_rebalance_settings(json_fields& f, rebalance_settings& s) {
  if (auto v = f.opt_string("mode"); !v) {
    return v.error();
  } else if (*v) {
    auto mode = parse_rebalance_mode(**v);
    if (!mode) return f.fail("mode", "must be auto, plan-only or off");
    s.mode = *mode;
  }
  if (auto v = f.opt_string("strategy"); !v) {
    return v.error();
  } else if (*v) {
    auto strategy = parse_rebalance_strategy(**v);
    if (!strategy) return f.fail("strategy", "must be shards, bytes, records, load or weighted");
    s.strategy = *strategy;
  }
  SHARDD_READ(s.threshold, f.opt_double("threshold", s.threshold, 0.01, 10.0));
  auto w = f.opt_object("weights");
  if (!w) return w.error();
  if (*w) {
    json_fields wf(**w, f.child_path("weights"));
    SHARDD_READ(s.weight_shards, wf.opt_double("shards", s.weight_shards, 0, 1e6));
    SHARDD_READ(s.weight_bytes, wf.opt_double("bytes", s.weight_bytes, 0, 1e6));
    SHARDD_READ(s.weight_records, wf.opt_double("records", s.weight_records, 0, 1e6));
    SHARDD_READ(s.weight_load, wf.opt_double("load", s.weight_load, 0, 1e6));
    if (auto done = wf.finish(); !done) return done.error();
    if (s.weight_shards + s.weight_bytes + s.weight_records + s.weight_load <= 0)
      return f.fail("weights", "at least one weight must be above 0");
  }
  SHARDD_READ(s.interval_ms, f.opt_u64("interval_ms", s.interval_ms, 100, 86'400'000));
  SHARDD_READ(s.cooldown_ms, f.opt_u64("cooldown_ms", s.cooldown_ms, 0, 7 * 86'400'000ull));
  SHARDD_READ(s.window_ms, f.opt_u64("window_ms", s.window_ms, 1000, 7 * 86'400'000ull));
  SHARDD_READ(s.max_moves_per_window, f.opt_u64("max_moves_per_window", s.max_moves_per_window, 1, 1'000'000));
  SHARDD_READ(s.max_bytes_per_window, f.opt_u64("max_bytes_per_window", s.max_bytes_per_window));
  SHARDD_READ(s.min_benefit, f.opt_double("min_benefit", s.min_benefit, 0, 100));
  auto dw = f.opt_object("disk_watermarks");
  if (!dw) return dw.error();
  if (*dw) {
    json_fields df(**dw, f.child_path("disk_watermarks"));
    disk_watermarks next = s.disk;
    for (auto [name, target] : {std::pair<const char*, disk_watermark*>{"low", &next.low}, {"high", &next.high}, {"flood", &next.flood}}) {
      auto v = df.opt_string(name);
      if (!v) return v.error();
      if (!*v) continue;
      auto w = parse_disk_watermark(**v);
      if (!w) return df.fail(name, "must be a share of the disk in use (\"85%\") or bytes to keep free (\"500mb\")");
      *target = *w;
    }
    if (auto done = df.finish(); !done) return done.error();
    const bool shares = next.low.used_share > 0;
    if ((next.high.used_share > 0) != shares || (next.flood.used_share > 0) != shares)
      return f.fail("disk_watermarks", "low, high and flood must all be shares (\"85%\") or all bytes free (\"500mb\")");
    const bool ordered = shares ? next.low.used_share <= next.high.used_share && next.high.used_share <= next.flood.used_share
                                : next.low.min_free >= next.high.min_free && next.high.min_free >= next.flood.min_free;
    if (!ordered) return f.fail("disk_watermarks", "each must be at least as strict as the one before it (low, high, flood: " + to_string(next.low) + ", " +
                                                       to_string(next.high) + ", " + to_string(next.flood) + ")");
    s.disk = next;
  }
  SHARDD_READ(s.predictive, f.opt_bool("predictive", s.predictive));
  SHARDD_READ(s.horizon_ms, f.opt_u64("horizon_ms", s.horizon_ms, 1000, 30 * 86'400'000ull));
  auto hs = f.opt_object("hot_split");
  if (!hs) return hs.error();
  if (*hs) {
    json_fields hf(**hs, f.child_path("hot_split"));
    SHARDD_READ(s.hot.enabled, hf.opt_bool("enabled", s.hot.enabled));
    SHARDD_READ(s.hot.share, hf.opt_double("share", s.hot.share, 0.05, 1.0));
    SHARDD_READ(s.hot.min_rate, hf.opt_double("min_rate", s.hot.min_rate, 0, 1e12));
    SHARDD_READ(s.hot.after_ms, hf.opt_u64("after_ms", s.hot.after_ms, 0, 7 * 86'400'000ull));
    if (auto done = hf.finish(); !done) return done.error();
  }
  return f.finish();
}

}  // namespace shardd

// --- what-if ----------------------------------------------------------------------------------

namespace shardd {

namespace {

constexpr std::size_t max_simulated = 1000;  // entries per list of a what-if

result<const json::array*> short_array(json_fields& f, std::string_view key) {
  auto a = f.opt_array(key);
  if (!a) return a.error();
  if (*a && (**a).size() > max_simulated) return f.fail(key, "at most " + std::to_string(max_simulated) + " entries");
  return *a;
}

result<std::vector<std::string>> node_list(json_fields& f, std::string_view key) {
  auto a = short_array(f, key);
  if (!a) return a.error();
  std::vector<std::string> out;
  if (*a)
    for (const auto& v : **a) {
      if (!v.is_string() || v.get_string().empty() || v.get_string().size() > 256)
        return f.fail(key, "must be a list of node ids");
      out.emplace_back(v.get_string());
    }
  return out;
}

}  // namespace

result<simulation> read_simulation(const json::object& o, const rebalance_settings& current) {
  json_fields f(o, "");
  simulation s;
  auto add = short_array(f, "add");
  if (!add) return add.error();
  if (*add)
    for (std::size_t i = 0; i < (**add).size(); ++i) {
      const auto& v = (**add)[i];
      const std::string path = "add[" + std::to_string(i) + "]";
      if (!v.is_object()) return make_error(errc::invalid_argument, path + ": expected an object {\"id\",\"weight\"}");
      json_fields nf(v.get_object(), path);
      simulation::added_node n;
      SHARDD_READ(n.id, nf.req_string("id"));
      if (n.id.empty() || n.id.size() > 256) return nf.fail("id", "must be 1 to 256 characters");
      SHARDD_READ(n.weight, nf.opt_u64("weight", 1, 0, 1000));
      SHARDD_READ(n.disk_total, nf.opt_u64("disk_total", 0));
      if (auto done = nf.finish(); !done) return done.error();
      s.add.push_back(std::move(n));
    }
  SHARDD_READ(s.remove, node_list(f, "remove"));
  SHARDD_READ(s.fail, node_list(f, "fail"));
  auto w = f.opt_object("weights");
  if (!w) return w.error();
  if (*w) {
    if ((**w).size() > max_simulated) return f.fail("weights", "at most " + std::to_string(max_simulated) + " nodes");
    json_fields wf(**w, f.child_path("weights"));
    for (const auto& [id, v] : **w) {
      auto weight = wf.opt_u64(id, 1, 0, 1000);
      if (!weight) return weight.error();
      s.weights[std::string(id)] = static_cast<std::uint32_t>(*weight);
    }
  }
  auto load = short_array(f, "load");
  if (!load) return load.error();
  if (*load)
    for (std::size_t i = 0; i < (**load).size(); ++i) {
      const auto& v = (**load)[i];
      const std::string path = "load[" + std::to_string(i) + "]";
      if (!v.is_object()) return make_error(errc::invalid_argument, path + ": expected an object {\"index\",\"shard\",\"factor\"}");
      json_fields lf(v.get_object(), path);
      simulation::load_change c;
      SHARDD_READ(c.index, lf.req_string("index"));
      if (lf.find("shard")) {
        std::uint32_t shard = 0;
        SHARDD_READ(shard, lf.opt_u64("shard", 0, 0, UINT32_MAX));
        c.shard = shard;
      }
      SHARDD_READ(c.factor, lf.opt_double("factor", 1, 0, 1e6));
      if (lf.find("reads_per_sec")) {
        double r = 0;
        SHARDD_READ(r, lf.opt_double("reads_per_sec", 0, 0, 1e12));
        c.reads_per_sec = r;
      }
      if (lf.find("writes_per_sec")) {
        double r = 0;
        SHARDD_READ(r, lf.opt_double("writes_per_sec", 0, 0, 1e12));
        c.writes_per_sec = r;
      }
      if (lf.find("bytes")) {
        std::uint64_t b = 0;
        SHARDD_READ(b, lf.opt_u64("bytes", 0, 0, std::uint64_t{1} << 60));
        c.bytes = b;
      }
      if (auto done = lf.finish(); !done) return done.error();
      s.load.push_back(std::move(c));
    }
  auto st = f.opt_object("settings");
  if (!st) return st.error();
  if (*st) {
    rebalance_settings next = current;
    json_fields sf(**st, f.child_path("settings"));
    if (auto ok = read_rebalance_settings(sf, next); !ok) return ok.error();
    s.settings = next;
  }
  if (auto done = f.finish(); !done) return done.error();
  if (s.add.empty() && s.remove.empty() && s.fail.empty() && s.weights.empty() && s.load.empty() && !s.settings)
    return make_error(errc::invalid_argument, "a simulation needs at least one of add, remove, fail, weights, load, settings");
  return s;
}

result<void> apply_simulation(const simulation& s, partition_map& map, rebalance_input& in) {
  auto member = [&](const std::string& id, const char* what) -> result<void> {
    const auto* n = map.find_node(id);
    if (!n || n->state == node_state::left)
      return make_error(errc::invalid_argument, std::string(what) + ": node '" + id + "' is not a member");
    return {};
  };
  for (const auto& a : s.add) {
    if (map.find_node(a.id)) return make_error(errc::invalid_argument, "add: node '" + a.id + "' exists already");
    map.nodes.emplace(a.id, node_entry{a.id, "", "", a.weight, node_state::up});  // a copy: no new version
    if (a.disk_total > 0) in.disks[a.id] = node_disk{0, a.disk_total, disk_level::ok};
  }
  for (const auto& [id, w] : s.weights) {
    if (auto r = member(id, "weights"); !r) return r.error();
    map.nodes.at(id).weight = w;
  }
  for (const auto& id : s.remove) {
    if (auto r = member(id, "remove"); !r) return r.error();
    map.nodes.at(id).state = node_state::draining;
  }
  for (const auto& id : s.fail) {
    if (auto r = member(id, "fail"); !r) return r.error();
    map.nodes.at(id).state = node_state::down;
    in.unreported.erase(id);
  }
  for (const auto& c : s.load) {
    const auto* ix = map.find_index(c.index);
    if (!ix) return make_error(errc::invalid_argument, "load: index '" + c.index + "' does not exist");
    if (c.shard && !ix->find_shard(*c.shard))
      return make_error(errc::invalid_argument, "load: index '" + c.index + "' has no shard " + std::to_string(*c.shard));
    for (const auto& sh : ix->shards) {
      if (c.shard && sh.id != *c.shard) continue;
      auto& mt = in.metrics[shard_key(ix->id, sh.id)];
      mt.reads_per_sec = c.reads_per_sec.value_or(mt.reads_per_sec * c.factor);
      mt.writes_per_sec = c.writes_per_sec.value_or(mt.writes_per_sec * c.factor);
      if (c.bytes) mt.bytes = *c.bytes;
    }
  }
  if (s.settings) in.settings = *s.settings;
  in.map = &map;
  in.continuing = false;
  return {};
}

void load_memory::apply(const partition_map& m, std::unordered_map<std::uint64_t, shard_metrics>& metrics,
                        const std::unordered_map<std::uint64_t, std::string>& reporter, std::int64_t now_ms) {
  auto settling = [now_ms](const entry& e) { return e.changed_ms && now_ms - *e.changed_ms < settle_ms; };
  auto raise = [](shard_metrics& mt, const shard_metrics& floor) {
    mt.reads_per_sec = std::max(mt.reads_per_sec, floor.reads_per_sec);
    mt.writes_per_sec = std::max(mt.writes_per_sec, floor.writes_per_sec);
  };
  std::unordered_map<std::uint64_t, entry> next;
  for (const auto& [name, ix] : m.indexes)
    for (const auto& sh : ix.shards) {
      const auto key = shard_key(ix.id, sh.id);
      auto old = entries_.find(key);
      const bool known = old != entries_.end();
      entry e = known ? std::move(old->second) : entry{};
      if (e.halved && !settling(e)) e.halved = false;
      if (e.halved) {
        metrics[key] = e.before;  // just split: the owner's report still covers the whole shard
      } else if (auto rep = metrics.find(key); rep != metrics.end()) {
        auto who = reporter.find(key);
        std::string from = who != reporter.end() ? who->second : std::string{};
        if (known && from != e.reporter) {
          // A new reporter: the previous one's load (raised by its own floor, if it was still
          // settling) is the floor while the new one settles.
          if (settling(e)) raise(e.last, e.before);
          e.before = e.last;
          e.changed_ms = now_ms;
        }
        e.last = rep->second;
        e.reporter = std::move(from);
        e.seen_ms = now_ms;
        if (settling(e)) raise(rep->second, e.before);
      } else if (known && now_ms - e.seen_ms < keep_ms) {
        auto filled = e.last;
        if (settling(e)) raise(filled, e.before);
        metrics.emplace(key, filled);
      } else {
        continue;  // unmeasured, and nothing remembered
      }
      next.emplace(key, std::move(e));
    }
  entries_ = std::move(next);
}

void load_memory::split(std::uint64_t from, std::uint64_t to, std::int64_t now_ms) {
  auto it = entries_.find(from);
  if (it == entries_.end()) return;
  entry& e = it->second;
  shard_metrics half = e.last;
  half.bytes /= 2;
  half.records /= 2;
  half.reads_per_sec /= 2;
  half.writes_per_sec /= 2;
  half.bytes_per_sec_trend /= 2;
  e.last = e.before = half;
  e.changed_ms = now_ms;
  e.halved = true;
  e.seen_ms = now_ms;
  entries_[to] = e;
}

}  // namespace shardd
