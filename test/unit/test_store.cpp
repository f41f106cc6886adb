#include "storage/store.hpp"

#include "support/catch_result.hpp"
#include "support/temp_dir.hpp"

#include <rocksdb/db.h>

#include <filesystem>
#include <fstream>
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

result<void> apply_change(store& s, layout_change c) {
  std::promise<result<void>> p;
  auto f = p.get_future();
  s.submit(std::move(c), [&p](result<void> r) { p.set_value(std::move(r)); });
  return f.get();
}

write_op put(std::uint32_t index, std::string key, std::string value) {
  return write_op{op_kind::put, storage_key_range(index, key), std::move(value)};
}
write_op del(std::uint32_t index, std::string key) { return write_op{op_kind::del, storage_key_range(index, key), {}}; }

/// The store's RocksDB opened directly (the store closed): its records and meta families.
struct raw_db {
  rocksdb::DB* db = nullptr;
  std::vector<rocksdb::ColumnFamilyHandle*> handles;  ///< records, meta
  raw_db(const std::string& path, bool read_only) {
    std::vector<rocksdb::ColumnFamilyDescriptor> families = {{rocksdb::kDefaultColumnFamilyName, {}}, {"meta", {}}};
    const rocksdb::DBOptions o;
    const auto st = read_only ? rocksdb::DB::OpenForReadOnly(o, path, families, &handles, &db)
                              : rocksdb::DB::Open(o, path, families, &handles, &db);
    REQUIRE(st.ok());
  }
  ~raw_db() {
    for (auto* h : handles) (void)db->DestroyColumnFamilyHandle(h);
    delete db;
  }
  raw_db(const raw_db&) = delete;
  raw_db& operator=(const raw_db&) = delete;
};

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
  REQUIRE(apply_change(*s, c));
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
  REQUIRE(apply_change(*s, c));
  CHECK(s->stats(1, 1)->records == 2);
  CHECK(s->stats(1, 7)->records == 2);
  CHECK(s->stats(1, 7)->bytes == 2 * storage_key_range(1, "t").size() + 7);
  REQUIRE(write(*s, {put(1, "z", "1")}));
  CHECK(s->stats(1, 7)->records == 3);
  layout_change bad;
  bad.splits.push_back({1, 0, 8, storage_key_range(1, "q")});  // not inside shard 0
  CHECK(!apply_change(*s, bad));
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

TEST_CASE("a snapshot reads the range as it was, page by page") {
  temp_dir dir;
  auto s = open_store(dir.path());
  REQUIRE(s->load_ranges(layout()));
  std::vector<write_op> ops;
  for (int i = 0; i < 50; ++i) ops.push_back(put(2, "k" + std::to_string(100 + i), std::string(20, 'a')));
  REQUIRE(write(*s, ops));
  auto snap = s->take_snapshot();
  REQUIRE(snap);
  REQUIRE(write(*s, {put(2, "k200", "new"), del(2, "k100")}));  // after the snapshot
  key_range all{index_prefix(2), index_upper_bound(2)};
  std::vector<std::string> seen;
  std::optional<std::string> after;
  auto collect = [&](std::string_view k, std::string_view) { seen.emplace_back(k); };
  int pages = 0;
  for (; pages < 20; ++pages) {
    auto r = s->scan_snapshot_visit(*snap, all, after, 7, 1 << 20, collect);
    REQUIRE(r);
    CHECK(r->records <= 7);
    if (r->records > 0) CHECK(r->last_key == seen.back());
    if (!r->more) break;
    after = r->last_key;
  }
  CHECK(pages == 7);  // 50 records, 7 a page: the eighth page is the last
  CHECK(seen.size() == 50);
  CHECK(std::is_sorted(seen.begin(), seen.end()));
  CHECK(std::adjacent_find(seen.begin(), seen.end()) == seen.end());
  CHECK(seen.front() == storage_key_range(2, "k100"));  // deleted later, still in the snapshot
  std::uint64_t counted = 0;
  auto by_bytes = s->scan_snapshot_visit(*snap, all, std::nullopt, 1000, 100,
                                         [&](std::string_view k, std::string_view v) { counted += k.size() + v.size(); });
  REQUIRE(by_bytes);
  CHECK(by_bytes->records < 10);  // the byte budget ends the page
  CHECK(by_bytes->more);
  CHECK(by_bytes->bytes == counted);
  CHECK(snap->seq < s->latest_sequence());
}

