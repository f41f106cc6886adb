#include "shardd/throttle.hpp"

#include <algorithm>

namespace shardd {

std::string_view to_string(migration_priority p) noexcept {
  switch (p) {
    case migration_priority::high: return "high";
    case migration_priority::normal: return "normal";
    case migration_priority::low: return "low";
  }
  return "normal";
}

std::optional<migration_priority> parse_priority(std::string_view s) noexcept {
  for (auto p : {migration_priority::high, migration_priority::normal, migration_priority::low})
    if (to_string(p) == s) return p;
  return std::nullopt;
}

std::uint32_t weight_of(migration_priority p) noexcept {
  switch (p) {
    case migration_priority::high: return 4;
    case migration_priority::normal: return 2;
    case migration_priority::low: return 1;
  }
  return 2;
}

void token_bucket::refill(clock::time_point now) {
  if (last_ && rate_ > 0) {
    const double secs = std::chrono::duration<double>(now - *last_).count();
    if (secs > 0) tokens_ = std::min(static_cast<double>(burst_), tokens_ + secs * static_cast<double>(rate_));
  }
  if (!last_ || now > *last_) last_ = now;
}

void token_bucket::set_rate(std::uint64_t rate, std::uint64_t burst, clock::time_point now) {
  refill(now);
  rate_ = rate;
  burst_ = burst;
  tokens_ = std::min(tokens_, static_cast<double>(burst_));
}

std::chrono::nanoseconds token_bucket::take(std::uint64_t bytes, clock::time_point now) {
  if (rate_ == 0) return std::chrono::nanoseconds(0);
  refill(now);
  tokens_ -= static_cast<double>(bytes);
  if (tokens_ >= 0) return std::chrono::nanoseconds(0);
  return std::chrono::nanoseconds(static_cast<std::int64_t>(-tokens_ / static_cast<double>(rate_) * 1e9));
}

void priority_shares::set_node_rate(std::uint64_t rate, token_bucket::clock::time_point now) {
  node_rate_ = rate;
  rebalance(now);
}

void priority_shares::activate(migration_priority p, token_bucket::clock::time_point now) {
  ++active_[p];
  rebalance(now);
}

void priority_shares::deactivate(migration_priority p, token_bucket::clock::time_point now) {
  auto it = active_.find(p);
  if (it == active_.end()) return;
  if (--it->second == 0) active_.erase(it);
  rebalance(now);
}

std::uint64_t priority_shares::rate_of(migration_priority p) const {
  if (node_rate_ == 0) return 0;
  std::uint64_t total = 0;
  for (const auto& [cls, n] : active_) total += weight_of(cls);
  if (total == 0 || !active_.contains(p)) return node_rate_;
  return node_rate_ * weight_of(p) / total;
}

void priority_shares::rebalance(token_bucket::clock::time_point now) {
  for (auto p : {migration_priority::high, migration_priority::normal, migration_priority::low}) {
    const auto rate = rate_of(p);
    // A quarter of a second of burst keeps sends smooth without letting a class overshoot.
    buckets_[p].set_rate(rate, std::max<std::uint64_t>(rate / 4, 64 * 1024), now);
  }
}

std::chrono::nanoseconds priority_shares::take(migration_priority p, std::uint64_t bytes, token_bucket::clock::time_point now) {
  if (node_rate_ == 0) return std::chrono::nanoseconds(0);
  return buckets_[p].take(bytes, now);
}

std::uint64_t adaptive_rate::update(std::optional<std::uint64_t> p99_us, std::uint64_t bound_us, std::uint64_t floor,
                                    std::uint64_t ceiling, std::uint64_t observed) noexcept {
  floor = std::max<std::uint64_t>(floor, 1);
  if (p99_us && *p99_us > bound_us) {
    if (limit_ == 0) before_ = observed;
    std::uint64_t base = limit_ ? limit_ : observed ? observed : ceiling ? ceiling : 2 * floor;
    if (ceiling) base = std::min(base, ceiling);
    limit_ = std::max(floor, base / 2);
    return limit_;
  }
  const bool calm = !p99_us || *p99_us * 5 < bound_us * 4;  // under 80% of the bound
  if (calm && limit_) {
    limit_ += std::max(limit_ / 4, floor / 4);
    const std::uint64_t lift_at = ceiling ? ceiling : before_;
    if (limit_ >= lift_at) reset();
  }
  return limit_;
}

std::string_view to_string(rate_limit l) noexcept {
  switch (l) {
    case rate_limit::none: return "none";
    case rate_limit::move_cap: return "move_cap";
    case rate_limit::node_cap: return "node_cap";
    case rate_limit::adaptive: return "adaptive";
  }
  return "none";
}

rate_limit binding_limit(std::uint64_t move_cap, std::uint64_t node_share, std::uint64_t adaptive,
                         std::uint32_t moves) noexcept {
  rate_limit out = rate_limit::none;
  std::uint64_t lowest = UINT64_MAX;
  auto consider = [&](std::uint64_t rate, rate_limit which) {
    if (rate > 0 && rate < lowest) lowest = rate, out = which;
  };
  consider(move_cap, rate_limit::move_cap);
  consider(node_share, rate_limit::node_cap);
  consider(adaptive ? std::max<std::uint64_t>(adaptive / std::max<std::uint32_t>(moves, 1), 1) : 0, rate_limit::adaptive);
  return out;
}

}  // namespace shardd
