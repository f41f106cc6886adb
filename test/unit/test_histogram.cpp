#include "shardd/histogram.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <random>
#include <thread>
#include <vector>

using namespace shardd;
using L = histogram_layout;

TEST_CASE("every value falls in a bucket whose bounds hold it, and a bucket is at most 1/8 of its lower bound wide") {
  std::vector<std::uint64_t> values;
  for (std::uint64_t v = 0; v < 5000; ++v) values.push_back(v);
  for (unsigned e = 3; e < 64; ++e)
    for (std::int64_t d : {-1, 0, 1}) values.push_back((std::uint64_t{1} << e) + static_cast<std::uint64_t>(d));
  values.push_back(UINT64_MAX);
  std::mt19937_64 rng(7);
  for (int i = 0; i < 100000; ++i) values.push_back(rng() >> (rng() % 64));
  for (auto v : values) {
    const auto i = L::index_of(v);
    REQUIRE(i < L::buckets);
    INFO("value " << v << " bucket " << i);
    CHECK(L::lower_bound(i) <= v);
    CHECK(v <= L::upper_bound(i));
    if (i >= L::sub_buckets && i + 1 < L::buckets)
      CHECK(L::upper_bound(i) - L::lower_bound(i) + 1 <= std::max<std::uint64_t>(1, L::lower_bound(i) / L::sub_buckets));
  }
  // Buckets tile the values: each starts right after the one before.
  for (std::size_t i = 1; i < L::buckets; ++i) CHECK(L::lower_bound(i) == L::upper_bound(i - 1) + 1);
}

TEST_CASE("quantiles of a known distribution are within the bucket error of the exact ones") {
  histogram h;
  std::vector<std::uint64_t> all;
  std::mt19937_64 rng(3);
  std::lognormal_distribution<double> d(6.0, 1.2);  // latencies in us: a long tail
  for (int i = 0; i < 200000; ++i) {
    const auto v = static_cast<std::uint64_t>(d(rng));
    h.record(v);
    all.push_back(v);
  }
  std::sort(all.begin(), all.end());
  CHECK(h.count() == all.size());
  CHECK(h.max() == all.back());
  for (double q : {0.5, 0.9, 0.99, 0.999}) {
    const auto exact = all[static_cast<std::size_t>(std::ceil(q * static_cast<double>(all.size()))) - 1];
    const auto got = h.quantile(q);
    INFO("q " << q << " exact " << exact << " histogram " << got);
    CHECK(got >= exact);
    CHECK(static_cast<double>(got) <= static_cast<double>(exact) * 1.125 + 1);
  }
  CHECK(h.quantile(1.0) == all.back());
  CHECK(histogram().quantile(0.5) == 0);
}

TEST_CASE("histograms merge bucket by bucket, and a window is the difference of two snapshots") {
  histogram a, b;
  for (std::uint64_t v = 1; v <= 1000; ++v) a.record(v);
  for (std::uint64_t v = 5000; v <= 6000; ++v) b.record(v);
  histogram both = a;
  both.merge(b);
  CHECK(both.count() == 2001);
  CHECK(both.max() == 6000);
  CHECK(both.count_at_most(L::upper_bound(L::index_of(1000))) == 1000);
  const auto window = both.since(a);
  CHECK(window.count() == 1001);
  CHECK(window.quantile(0.0) >= 5000);
  CHECK(window.sum() == b.sum());
  CHECK(window.max() == 6000);
  // A window of small values does not report the series' lifetime maximum.
  histogram later = both;
  later.record(10);
  const auto small = later.since(both);
  CHECK(small.max() == 10);
  CHECK(small.quantile(1.0) == 10);
  // Rebuilt from its buckets, a histogram answers the same quantiles.
  histogram rebuilt;
  for (std::size_t i = 0; i < window.counts().size(); ++i) rebuilt.add_bucket(i, window.counts()[i]);
  rebuilt.add_totals(window.sum(), window.max());
  CHECK(rebuilt.count() == window.count());
  CHECK(rebuilt.quantile(0.99) == window.quantile(0.99));
  CHECK(rebuilt.max() == window.max());
  CHECK(a.since(a).count() == 0);
  CHECK(a.since(a).max() == 0);
}

TEST_CASE("an atomic histogram recorded from several threads at once loses no count") {
  atomic_histogram h;
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t)
    ts.emplace_back([&h, t] {
      for (std::uint64_t i = 0; i < 50000; ++i) h.record(i % 997 + static_cast<std::uint64_t>(t));
    });
  for (auto& t : ts) t.join();
  const auto s = h.snapshot();
  CHECK(s.count() == 200000);
  CHECK(s.max() == 996 + 3);
  std::uint64_t sum = 0;
  for (int t = 0; t < 4; ++t)
    for (std::uint64_t i = 0; i < 50000; ++i) sum += i % 997 + static_cast<std::uint64_t>(t);
  CHECK(s.sum() == sum);
}