TEST_CASE("range digests match the records, in a snapshot or now") {
  temp_dir dir;
  auto s = open_store(dir.path());
  REQUIRE(s->load_ranges(layout()));
  REQUIRE(write(*s, {put(2, "a", "1"), put(2, "b", "2"), put(1, "z", "9")}));
  auto snap = s->take_snapshot();
  REQUIRE(snap);
  REQUIRE(write(*s, {put(2, "c", "3")}));
  key_range r2{index_prefix(2), index_upper_bound(2)};
  range_digest want;
  want.add(storage_key_range(2, "a"), "1");
  want.add(storage_key_range(2, "b"), "2");
  auto then = s->digest(r2, &*snap);
  REQUIRE(then);
  CHECK(*then == want);
  want.add(storage_key_range(2, "c"), "3");
  auto now = s->digest(r2);
  REQUIRE(now);
  CHECK(*now == want);
}

TEST_CASE("the write-ahead log gives back every write to a range after a sequence number, in order") {
  temp_dir dir;
  auto s = open_store(dir.path());
  REQUIRE(s->load_ranges(layout()));
  REQUIRE(write(*s, {put(2, "before", "0")}));
  const auto start = s->latest_sequence();
  REQUIRE(write(*s, {put(2, "a", "1"), put(1, "other-index", "x")}));
  REQUIRE(write(*s, {put(2, "a", "2"), del(2, "before")}));
  REQUIRE(write(*s, {put(1, "n", "y")}));
  const auto mid = s->latest_sequence();
  REQUIRE(write(*s, {put(2, "b", "3")}));
  key_range r2{index_prefix(2), index_upper_bound(2)};
  auto page = s->changes_since(start, r2, 1 << 20);
  REQUIRE(page);
  REQUIRE(page->changes.size() == 4);
  CHECK(page->changes[0].key == storage_key_range(2, "a"));
  CHECK(page->changes[0].value == "1");
  CHECK(page->changes[1].value == "2");
  CHECK(page->changes[2].deleted);
  CHECK(page->changes[2].key == storage_key_range(2, "before"));
  CHECK(page->changes[3].value == "3");
  for (std::size_t i = 1; i < page->changes.size(); ++i) CHECK(page->changes[i].seq > page->changes[i - 1].seq);
  CHECK(page->last_seq == s->latest_sequence());
  auto until = s->changes_since(start, r2, 1 << 20, mid);
  REQUIRE(until);
  CHECK(until->changes.size() == 3);
  CHECK(until->last_seq >= mid);
  auto none = s->changes_since(s->latest_sequence(), r2, 1 << 20);
  REQUIRE(none);
  CHECK(none->changes.empty());
  // Small pages: the caller continues from last_seq and sees each change once.
  std::size_t total = 0;
  std::uint64_t at = start;
  for (int i = 0; i < 10 && at < s->latest_sequence(); ++i) {
    auto p = s->changes_since(at, r2, 1);
    REQUIRE(p);
    total += p->changes.size();
    at = p->last_seq;
  }
  CHECK(total == 4);
}

