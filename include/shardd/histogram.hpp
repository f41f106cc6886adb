#pragma once
// Log-linear latency histograms for the monitor: a fixed bucket layout (each power of two cut
// into equal sub-buckets), so histograms of every shard and node add up bucket by bucket and
// any quantile is read with a bounded relative error. Pure: values come in, counts go out.

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace shardd {

/// The bucket layout shared by every histogram. Values (microseconds, bytes: any unit) below
/// `sub_buckets` each have a bucket of their own; above, every power of two [2^e, 2^(e+1)) is
/// cut into `sub_buckets` equal parts, so a bucket's width is at most 1/`sub_buckets` of its
/// lower bound (12.5 %). Values from 2^`max_exponent` up share the last bucket.
struct histogram_layout {
  static constexpr unsigned sub_bits = 3;
  static constexpr std::uint64_t sub_buckets = 1u << sub_bits;  // 8
  static constexpr unsigned max_exponent = 40;                  // 2^40 us: 12.7 days
  static constexpr std::size_t buckets = (max_exponent - sub_bits + 1) * sub_buckets + 1;

  /// The bucket that counts `v`.
  static std::size_t index_of(std::uint64_t v) noexcept;
  /// The smallest value bucket `i` counts.
  static std::uint64_t lower_bound(std::size_t i) noexcept;
  /// The largest value bucket `i` counts (UINT64_MAX for the last).
  static std::uint64_t upper_bound(std::size_t i) noexcept;
};

/// A histogram's counts at one moment: mergeable, subtractable (a window is the difference of
/// two cumulative snapshots), and read by quantile.
class histogram {
 public:
  histogram() : counts_(histogram_layout::buckets, 0) {}

  void record(std::uint64_t v, std::uint64_t n = 1) noexcept;
  /// Adds `o`'s counts (the maximum is the larger of the two).
  void merge(const histogram& o) noexcept;
  /// This minus an earlier snapshot of the same cumulative series (counts never go below 0;
  /// the maximum is the upper bound of the window's highest bucket, never above this one's).
  [[nodiscard]] histogram since(const histogram& earlier) const;

  /// Rebuilding a stored histogram: `n` values in bucket `i`, then the sum and maximum of all.
  void add_bucket(std::size_t i, std::uint64_t n) noexcept;
  void add_totals(std::uint64_t sum, std::uint64_t max) noexcept;

  std::uint64_t count() const noexcept { return total_; }
  std::uint64_t max() const noexcept { return max_; }
  std::uint64_t sum() const noexcept { return sum_; }
  /// The value at quantile q (0..1): the upper bound of the bucket that holds it, never above
  /// the largest value recorded; 0 when empty.
  std::uint64_t quantile(double q) const noexcept;
  /// Values at most `bound` (for Prometheus `_bucket{le=...}`): exact when `bound` is a bucket's
  /// upper bound, else counted up to the last bucket that ends at or below it.
  std::uint64_t count_at_most(std::uint64_t bound) const noexcept;
  const std::vector<std::uint64_t>& counts() const noexcept { return counts_; }

  friend class atomic_histogram;

 private:
  std::vector<std::uint64_t> counts_;
  std::uint64_t total_ = 0;
  std::uint64_t sum_ = 0;
  std::uint64_t max_ = 0;
};

/// The request path's histogram: `record` is a few relaxed atomic adds (no lock, no
/// allocation), safe from any thread; `snapshot` copies the counts for the monitor.
class atomic_histogram {
 public:
  atomic_histogram() = default;
  atomic_histogram(const atomic_histogram&) = delete;
  atomic_histogram& operator=(const atomic_histogram&) = delete;

  void record(std::uint64_t v) noexcept;
  [[nodiscard]] histogram snapshot() const;

 private:
  std::array<std::atomic<std::uint64_t>, histogram_layout::buckets> counts_{};
  std::atomic<std::uint64_t> sum_{0};
  std::atomic<std::uint64_t> max_{0};
};

}  // namespace shardd
