#include "storage/store.hpp"

#include "support/catch_result.hpp"
#include "support/temp_dir.hpp"

#include <future>
#include <thread>

using namespace shardd;
using namespace shardd::storage;

namespace {

// Two shards of index 1 split at "m", and one shard of index 2.
std::vector<shard_range> layout() {
  return {
      {1, 0, key_range{storage_key_range(1, ""), storage_key_range(1, "m")}},
      {1, 1, key_range{storage_key_range(1, "m"), index_upper_bound(1)}},
      {2, 0, key_range{index_prefix(2), index_upper_bound(2)}},
  };
}

std::unique_ptr<store> open_store(const std::string& path) {
  auto s = store::open(store_options{path});
  REQUIRE(s);
  return std::move(*s);
}

result<std::vector<op_status>> write(store& s, std::vector<write_op> ops) {
  std::promise<result<std::vector<op_status>>> p;
  auto f = p.get_future();
  s.submit(std::move(ops), [&p](result<std::vector<op_status>> r) { p.set_value(std::move(r)); });
  return f.get();
}

result<void> change(store& s, layout_change c) {
  std::promise<result<void>> p;
  auto f = p.get_future();
  s.submit(std::move(c), [&p](result<void> r) { p.set_value(std::move(r)); });
  return f.get();
}

write_op put(std::uint32_t index, std::string key, std::string value) {
  return write_op{op_kind::put, storage_key_range(index, key), std::move(value)};
}
write_op del(std::uint32_t index, std::string key) { return write_op{op_kind::del, storage_key_range(index, key), {}}; }

}  // namespace

TEST_CASE("writes report created, updated, deleted and not_found, and counts stay exact") {
  temp_dir dir;
  auto s = open_store(dir.path());
  REQUIRE(s->load_ranges(layout()));
  auto r = write(*s, {put(1, "a", "{}"), put(1, "a", "[1]"), put(1, "z", "1"), del(1, "q"), del(1, "z")});
  REQUIRE(r);
  CHECK(*r == std::vector<op_status>{op_status::created, op_status::updated, op_status::created,
                                     op_status::not_found, op_status::deleted});
  auto s0 = s->stats(1, 0);
  REQUIRE(s0);
  CHECK(s0->records == 1);
  CHECK(s0->bytes == storage_key_range(1, "a").size() + 3);
  CHECK(s->stats(1, 1)->records == 0);
  CHECK(s->stats(1, 1)->bytes == 0);
  auto got = s->get(storage_key_range(1, "a"));
  REQUIRE(got);
  CHECK(*got == std::optional<std::string>("[1]"));
  std::string v;
  CHECK(s->get_cached(storage_key_range(1, "a"), v) == store::read_status::found);
  CHECK(v == "[1]");
  CHECK(s->get_cached(storage_key_range(1, "zz"), v) == store::read_status::not_found);
}

TEST_CASE("a key in no known shard is refused and not written") {
  temp_dir dir;
  auto s = open_store(dir.path());
  REQUIRE(s->load_ranges(layout()));
  auto r = write(*s, {put(9, "a", "1"), put(2, "a", "1")});
  REQUIRE(r);
  CHECK((*r)[0] == op_status::no_shard);
  CHECK((*r)[1] == op_status::created);
  CHECK(*s->get(storage_key_range(9, "a")) == std::nullopt);
}

TEST_CASE("concurrent writers are group-committed with exact counts") {
  temp_dir dir;
  auto s = open_store(dir.path());
  REQUIRE(s->load_ranges(layout()));
  constexpr int threads = 8, per_thread = 500;
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t)
    ts.emplace_back([&, t] {
      for (int i = 0; i < per_thread; ++i) {
        // Every thread writes its own keys twice (create then update) and some shared keys.
        auto k = "k" + std::to_string(t) + "-" + std::to_string(i);
        REQUIRE(write(*s, {put(2, k, "1"), put(2, k, "22"), put(2, "shared" + std::to_string(i % 10), "x")}));
      }
    });
  for (auto& t : ts) t.join();
  CHECK(s->stats(2, 0)->records == threads * per_thread + 10);
  CHECK(s->commits() < static_cast<std::uint64_t>(threads * per_thread));  // groups formed
}