TEST_CASE("the write-ahead log is read across the sequence numbers an ingest took, and no other gap") {
  temp_dir dir;
  auto s = open_store(dir.path());
  REQUIRE(s->load_ranges(layout()));
  key_range r1{index_prefix(1), index_upper_bound(1)};
  REQUIRE(write(*s, {put(2, "k1", "old")}));  // in the memtable: an ingest over it takes a sequence number
  const auto start = s->latest_sequence();
  REQUIRE(write(*s, {put(1, "a", "1")}));
  const std::string k1 = storage_key_range(2, "k1"), k2 = storage_key_range(2, "k2");
  std::vector<std::pair<std::string_view, std::string_view>> file{{k1, "new"}, {k2, "x"}};
  const auto before = s->latest_sequence();
  REQUIRE(s->ingest(file));
  REQUIRE(s->latest_sequence() > before);  // the gap the log does not hold
  REQUIRE(s->ingest(file));                // two in a row
  REQUIRE(write(*s, {put(1, "b", "2")}));
  REQUIRE(write(*s, {put(1, "c", "3")}));
  auto page = s->changes_since(start, r1, 1 << 20);
  INFO((page ? std::string() : page.error().detail));
  REQUIRE(page);
  REQUIRE(page->changes.size() == 3);
  CHECK(page->changes[1].value == "2");
  CHECK(page->changes[2].value == "3");
  CHECK(page->last_seq == s->latest_sequence());
  // From inside the gap, and in pages of one change.
  auto from_gap = s->changes_since(before + 1, r1, 1 << 20);
  REQUIRE(from_gap);
  CHECK(from_gap->changes.size() == 2);
  std::size_t total = 0;
  for (std::uint64_t at = start; at < s->latest_sequence();) {
    auto p = s->changes_since(at, r1, 1);
    REQUIRE(p);
    REQUIRE(p->last_seq > at);
    total += p->changes.size();
    at = p->last_seq;
  }
  CHECK(total == 3);
  // A log that ends in an ingest's gap is read to its end.
  REQUIRE(s->ingest(file));
  auto tail = s->changes_since(start, r1, 1 << 20);
  REQUIRE(tail);
  CHECK(tail->changes.size() == 3);
  CHECK(tail->last_seq == s->latest_sequence());
}

TEST_CASE("meta ops are written atomically with the records of the same request") {
  temp_dir dir;
  auto s = open_store(dir.path());
  REQUIRE(s->load_ranges(layout()));
  auto r = write(*s, {put(2, "a", "1"), write_op{op_kind::meta_put, "import/m1", "cursor-a"}});
  REQUIRE(r);
  CHECK((*r)[1] == op_status::created);
  CHECK(*s->get_meta("import/m1") == std::optional<std::string>("cursor-a"));
  CHECK(s->stats(2, 0)->records == 1);  // meta ops are not records
  REQUIRE(write(*s, {write_op{op_kind::meta_del, "import/m1", {}}}));
  CHECK(*s->get_meta("import/m1") == std::nullopt);
  auto listed = s->scan_meta("stats/");  // stats exist for the shards written to
  REQUIRE(listed);
  REQUIRE(listed->size() == 1);
  CHECK(listed->front().first == "stats/" + index_prefix(2) + std::string(4, '\0'));
}

TEST_CASE("a fence refuses later writes to its range only, until lifted") {
  temp_dir dir;
  auto s = open_store(dir.path());
  REQUIRE(s->load_ranges(layout()));
  key_range upper{storage_key_range(1, "m"), index_upper_bound(1)};
  layout_change fence;
  fence.fence.push_back(upper);
  REQUIRE(apply_change(*s, fence));
  auto r = write(*s, {put(1, "x", "1"), put(1, "a", "1"), put(2, "x", "1")});
  REQUIRE(r);
  CHECK(*r == std::vector<op_status>{op_status::fenced, op_status::created, op_status::created});
  CHECK(*s->get(storage_key_range(1, "x")) == std::nullopt);
  layout_change lift;
  lift.unfence.push_back(upper);
  REQUIRE(apply_change(*s, lift));
  CHECK((*write(*s, {put(1, "x", "1")}))[0] == op_status::created);
}

TEST_CASE("removing a shard keeps its data; dropping a range deletes it") {
  temp_dir dir;
  auto s = open_store(dir.path());
  REQUIRE(s->load_ranges(layout()));
  REQUIRE(write(*s, {put(1, "p", "1"), put(1, "q", "2"), put(1, "a", "3")}));
  layout_change gone;
  gone.remove.push_back({1, 1});
  REQUIRE(apply_change(*s, gone));
  CHECK(!s->stats(1, 1));
  CHECK(*s->get(storage_key_range(1, "p")) == std::optional<std::string>("1"));  // kept for undo
  CHECK((*write(*s, {put(1, "r", "3")}))[0] == op_status::no_shard);            // no longer written here
  layout_change drop;
  drop.drop_ranges.push_back(key_range{storage_key_range(1, "m"), index_upper_bound(1)});
  REQUIRE(apply_change(*s, drop));
  CHECK(*s->get(storage_key_range(1, "p")) == std::nullopt);
  CHECK(*s->get(storage_key_range(1, "a")) == std::optional<std::string>("3"));  // the other shard untouched
  CHECK(s->stats(1, 0)->records == 1);
}

