#pragma once
// Anomaly detection on one series (a shard's write rate, a node's p99 latency, ...), sample by
// sample. Pure: samples come in, decisions go out.

#include <cstdint>

namespace shardd {

/// Settings of an anomaly detector. The defaults give no anomaly on stationary noise (Gaussian
/// or not too heavy-tailed) and catch a step of several standard deviations within `k` samples.
struct anomaly_settings {
  double alpha = 0.05;      ///< EWMA weight of a new sample: the baseline remembers about 1/alpha samples
  double threshold = 5.0;   ///< |score| above this counts as over
  std::uint32_t k = 3;      ///< consecutive samples over the threshold open an anomaly; as many under close it
  std::uint32_t warmup = 20;  ///< samples before any score counts (the baseline forms)
  double min_sigma = 1.0;   ///< the deviation is never taken below this (an idle series is not anomalous at 1 req/s)
  double rel_sigma = 0.02;  ///< ... nor below this share of the mean (a steady series has some room)
};

/// A robust score of each sample against the series' own recent history: (x - mean) / sigma,
/// with mean and variance kept as exponentially weighted moving averages. While a possible
/// anomaly is being confirmed (over the threshold, not yet open), the baseline is frozen, so a
/// step is not absorbed before `k` samples have seen it; once open, the mean follows the series
/// again (the deviation stays as it was), so a lasting change becomes the new normal and the
/// anomaly closes once the mean is within the threshold of it: about
/// ln(threshold * sigma / step) / ln(1 - alpha) samples later.
class anomaly_detector {
 public:
  enum class change : std::uint8_t { none, opened, closed };
  struct step {
    double score = 0;  ///< signed: below zero the sample is under the baseline
    bool open = false;
    change changed = change::none;
  };

  explicit anomaly_detector(anomaly_settings s = {}) : s_(s) {}

  step add(double x) noexcept;

  bool open() const noexcept { return open_; }
  double mean() const noexcept { return mean_; }
  double sigma() const noexcept;
  std::uint64_t samples() const noexcept { return n_; }

 private:
  anomaly_settings s_;
  double mean_ = 0;
  double var_ = 0;
  std::uint64_t n_ = 0;
  std::uint32_t over_ = 0;   ///< consecutive samples over the threshold
  std::uint32_t under_ = 0;  ///< consecutive samples under it (while open)
  bool open_ = false;
};

}  // namespace shardd
