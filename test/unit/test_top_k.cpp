#include "shardd/top_k.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <set>
#include <vector>

using namespace shardd;

TEST_CASE("the top ten keys of a Zipf stream are found, with counts that bound the truth") {
  // 100,000 distinct keys, Zipf exponent 1.1, 1,000,000 draws; 128 counters.
  const int keys = 100000;
  std::vector<double> cdf(keys);
  double acc = 0;
  for (int i = 0; i < keys; ++i) cdf[i] = acc += 1.0 / std::pow(i + 1, 1.1);
  std::mt19937_64 rng(42);
  std::uniform_real_distribution<double> u(0.0, acc);
  space_saving s(128);
  std::map<std::string, std::uint64_t> truth;
  for (int i = 0; i < 1000000; ++i) {
    const auto k = static_cast<int>(std::lower_bound(cdf.begin(), cdf.end(), u(rng)) - cdf.begin());
    const auto key = "user:" + std::to_string(k);
    s.offer(key);
    ++truth[key];
  }
  CHECK(s.total() == 1000000);
  CHECK(s.size() == 128);
  std::vector<std::pair<std::uint64_t, std::string>> exact;
  for (const auto& [k, c] : truth) exact.push_back({c, k});
  std::sort(exact.rbegin(), exact.rend());
  const auto top = s.top(10);
  REQUIRE(top.size() == 10);
  std::set<std::string> want, got;
  for (std::size_t i = 0; i < 10; ++i) {
    want.insert(exact[i].second);
    got.insert(top[i].key);
  }
  CHECK(got == want);  // the same ten keys (two of nearly equal counts may trade places)
  CHECK(top[0].key == exact[0].second);
  for (std::size_t i = 0; i < 10; ++i) {
    INFO("rank " << i << ": sketch " << top[i].key << " " << top[i].count << " (error " << top[i].error << "), exact "
                 << exact[i].second << " " << exact[i].first);
    const auto t = truth[top[i].key];
    CHECK(top[i].count >= t);
    CHECK(top[i].count - top[i].error <= t);
  }
}

TEST_CASE("with room for every key the counts are exact; a full sketch replaces its smallest counter") {
  space_saving s(3);
  for (int i = 0; i < 5; ++i) s.offer("a");
  for (int i = 0; i < 3; ++i) s.offer("b");
  s.offer("c");
  auto top = s.top(5);
  REQUIRE(top.size() == 3);
  CHECK(top[0].key == "a");
  CHECK(top[0].count == 5);
  CHECK(top[0].error == 0);
  CHECK(top[2].key == "c");
  // "d" takes over "c"'s counter: count 2, of which 1 may be error.
  s.offer("d");
  top = s.top(5);
  CHECK(top.size() == 3);
  const auto d = std::find_if(top.begin(), top.end(), [](const auto& e) { return e.key == "d"; });
  REQUIRE(d != top.end());
  CHECK(d->count == 2);
  CHECK(d->error == 1);
  CHECK(std::none_of(top.begin(), top.end(), [](const auto& e) { return e.key == "c"; }));
  // A weighted offer moves a key past the others.
  s.offer("b", 10);
  CHECK(s.top(1)[0].key == "b");
  CHECK(s.top(1)[0].count == 13);
}
