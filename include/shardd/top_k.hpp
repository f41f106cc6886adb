#pragma once
// Hot keys: the Space-Saving sketch (Metwally, Agrawal, El Abbadi 2005). Pure; not thread-safe
// (the monitor feeds it sampled keys on its own strand).

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace shardd {

/// Keeps at most `capacity` counters. Any key seen more than n / capacity times among n is
/// certain to be held, and each held key's count overestimates its true count by at most its
/// `error` (the count of the key it replaced). `offer` is O(log capacity): the counters form a
/// min-heap by count, indexed by key.
class space_saving {
 public:
  struct entry {
    std::string key;
    std::uint64_t count = 0;  ///< an upper bound of the key's true count
    std::uint64_t error = 0;  ///< count - error is a lower bound
  };

  explicit space_saving(std::size_t capacity);

  void offer(std::string_view key, std::uint64_t n = 1);
  /// The `k` largest counters, largest first (ties by key).
  [[nodiscard]] std::vector<entry> top(std::size_t k) const;
  std::uint64_t total() const noexcept { return total_; }
  std::size_t size() const noexcept { return heap_.size(); }

 private:
  void sift_down(std::size_t i);
  void swap_at(std::size_t a, std::size_t b);

  std::size_t capacity_;
  std::vector<entry> heap_;                             ///< min-heap by count
  std::unordered_map<std::string, std::size_t> where_;  ///< key -> position in heap_
  std::uint64_t total_ = 0;
};

}  // namespace shardd
