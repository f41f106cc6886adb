#include "shardd/anomaly.hpp"

#include <catch2/catch.hpp>

#include <random>

using namespace shardd;

namespace {

/// Feeds `n` samples from `gen`; returns how many anomalies opened.
template <class Gen>
int feed(anomaly_detector& d, int n, Gen&& gen) {
  int opened = 0;
  for (int i = 0; i < n; ++i)
    if (d.add(gen()).changed == anomaly_detector::change::opened) ++opened;
  return opened;
}

}  // namespace

TEST_CASE("stationary noise opens no anomaly over 100,000 samples at the default settings") {
  std::mt19937_64 rng(11);
  SECTION("Gaussian around 100 req/s") {
    anomaly_detector d;
    std::normal_distribution<double> g(100.0, 10.0);
    CHECK(feed(d, 100000, [&] { return g(rng); }) == 0);
    CHECK(d.mean() == Approx(100.0).margin(5.0));
  }
  SECTION("Poisson counts of a quiet shard") {
    anomaly_detector d;
    std::poisson_distribution<int> p(4.0);
    CHECK(feed(d, 100000, [&] { return static_cast<double>(p(rng)); }) == 0);
  }
  SECTION("an idle series") {
    anomaly_detector d;
    CHECK(feed(d, 100000, [] { return 0.0; }) == 0);
  }
}

TEST_CASE("a step change opens an anomaly within k samples, and the new level closes it after k under") {
  std::mt19937_64 rng(5);
  std::normal_distribution<double> g(0.0, 5.0);
  anomaly_settings s;
  anomaly_detector d(s);
  REQUIRE(feed(d, 500, [&] { return 100.0 + g(rng); }) == 0);
  // The write rate jumps from 100 to 300.
  int opened_at = -1;
  for (int i = 1; i <= 10 && opened_at < 0; ++i) {
    const auto st = d.add(300.0 + g(rng));
    CHECK(st.score > s.threshold);
    if (st.changed == anomaly_detector::change::opened) opened_at = i;
  }
  CHECK(opened_at == static_cast<int>(s.k));
  CHECK(d.open());
  // It stays at 300: the baseline follows once the anomaly is open, and it closes.
  int closed_at = -1;
  for (int i = 1; i <= 500 && closed_at < 0; ++i)
    if (d.add(300.0 + g(rng)).changed == anomaly_detector::change::closed) closed_at = i;
  CHECK(closed_at > 0);
  // ... not at once: it stays open while the mean catches up (a step of 40 sigma: about
  // ln(5/40) / ln(0.95) = 41 samples), so a sustained change is visible for a while.
  CHECK(closed_at > 20);
  CHECK(closed_at < 100);
  CHECK_FALSE(d.open());
}

TEST_CASE("a drop is an anomaly too, and a single spike is not") {
  std::mt19937_64 rng(9);
  std::normal_distribution<double> g(0.0, 2.0);
  anomaly_detector d;
  feed(d, 300, [&] { return 50.0 + g(rng); });
  // One sample far off, then back: never k in a row.
  CHECK(d.add(500.0).changed == anomaly_detector::change::none);
  CHECK(feed(d, 50, [&] { return 50.0 + g(rng); }) == 0);
  CHECK_FALSE(d.open());
  // The rate falls to zero (a shard that stopped getting traffic).
  CHECK(feed(d, 5, [] { return 0.0; }) == 1);
  CHECK(d.open());
}

TEST_CASE("nothing counts during the warm-up") {
  anomaly_detector d;
  int opened = 0;
  for (int i = 0; i < 20; ++i)
    if (d.add(i % 2 ? 1000.0 : 0.0).changed == anomaly_detector::change::opened) ++opened;
  CHECK(opened == 0);
}