TEST_CASE("a watched range's watermark covers every write into it and ignores others") {
  temp_dir dir;
  auto s = open_store(dir.path());
  REQUIRE(s->load_ranges(layout()));
  key_range r2{index_prefix(2), index_upper_bound(2)};
  s->watch(r2);
  const auto start = s->last_write(r2);
  REQUIRE(write(*s, {put(1, "a", "1")}));  // another index
  CHECK(s->last_write(r2) == start);
  REQUIRE(write(*s, {put(2, "a", "1")}));
  const auto after = s->last_write(r2);
  CHECK(after > start);
  CHECK(after >= s->latest_sequence() - 1);
  // Every change the log holds for the range is at or below the watermark.
  auto page = s->changes_since(start, r2, 1 << 20);
  REQUIRE(page);
  REQUIRE(page->changes.size() == 1);
  CHECK(page->changes[0].seq <= after);
  s->unwatch(r2);
  CHECK(s->last_write(r2) == s->latest_sequence());  // not watched: no promise, so "latest"
}

TEST_CASE("an ingested import file is read back, digested, counted once stats are set, and survives a reopen") {
  temp_dir dir;
  std::vector<std::pair<std::string, std::string>> sorted;
  for (int i = 0; i < 500; ++i) {
    char key[8];
    std::snprintf(key, sizeof key, "k%04d", i);
    sorted.emplace_back(storage_key_range(2, key), std::string(100, static_cast<char>('a' + i % 26)));
  }
  range_digest want;
  std::uint64_t bytes = 0;
  for (const auto& [k, v] : sorted) {
    want.add(k, v);
    bytes += k.size() + v.size();
  }
  key_range r2{index_prefix(2), index_upper_bound(2)};
  using kv = std::pair<std::string_view, std::string_view>;
  auto views = [&](std::size_t from, std::size_t to) {
    std::vector<kv> out;
    for (std::size_t i = from; i < to; ++i) out.emplace_back(sorted[i].first, sorted[i].second);
    return out;
  };
  {
    auto s = open_store(dir.path());
    REQUIRE(s->load_ranges(layout()));
    REQUIRE(write(*s, {put(1, "a", "1")}));
    // Keys out of order are refused, and nothing of them lands.
    const std::string b = storage_key_range(2, "b"), a = storage_key_range(2, "a");
    std::vector<kv> unsorted{{b, "1"}, {a, "2"}};
    CHECK_FALSE(s->ingest(unsorted));
    auto empty = s->digest(r2);
    REQUIRE(empty);
    CHECK(empty->count() == 0);

    auto first = s->ingest(views(0, 250));
    REQUIRE(first);
    auto second = s->ingest(views(250, sorted.size()));
    REQUIRE(second);
    CHECK(first->replaced.count() == 0);
    CHECK(first->added.count() == 250);
    auto got = s->get(storage_key_range(2, "k0042"));
    REQUIRE(got);
    CHECK(*got == std::optional<std::string>(sorted[42].second));
    std::uint64_t scanned = 0;
    auto d = s->digest(r2, nullptr, &scanned);
    REQUIRE(d);
    CHECK(*d == want);
    CHECK(scanned == bytes);
    // The writer does not see ingested records: the ingests' deltas go to the stats, and give
    // what a scan finds.
    layout_change c;
    c.adjust_stats.push_back({2, 0, *first});
    c.adjust_stats.push_back({2, 0, *second});
    REQUIRE(apply_change(*s, std::move(c)));
    CHECK(s->stats(2, 0)->records == 500);
    CHECK(s->stats(2, 0)->bytes == bytes);
    CHECK(s->stats(2, 0)->digest() == want);
    // A later write over an imported key counts as an update.
    auto r = write(*s, {put(2, "k0001", "{}"), put(2, "new", "{}")});
    REQUIRE(r);
    CHECK(*r == std::vector<op_status>{op_status::updated, op_status::created});
    CHECK(s->stats(2, 0)->records == 501);
    // Records of other shards were left alone.
    CHECK(*s->get(storage_key_range(1, "a")) == std::optional<std::string>("1"));
  }
  auto s = open_store(dir.path());
  REQUIRE(s->load_ranges(layout()));
  CHECK(s->stats(2, 0)->records == 501);
  CHECK(*s->get(storage_key_range(2, "k0499")) == std::optional<std::string>(sorted[499].second));
  CHECK(*s->get(storage_key_range(2, "k0001")) == std::optional<std::string>("{}"));

  // Dropped and compacted away (an import starting over): the range is empty, its neighbours
  // keep their records, and a new import lands.
  layout_change drop;
  drop.drop_ranges.push_back(r2);
  REQUIRE(apply_change(*s, std::move(drop)));
  REQUIRE(s->compact(r2));
  CHECK(s->digest(r2)->count() == 0);
  CHECK(*s->get(storage_key_range(1, "a")) == std::optional<std::string>("1"));
  REQUIRE(s->ingest(views(0, 10)));
  CHECK(s->digest(r2)->count() == 10);
  CHECK(*s->get(storage_key_range(2, "k0009")) == std::optional<std::string>(sorted[9].second));
  CHECK(*s->get(storage_key_range(1, "a")) == std::optional<std::string>("1"));
}

