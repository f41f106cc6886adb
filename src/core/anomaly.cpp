#include "shardd/anomaly.hpp"

#include <algorithm>
#include <cmath>

namespace shardd {

double anomaly_detector::sigma() const noexcept {
  return std::max({std::sqrt(var_), s_.min_sigma, s_.rel_sigma * std::abs(mean_)});
}

anomaly_detector::step anomaly_detector::add(double x) noexcept {
  ++n_;
  step out;
  if (n_ == 1) {
    mean_ = x;
    var_ = 0;
    return out;
  }
  out.score = (x - mean_) / sigma();
  const bool over = n_ > s_.warmup && std::abs(out.score) > s_.threshold;
  const bool was_open = open_;
  if (!open_) {
    over_ = over ? over_ + 1 : 0;
    if (over_ >= s_.k) {
      open_ = true;
      over_ = under_ = 0;
      out.changed = change::opened;
    }
  } else {
    under_ = over ? 0 : under_ + 1;
    if (under_ >= s_.k) {
      open_ = false;
      over_ = under_ = 0;
      out.changed = change::closed;
    }
  }
  out.open = open_;
  // The baseline: frozen while a possible anomaly is being confirmed; otherwise an EWMA of
  // mean and variance whose weight starts as a plain average (1/n) until it reaches alpha.
  // While open only the mean follows: the spread stays the series' usual one, so the anomaly
  // lasts until the mean has caught up with the new level (the step itself would otherwise
  // inflate the variance and close it after k samples, however large the change).
  if (!(over && !was_open)) {
    const double a = std::max(s_.alpha, 1.0 / static_cast<double>(n_));
    const double diff = x - mean_;
    const double incr = a * diff;
    mean_ += incr;
    if (!was_open) var_ = (1 - a) * (var_ + diff * incr);
  }
  return out;
}

}  // namespace shardd