TEST_CASE("data and stats survive a reopen") {
  temp_dir dir;
  {
    auto s = open_store(dir.path());
    REQUIRE(s->load_ranges(layout()));
    REQUIRE(write(*s, {put(1, "b", "\"x\""), put(1, "n", "2"), put(1, "o", "3")}));
    s->close();
  }
  auto s = open_store(dir.path());
  REQUIRE(s->load_ranges(layout()));
  CHECK(s->stats(1, 0)->records == 1);
  CHECK(s->stats(1, 1)->records == 2);
  CHECK(*s->get(storage_key_range(1, "n")) == std::optional<std::string>("2"));
}

TEST_CASE("dropping an index deletes its data and stats and nothing else") {
  temp_dir dir;
  auto s = open_store(dir.path());
  REQUIRE(s->load_ranges(layout()));
  REQUIRE(write(*s, {put(1, "a", "1"), put(2, "a", "2")}));
  layout_change c;
  c.drop_indexes = {1};
  c.map_json = "{}";
  REQUIRE(change(*s, c));
  CHECK(*s->get(storage_key_range(1, "a")) == std::nullopt);
  CHECK(*s->get(storage_key_range(2, "a")) == std::optional<std::string>("2"));
  CHECK(!s->stats(1, 0));
  CHECK(s->stats(2, 0)->records == 1);
  CHECK(*s->get_meta(meta_partition_map) == std::optional<std::string>("{}"));
  auto r = write(*s, {put(1, "a", "1")});
  REQUIRE(r);
  CHECK((*r)[0] == op_status::no_shard);
}

TEST_CASE("a split divides the stats exactly at the split key") {
  temp_dir dir;
  auto s = open_store(dir.path());
  REQUIRE(s->load_ranges(layout()));
  REQUIRE(write(*s, {put(1, "n", "1"), put(1, "p", "22"), put(1, "t", "333"), put(1, "x", "4444")}));
  layout_change c;
  c.splits.push_back({1, 1, 7, storage_key_range(1, "s")});
  REQUIRE(change(*s, c));
  CHECK(s->stats(1, 1)->records == 2);
  CHECK(s->stats(1, 7)->records == 2);
  CHECK(s->stats(1, 7)->bytes == 2 * storage_key_range(1, "t").size() + 7);
  REQUIRE(write(*s, {put(1, "z", "1")}));
  CHECK(s->stats(1, 7)->records == 3);
  layout_change bad;
  bad.splits.push_back({1, 0, 8, storage_key_range(1, "q")});  // not inside shard 0
  CHECK(!change(*s, bad));
}

TEST_CASE("scans respect bounds, limits, filters and resume points") {
  temp_dir dir;
  auto s = open_store(dir.path());
  REQUIRE(s->load_ranges(layout()));
  std::vector<write_op> ops;
  for (char c = 'a'; c <= 'z'; ++c) ops.push_back(put(1, std::string(1, c), "1"));
  REQUIRE(write(*s, ops));
  key_range r{storage_key_range(1, "c"), storage_key_range(1, "h")};
  auto page = s->scan(r, std::nullopt, 3);
  REQUIRE(page);
  REQUIRE(page->records.size() == 3);
  CHECK(page->records[0].key == storage_key_range(1, "c"));
  REQUIRE(page->resume_after);
  auto rest = s->scan(r, page->resume_after, 10);
  REQUIRE(rest);
  REQUIRE(rest->records.size() == 2);
  CHECK(rest->records[0].key == storage_key_range(1, "f"));
  CHECK(!rest->resume_after);
  auto odd = s->scan(key_range{index_prefix(1), index_upper_bound(1)}, std::nullopt, 100,
                     [](std::string_view k) { return (k.back() - 'a') % 2 == 0; });
  REQUIRE(odd);
  CHECK(odd->records.size() == 13);
  auto bounded = s->scan(key_range{index_prefix(1), index_upper_bound(1)}, std::nullopt, 100,
                         [](std::string_view k) { return k.back() == 'z'; }, 5);
  REQUIRE(bounded);
  CHECK(bounded->records.empty());
  CHECK(bounded->resume_after == storage_key_range(1, "e"));
}

TEST_CASE("a closed store refuses new writes with an error instead of losing them") {
  temp_dir dir;
  auto s = open_store(dir.path());
  REQUIRE(s->load_ranges(layout()));
  s->close();
  std::promise<result<std::vector<op_status>>> p;
  s->submit({put(1, "a", "1")}, [&p](result<std::vector<op_status>> r) { p.set_value(std::move(r)); });
  auto r = p.get_future().get();
  REQUIRE(!r);
  CHECK(r.error().code == errc::unavailable);
}
