#include "shardd/forecast.hpp"

#include <catch2/catch.hpp>

#include <random>
#include <vector>

using namespace shardd;

TEST_CASE("a linear series is forecast within 1%, with a fit quality near 1") {
  // A shard that grows 2 MiB a minute, sampled every 5 s for an hour, at epoch-scale times.
  std::vector<trend_point> pts;
  const double t0 = 1.8e9;
  std::mt19937_64 rng(1);
  std::normal_distribution<double> noise(0.0, 1e5);
  for (int i = 0; i < 720; ++i) {
    const double t = t0 + 5.0 * i;
    pts.push_back({t, 1e9 + (2.0 * 1048576 / 60.0) * (t - t0) + noise(rng)});
  }
  auto tr = fit_trend(pts);
  REQUIRE(tr);
  CHECK(tr->points == 720);
  CHECK(tr->slope == Approx(2.0 * 1048576 / 60.0).epsilon(0.01));
  CHECK(tr->r2 > 0.99);
  // When does it pass 2 GiB? Exact answer from the true line.
  const double now = t0 + 3600;
  const double truth = (2.0 * 1073741824 - (1e9 + (2.0 * 1048576 / 60.0) * 3600)) / (2.0 * 1048576 / 60.0);
  auto eta = tr->time_to(2.0 * 1073741824, now);
  REQUIRE(eta);
  CHECK(*eta == Approx(truth).epsilon(0.01));
}

TEST_CASE("a series without a trend has a low fit quality and never reaches a limit above it") {
  std::vector<trend_point> pts;
  std::mt19937_64 rng(2);
  std::normal_distribution<double> noise(0.0, 10.0);
  for (int i = 0; i < 500; ++i) pts.push_back({static_cast<double>(i), 100.0 + noise(rng)});
  auto tr = fit_trend(pts);
  REQUIRE(tr);
  CHECK(tr->r2 < 0.05);
  // A falling line never rises to a limit; a line at the limit is there now.
  std::vector<trend_point> falling{{0, 10}, {1, 9}, {2, 8}};
  auto f = fit_trend(falling);
  REQUIRE(f);
  CHECK_FALSE(f->time_to(100, 2).has_value());
  CHECK(f->time_to(5, 2).value() == 0.0);
}

TEST_CASE("a long window is fitted over at most so many evenly spread points, the last always among them") {
  CHECK(spread_positions(3, 7, 10) == std::vector<std::size_t>{3, 4, 5, 6, 7});
  CHECK(spread_positions(0, 0, 1) == std::vector<std::size_t>{0});
  CHECK(spread_positions(5, 4, 10).empty());
  for (std::size_t n : {1u, 2u, 719u, 720u, 721u, 1440u, 1441u, 36000u}) {
    INFO(n);
    const auto p = spread_positions(100, 100 + n - 1, 720);
    REQUIRE_FALSE(p.empty());
    CHECK(p.size() <= 720);
    CHECK(p.size() >= std::min<std::size_t>(n, 360));  // the stride is the least that fits
    CHECK(p.back() == 100 + n - 1);
    CHECK(p.front() >= 100);
    for (std::size_t i = 1; i < p.size(); ++i) CHECK(p[i] - p[i - 1] == p[1] - p[0]);  // even
  }
  // A line fitted over the spread points is the line.
  std::vector<trend_point> line;
  for (int i = 0; i < 36000; ++i) line.push_back({i * 0.1, 5.0 + 2.0 * i * 0.1});
  std::vector<trend_point> some;
  for (auto i : spread_positions(0, line.size() - 1, 720)) some.push_back(line[i]);
  auto tr = fit_trend(some);
  REQUIRE(tr);
  CHECK(tr->slope == Approx(2.0).epsilon(1e-9));
  CHECK(tr->points <= 720);
}

TEST_CASE("too few points or one instant give no trend; a flat series fits exactly") {
  CHECK_FALSE(fit_trend(std::vector<trend_point>{}).has_value());
  CHECK_FALSE(fit_trend(std::vector<trend_point>{{1, 1}}).has_value());
  CHECK_FALSE(fit_trend(std::vector<trend_point>{{1, 1}, {1, 5}}).has_value());
  auto flat = fit_trend(std::vector<trend_point>{{0, 7}, {1, 7}, {2, 7}});
  REQUIRE(flat);
  CHECK(flat->slope == 0.0);
  CHECK(flat->r2 == 1.0);
  CHECK_FALSE(flat->time_to(8, 2).has_value());
}
