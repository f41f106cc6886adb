#pragma once
// Trends for the monitor's forecasts: a least-squares line through a window of samples, with
// its fit quality, and when it reaches a limit. Pure.

#include <cstddef>
#include <optional>
#include <span>
#include <vector>

namespace shardd {

struct trend_point {
  double t = 0;  ///< time, any unit (the monitor uses seconds)
  double y = 0;
};

/// y = intercept + slope * t, fitted by least squares.
struct trend {
  double slope = 0;
  double intercept = 0;
  double r2 = 0;   ///< coefficient of determination: 1 a perfect line, near 0 no linear trend
  std::size_t points = 0;

  double at(double t) const noexcept { return intercept + slope * t; }
  /// How long from `now` until the line rises to `limit`: zero when it is there already, empty
  /// when it does not rise.
  std::optional<double> time_to(double limit, double now) const noexcept;
};

/// The least-squares line through `pts`; empty with fewer than two points or when every t is
/// the same.
[[nodiscard]] std::optional<trend> fit_trend(std::span<const trend_point> pts) noexcept;

/// Which of the positions `first` .. `last` (inclusive) to fit a trend over: all of them, or
/// when there are more than `max_points`, every k-th counted back from `last` (always kept),
/// k the least stride that leaves at most `max_points`. Ascending. `max_points` ≥ 1.
[[nodiscard]] std::vector<std::size_t> spread_positions(std::size_t first, std::size_t last, std::size_t max_points);

}  // namespace shardd