namespace {

/// The digest and bytes of `range` read back from the store, beside what it keeps.
void check_kept(store& s, std::uint32_t index, std::uint32_t shard, const key_range& range) {
  std::uint64_t bytes = 0;
  auto d = s.digest(range, nullptr, &bytes);
  REQUIRE(d);
  auto kept = s.stats(index, shard);
  REQUIRE(kept);
  CHECK(kept->records == d->count());
  CHECK(kept->bytes == bytes);
  CHECK(kept->digest() == *d);
}

}  // namespace

TEST_CASE("import files written at once on several threads and ingested one at a time, in any order: "
          "what each replaced is counted once; a file never ingested is removed") {
  temp_dir dir;
  auto s = open_store(dir.path());
  REQUIRE(s->load_ranges(layout()));
  const key_range r2{index_prefix(2), index_upper_bound(2)};
  using kv = std::pair<std::string_view, std::string_view>;
  std::vector<std::pair<std::string, std::string>> records;
  for (int i = 0; i < 400; ++i) {
    char key[8];
    std::snprintf(key, sizeof key, "k%04d", i);
    records.emplace_back(storage_key_range(2, key), std::string(60, static_cast<char>('a' + i % 26)));
  }
  auto views = [&](std::size_t from, std::size_t to) {
    std::vector<kv> out;
    for (std::size_t i = from; i < to; ++i) out.emplace_back(records[i].first, records[i].second);
    return out;
  };
  // Two batches that overlap (a copy sent again after a lost answer) and one beside them, the
  // three files written on three threads before any is ingested.
  const std::vector<std::vector<kv>> batches{views(0, 200), views(100, 300), views(300, 400)};
  std::vector<result<ingest_file>> built;
  for (std::size_t i = 0; i < batches.size(); ++i) built.emplace_back(make_error(errc::unavailable, "not built"));
  {
    std::vector<std::thread> threads;
    for (std::size_t i = 0; i < batches.size(); ++i)
      threads.emplace_back([&, i] { built[i] = s->build_ingest(batches[i]); });
    for (auto& t : threads) t.join();
  }
  for (auto& b : built) REQUIRE(b);
  CHECK(s->digest(r2)->count() == 0);  // written, not yet in the store
  const auto import_dir = std::filesystem::path(dir.path()) / "import";
  auto files_in_import_dir = [&] {
    return std::distance(std::filesystem::directory_iterator(import_dir), std::filesystem::directory_iterator{});
  };
  CHECK(files_in_import_dir() == 3);
  // The later batch first: the earlier one then replaces the hundred records they share.
  layout_change adjust;
  auto second = s->ingest(std::move(*built[1]), batches[1]);
  REQUIRE(second);
  CHECK(second->added.count() == 200);
  CHECK(second->replaced.count() == 0);
  auto first = s->ingest(std::move(*built[0]), batches[0]);
  REQUIRE(first);
  CHECK(first->added.count() == 200);
  CHECK(first->replaced.count() == 100);
  adjust.adjust_stats.push_back({2, 0, *second});
  adjust.adjust_stats.push_back({2, 0, *first});
  REQUIRE(apply_change(*s, std::move(adjust)));
  CHECK(s->stats(2, 0)->records == 300);
  check_kept(*s, 2, 0, r2);
  // Records that are not the file's are refused and nothing of it is ingested; the file, like
  // one dropped unused (its import stopped), goes with it.
  CHECK(files_in_import_dir() == 1);
  auto mismatched = s->ingest(std::move(*built[2]), batches[0]);
  REQUIRE_FALSE(mismatched);
  CHECK(mismatched.error().code == errc::internal);
  CHECK(s->digest(r2)->count() == 300);
  CHECK(files_in_import_dir() == 0);
  CHECK_FALSE(s->get(storage_key_range(2, "k0350"))->has_value());
  // Files a process wrote and never ingested before it was killed are cleared at the next
  // start; what was ingested stays.
  s.reset();
  std::ofstream(import_dir / "batch-7.sst") << "left behind by a SIGKILL";
  REQUIRE(files_in_import_dir() == 1);
  s = open_store(dir.path());
  REQUIRE(s->load_ranges(layout()));
  CHECK_FALSE(std::filesystem::exists(import_dir));
  CHECK(s->digest(r2)->count() == 300);
  check_kept(*s, 2, 0, r2);
}

