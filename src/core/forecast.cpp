#include "shardd/forecast.hpp"

#include <cmath>

namespace shardd {

std::optional<trend> fit_trend(std::span<const trend_point> pts) noexcept {
  if (pts.size() < 2) return std::nullopt;
  // Centred sums, for precision with large t (seconds since the epoch).
  const double n = static_cast<double>(pts.size());
  double mt = 0, my = 0;
  for (const auto& p : pts) {
    mt += p.t;
    my += p.y;
  }
  mt /= n;
  my /= n;
  double stt = 0, sty = 0, syy = 0;
  for (const auto& p : pts) {
    const double dt = p.t - mt, dy = p.y - my;
    stt += dt * dt;
    sty += dt * dy;
    syy += dy * dy;
  }
  if (stt == 0) return std::nullopt;
  trend out;
  out.points = pts.size();
  out.slope = sty / stt;
  out.intercept = my - out.slope * mt;
  // R^2 = explained / total variation; a flat series is fitted exactly by a flat line.
  out.r2 = syy == 0 ? 1.0 : (sty * sty) / (stt * syy);
  return out;
}

std::optional<double> trend::time_to(double limit, double now) const noexcept {
  const double y = at(now);
  if (y >= limit) return 0.0;
  if (!(slope > 0)) return std::nullopt;
  return (limit - y) / slope;
}

std::vector<std::size_t> spread_positions(std::size_t first, std::size_t last, std::size_t max_points) {
  std::vector<std::size_t> out;
  if (last < first || max_points == 0) return out;
  const std::size_t n = last - first + 1;
  const std::size_t stride = (n + max_points - 1) / max_points;
  out.reserve(n / stride + 1);
  for (std::size_t i = last + stride; i >= first + stride; i -= stride) out.push_back(i - stride);
  return {out.rbegin(), out.rend()};
}

}  // namespace shardd
