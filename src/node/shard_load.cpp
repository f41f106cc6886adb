#include "node/shard_load.hpp"

#include <algorithm>

namespace shardd {

void hot_key_sampler::offer(std::string_view key) noexcept {
  std::unique_lock lock(mutex_, std::try_to_lock);
  if (!lock) return;
  try {
    current_.offer(key);
  } catch (...) {  // out of memory: a sample less
  }
}

void hot_key_sampler::rotate(std::chrono::steady_clock::time_point now) {
  std::lock_guard lock(mutex_);
  if (now - current_since_ < rotate_after) return;
  previous_ = std::move(current_);
  current_ = space_saving(capacity);
  previous_since_ = current_since_;
  current_since_ = now;
  have_previous_ = true;
}

hot_key_sampler::view hot_key_sampler::top(std::size_t k, std::chrono::steady_clock::time_point now) {
  // The two sketches merged: each held key's count is summed (an upper bound still; a key the
  // previous sketch had dropped counts from the current one only).
  space_saving merged(capacity * 2);
  view v;
  std::lock_guard lock(mutex_);
  for (const auto* sk : {&previous_, &current_}) {
    if (sk == &previous_ && !have_previous_) continue;
    for (auto& e : sk->top(capacity)) merged.offer(e.key, e.count);
    v.sampled += sk->total();
  }
  v.seconds = std::chrono::duration<double>(now - (have_previous_ ? previous_since_ : current_since_)).count();
  v.top = merged.top(k);
  return v;
}

shard_counters* load_table::find(std::uint32_t index_id, std::uint32_t shard_id) const noexcept {
  if (counting_ && !counting_->load(std::memory_order_relaxed)) return nullptr;
  const auto k = load_key(index_id, shard_id);
  auto it = std::lower_bound(sorted_.begin(), sorted_.end(), k, [](const auto& e, std::uint64_t v) { return e.first < v; });
  return it != sorted_.end() && it->first == k ? it->second : nullptr;
}

std::shared_ptr<const load_table> load_registry::table_for(const partition_map& m) {
  auto t = std::make_shared<load_table>();
  t->counting_ = &counting_;
  std::lock_guard lock(mutex_);
  std::map<std::uint64_t, std::shared_ptr<shard_counters>> next;
  for (const auto& [name, ix] : m.indexes)
    for (const auto& s : ix.shards) {
      if (s.owner != self_) continue;
      const auto k = load_key(ix.id, s.id);
      auto it = by_shard_.find(k);
      auto c = it != by_shard_.end() ? it->second : std::make_shared<shard_counters>(ix.id, s.id);
      next.emplace(k, std::move(c));
    }
  by_shard_ = std::move(next);
  t->sorted_.reserve(by_shard_.size());
  t->owned_.reserve(by_shard_.size());
  for (const auto& [k, c] : by_shard_) {  // ordered by key: the sorted vector needs no sort
    t->sorted_.emplace_back(k, c.get());
    t->owned_.push_back(c);
  }
  return t;
}

}  // namespace shardd