TEST_CASE("every shard's kept digest equals a scan of its records through writes, ingests, splits and restarts") {
  temp_dir dir;
  const key_range r10{storage_key_range(1, ""), storage_key_range(1, "m")};
  const key_range r11{storage_key_range(1, "m"), index_upper_bound(1)};
  const key_range r2{index_prefix(2), index_upper_bound(2)};
  {
    auto s = open_store(dir.path());
    REQUIRE(s->load_ranges(layout()));
    // Creates, overwrites, deletes of present and missing keys, several ops on one key in
    // one group, and groups of many requests at once.
    REQUIRE(write(*s, {put(1, "a", "1"), put(1, "a", "22"), del(1, "a"), put(1, "a", "333"), put(1, "b", "x"),
                       del(1, "nope"), put(1, "q", "{}")}));
    std::vector<std::thread> writers;
    for (int t = 0; t < 4; ++t)
      writers.emplace_back([&, t] {
        for (int i = 0; i < 200; ++i) {
          const auto k = "k" + std::to_string((i * 7 + t) % 90);
          (void)write(*s, {i % 5 == 4 ? del(1, k) : put(1, k, std::to_string(i * t))});
        }
      });
    for (auto& w : writers) w.join();
    check_kept(*s, 1, 0, r10);
    check_kept(*s, 1, 1, r11);
    const auto before = s->stats(1, 0)->records;
    CHECK(before > 3);

    // An ingest over a span that already holds some of its keys (a copy sent again): the
    // delta takes out what it replaced.
    REQUIRE(write(*s, {put(2, "c", "old"), put(2, "e", "kept")}));
    const std::string a = storage_key_range(2, "a"), c = storage_key_range(2, "c"), g = storage_key_range(2, "g");
    std::vector<std::pair<std::string_view, std::string_view>> batch{{a, "1"}, {c, "new"}, {g, "3"}};
    // The writer saw the first two records; from here the ingest's delta must keep the count.
    auto delta = s->ingest(batch);
    REQUIRE(delta);
    CHECK(delta->added.count() == 3);
    CHECK(delta->replaced.count() == 1);  // "c"; "e" is in the span but not in the file
    layout_change adjust;
    adjust.adjust_stats.push_back({2, 0, *delta});
    adjust.durable = false;
    REQUIRE(apply_change(*s, std::move(adjust)));
    CHECK(s->stats(2, 0)->records == 4);
    check_kept(*s, 2, 0, r2);

    // A split: the upper half is counted, the lower keeps the rest.
    layout_change split;
    split.splits.push_back({1, 0, 7, storage_key_range(1, "k5")});
    REQUIRE(apply_change(*s, std::move(split)));
    check_kept(*s, 1, 0, key_range{storage_key_range(1, ""), storage_key_range(1, "k5")});
    check_kept(*s, 1, 7, key_range{storage_key_range(1, "k5"), storage_key_range(1, "m")});
    CHECK(s->stats(1, 0)->records + s->stats(1, 7)->records == before);
  }
  // After a restart the persisted digests are read back, not recounted.
  auto layout2 = layout();
  layout2[0].range.end = storage_key_range(1, "k5");
  layout2.push_back({1, 7, key_range{storage_key_range(1, "k5"), storage_key_range(1, "m")}});
  auto s = open_store(dir.path());
  REQUIRE(s->load_ranges(layout2));
  check_kept(*s, 1, 0, layout2[0].range);
  check_kept(*s, 1, 7, layout2.back().range);
  check_kept(*s, 2, 0, r2);
  // stats_now: the kept stats with the sequence they hold at, and a snapshot of it.
  std::optional<snapshot> snap;
  auto at = s->stats_now(2, 0, &snap);
  REQUIRE(at);
  REQUIRE(snap);
  CHECK(snap->seq == at->seq);
  REQUIRE(write(*s, {put(2, "z", "after")}));
  auto then = s->digest(r2, &*snap);
  REQUIRE(then);
  CHECK(*then == at->stats.digest());
  CHECK_FALSE(s->stats(2, 0)->digest() == at->stats.digest());
  CHECK_FALSE(s->stats_now(9, 9));
}

