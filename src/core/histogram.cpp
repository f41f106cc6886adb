#include "shardd/histogram.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>

namespace shardd {

using L = histogram_layout;

std::size_t histogram_layout::index_of(std::uint64_t v) noexcept {
  if (v < sub_buckets) return static_cast<std::size_t>(v);
  const unsigned e = 63u - static_cast<unsigned>(std::countl_zero(v));
  if (e >= max_exponent) return buckets - 1;
  const std::uint64_t sub = (v >> (e - sub_bits)) & (sub_buckets - 1);
  return static_cast<std::size_t>((e - sub_bits + 1) * sub_buckets + sub);
}

std::uint64_t histogram_layout::lower_bound(std::size_t i) noexcept {
  if (i < sub_buckets) return i;
  if (i >= buckets - 1) return std::uint64_t{1} << max_exponent;
  const std::uint64_t group = i / sub_buckets, sub = i % sub_buckets;
  return (sub_buckets + sub) << (group - 1);
}

std::uint64_t histogram_layout::upper_bound(std::size_t i) noexcept {
  if (i >= buckets - 1) return std::numeric_limits<std::uint64_t>::max();
  return lower_bound(i + 1) - 1;
}

void histogram::record(std::uint64_t v, std::uint64_t n) noexcept {
  counts_[L::index_of(v)] += n;
  total_ += n;
  sum_ += v * n;
  max_ = std::max(max_, v);
}

void histogram::merge(const histogram& o) noexcept {
  for (std::size_t i = 0; i < counts_.size(); ++i) counts_[i] += o.counts_[i];
  total_ += o.total_;
  sum_ += o.sum_;
  max_ = std::max(max_, o.max_);
}

histogram histogram::since(const histogram& earlier) const {
  histogram out;
  for (std::size_t i = 0; i < counts_.size(); ++i) {
    out.counts_[i] = counts_[i] >= earlier.counts_[i] ? counts_[i] - earlier.counts_[i] : 0;
    out.total_ += out.counts_[i];
  }
  out.sum_ = sum_ >= earlier.sum_ ? sum_ - earlier.sum_ : 0;
  out.max_ = 0;
  for (std::size_t i = out.counts_.size(); i-- > 0;)
    if (out.counts_[i]) {
      out.max_ = std::min(max_, L::upper_bound(i));
      break;
    }
  return out;
}

void histogram::add_bucket(std::size_t i, std::uint64_t n) noexcept {
  if (i >= counts_.size() || n == 0) return;
  counts_[i] += n;
  total_ += n;
}

void histogram::add_totals(std::uint64_t sum, std::uint64_t max) noexcept {
  sum_ += sum;
  max_ = std::max(max_, max);
}

std::uint64_t histogram::quantile(double q) const noexcept {
  if (total_ == 0) return 0;
  q = std::clamp(q, 0.0, 1.0);
  // The rank of the value asked for, 1-based: the smallest rank whose share reaches q.
  const auto rank = std::max<std::uint64_t>(1, static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(total_))));
  std::uint64_t seen = 0;
  for (std::size_t i = 0; i < counts_.size(); ++i) {
    seen += counts_[i];
    if (seen >= rank) return std::min(L::upper_bound(i), max_);
  }
  return max_;
}

std::uint64_t histogram::count_at_most(std::uint64_t bound) const noexcept {
  std::uint64_t n = 0;
  for (std::size_t i = 0; i < counts_.size() && L::upper_bound(i) <= bound; ++i) n += counts_[i];
  return n;
}

void atomic_histogram::record(std::uint64_t v) noexcept {
  counts_[L::index_of(v)].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(v, std::memory_order_relaxed);
  auto m = max_.load(std::memory_order_relaxed);
  while (v > m && !max_.compare_exchange_weak(m, v, std::memory_order_relaxed)) {
  }
}

histogram atomic_histogram::snapshot() const {
  histogram out;
  for (std::size_t i = 0; i < counts_.size(); ++i) {
    out.counts_[i] = counts_[i].load(std::memory_order_relaxed);
    out.total_ += out.counts_[i];
  }
  out.sum_ = sum_.load(std::memory_order_relaxed);
  out.max_ = max_.load(std::memory_order_relaxed);
  return out;
}

}  // namespace shardd