TEST_CASE("stats kept before digests were are counted again once at start-up") {
  temp_dir dir;
  const key_range r2{index_prefix(2), index_upper_bound(2)};
  {
    auto s = open_store(dir.path());
    REQUIRE(s->load_ranges(layout()));
    REQUIRE(write(*s, {put(2, "a", "1"), put(2, "b", "22")}));
    s->close();
  }
  {
    // Rewrite shard 2/0's stats in the old 16-byte form (records, bytes), as an older
    // version left them.
    raw_db raw(dir.path(), false);
    std::string key = "stats/", old;
    append_u32be(key, 2);
    append_u32be(key, 0);
    append_u64be(old, 2);
    append_u64be(old, 999);  // and wrong, as a crash could leave it
    REQUIRE(raw.db->Put(rocksdb::WriteOptions(), raw.handles[1], key, old).ok());
  }
  auto s = open_store(dir.path());
  REQUIRE(s->load_ranges(layout()));
  check_kept(*s, 2, 0, r2);
  CHECK(s->stats(2, 0)->bytes != 999);
}

TEST_CASE("written and ingested files keep their index in small partitions, so a point read never needs a whole-file index") {
  // Documents that compress well put many data blocks in one file: a whole-file index grows
  // with them past what a block-cache shard holds, and every point read decompressed it again.
  temp_dir dir;
  const std::string doc(1000, 'x');
  {
    auto s = open_store(dir.path());
    REQUIRE(s->load_ranges(layout()));
    // A file ingested as a migration's copy batch writes it...
    std::vector<std::pair<std::string, std::string>> sorted;
    for (int i = 0; i < 12000; ++i) {  // 12 MB: ~750 data blocks of 16 KiB
      char key[8];
      std::snprintf(key, sizeof key, "k%05d", i);
      sorted.emplace_back(storage_key_range(2, key), doc);
    }
    std::vector<std::pair<std::string_view, std::string_view>> views(sorted.begin(), sorted.end());
    REQUIRE(s->ingest(views));
    // ...and files the store flushes and compacts from its writes.
    for (int from = 0; from < 12000; from += 500) {
      std::vector<write_op> ops;
      for (int i = from; i < from + 500; ++i) ops.push_back(put(1, "w" + std::to_string(i), doc));
      REQUIRE(write(*s, std::move(ops)));
    }
    REQUIRE(s->compact(key_range{storage_key_range(1, ""), index_upper_bound(1)}));
    s->close();
  }
  raw_db raw(dir.path(), true);
  rocksdb::TablePropertiesCollection tables;
  REQUIRE(raw.db->GetPropertiesOfAllTables(raw.handles[0], &tables).ok());
  int big = 0;
  for (const auto& [file, p] : tables) {
    if (p->num_data_blocks < 200) continue;
    ++big;
    INFO(file << ": " << p->num_data_blocks << " data blocks, index " << p->index_size << " bytes in " << p->index_partitions
              << " partitions, top level " << p->top_level_index_size << " bytes");
    CHECK(p->index_partitions >= 2);
    CHECK(p->top_level_index_size < p->index_size / 2);
  }
  CHECK(big >= 2);  // the ingested file and the compacted one
}
