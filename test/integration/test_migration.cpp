// Live shard migration: real processes, loopback, real mutual TLS. Every case ends with a full
// count and content check.

#include "shardd/key_codec.hpp"
#include "shardd/routing.hpp"
#include "storage/store.hpp"
#include "support/catch_result.hpp"
#include "support/cluster.hpp"
#include "support/json_body.hpp"
#include "support/migration_ops.hpp"
#include "support/threads.hpp"

#include <boost/json/serialize.hpp>
#include <rocksdb/db.h>

#include <atomic>
#include <map>
#include <mutex>
#include <set>
#include <thread>

using namespace shardd;
using namespace shardd::test;
namespace json = boost::json;


TEST_CASE("a shard moves while a writer writes and a reader reads: nothing acknowledged is lost, no read goes back in time") {
  cluster cl(2);
  auto c1 = cl.node(1).client(), c2 = cl.node(2).client();
  REQUIRE(c1->put("/v1/indexes/live", R"({"shards":4})").status == 201);
  auto before = owners(*c1, "live");
  const std::int64_t shard = shard_on(*c1, "live", "node-1");
  const auto routing = routing_for(*c1, "live", shard);
  std::map<std::string, std::int64_t> expected;
  load(*c1, "live", "pre", 12000, routing, 200, expected);  // ~3 MB in the moving shard
  load(*c1, "live", "other", 3000, {}, 0, expected);          // spread over every shard
  std::map<std::int64_t, std::int64_t> other_counts;
  {
    const auto shards = body(c1->get("/v1/shards?index=live"));
    for (const auto& s : shards.at("shards").as_array())
      if (s.at("shard").as_int64() != shard) other_counts[s.at("shard").as_int64()] = s.at("records").as_int64();
  }

  // The writer writes into the moving shard; the reader reads one of its keys that the
  // writer keeps updating, and checks it never sees a value older than one acknowledged
  // before the read started.
  writer w(cl.node(1).client(), "live", "w", routing);
  clock_check clock(cl.node(2).client(), cl.node(1).client(), "live", routing);
  std::atomic<bool> stop_clock{false};

  // The scanner pages through the whole index again and again: every pass must hold each
  // record loaded before the move exactly once, through the cutover too (a page that meets
  // the shard just moved follows it to its new owner).
  std::atomic<int> scan_passes{0}, scan_errors{0}, scan_incomplete{0};
  std::string scan_error;
  std::thread scanner([&] {
    auto c = cl.node(1).client();
    while (!stop_clock) {
      std::map<std::string, int> seen;
      std::string cursor;
      bool ok = true;
      for (int page = 0; page < 1000 && ok; ++page) {
        try {
          auto r = c->get("/v1/indexes/live/records?limit=5000" + (cursor.empty() ? "" : "&cursor=" + cursor));
          if (r.status != 200) {
            ok = false;
            if (scan_errors++ == 0) scan_error = std::to_string(r.status) + " " + r.body;
            break;
          }
          const auto b = json::parse(r.body);  // not body(): Catch is not thread-safe
          for (const auto& rec : b.at("records").as_array()) ++seen[std::string(rec.at("key").as_string())];
          if (b.at("next_cursor").is_null()) break;
          cursor = std::string(b.at("next_cursor").as_string());
        } catch (const std::exception& e) {
          ok = false;
          if (scan_errors++ == 0) scan_error = e.what();
        }
      }
      if (!ok) continue;
      ++scan_passes;
      for (const auto& [k, v] : expected)  // written before the scanner started, never changed
        if (seen[k] != 1) {
          ++scan_incomplete;
          break;
        }
    }
  });

  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const auto id = start_migration(*c2, "live", shard, "node-2", 2'000'000);
  auto m = wait_migration(*c1, id, finished);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // writes after the cutover too
  stop_clock = true;
  std::map<std::string, std::set<std::int64_t>> unknown;
  clock.finish(expected, unknown);
  scanner.join();
  INFO("first scan error: " << scan_error);
  CHECK(scan_errors == 0);
  CHECK(scan_incomplete == 0);
  CHECK(scan_passes >= 3);
  w.finish(expected);

  CHECK(phase(m) == "done");
  CHECK(m.at("records_done").as_int64() >= 12000);
  CHECK(m.at("fence_ms").as_int64() < 1000);
  CHECK(clock.regressions == 0);
  CHECK(clock.reads > 50);
  CHECK(w.acked.size() > 100);
  auto after = owners(*c1, "live");
  CHECK(after[shard] == "node-2");
  // Neighbouring shards: same owners, same records.
  const auto shards = body(c2->get("/v1/shards?index=live"));
  for (const auto& s : shards.at("shards").as_array()) {
    const auto id2 = s.at("shard").as_int64();
    if (id2 == shard) continue;
    CHECK(after[id2] == before[id2]);
    CHECK(s.at("records").as_int64() == other_counts[id2]);
  }
  verify(*c2, "live", expected);
  verify(*c1, "live", expected);
}

TEST_CASE("the target killed with SIGKILL mid-copy and restarted: the migration resumes and finishes") {
  cluster cl(2);
  auto c1 = cl.node(1).client();
  REQUIRE(c1->put("/v1/indexes/t", R"({"shards":2})").status == 201);
  const std::int64_t shard = shard_on(*c1, "t", "node-1");
  std::map<std::string, std::int64_t> expected;
  load(*c1, "t", "k", 16000, routing_for(*c1, "t", shard), 200, expected);  // ~4 MB
  const auto id = start_migration(*c1, "t", shard, "node-2", 1'000'000);
  wait_migration(*c1, id, [](const json::object& m) { return m.at("bytes_done").as_int64() > 600000; });
  cl.node(2).kill9();
  std::this_thread::sleep_for(std::chrono::milliseconds(800));
  cl.node(2).start();
  auto m = wait_migration(*c1, id, finished, std::chrono::seconds(90));
  CHECK(phase(m) == "done");
  CHECK(owners(*c1, "t")[shard] == "node-2");
  verify(*cl.node(2).client(), "t", expected);
}

TEST_CASE("SIGTERM during a copy stops the source within a second, cleanly, and the move resumes after its restart") {
  // Given a throttled copy under way from node 2, when node 2 gets SIGTERM, then it exits 0
  // within a second (its migration is cancelled, not waited out) and logs the stop; after a
  // restart the move resumes from its persisted cursor and ends with every record on node 3.
  cluster cl(3);
  auto c1 = cl.node(1).client();
  REQUIRE(c1->put("/v1/indexes/s", R"({"shards":6})").status == 201);
  const std::int64_t shard = shard_on(*c1, "s", "node-2");
  std::map<std::string, std::int64_t> expected;
  load(*c1, "s", "k", 16000, routing_for(*c1, "s", shard), 200, expected);  // ~4 MB at 1 MB/s
  const auto id = start_migration(*c1, "s", shard, "node-3", 1'000'000);
  wait_migration(*c1, id, [](const json::object& m) { return m.at("bytes_done").as_int64() > 600000; });
  const auto t0 = std::chrono::steady_clock::now();
  const int rc = cl.node(2).terminate();
  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
  const auto log = cl.node(2).log();
  INFO(log.substr(log.size() > 3000 ? log.size() - 3000 : 0));
  CHECK(rc == 0);
  CHECK(took < 1000);
  CHECK(cl.node(2).log().find("event=migration_stopped") != std::string::npos);
  cl.node(2).start();
  auto m = wait_migration(*c1, id, finished, std::chrono::seconds(90));
  CHECK(phase(m) == "done");
  CHECK(m.at("resumes").as_int64() >= 1);
  CHECK(owners(*c1, "s")[shard] == "node-3");
  verify(*cl.node(3).client(), "s", expected);
}

TEST_CASE("the source killed with SIGKILL mid-copy and restarted resumes from its persisted cursor") {
  cluster cl(3);
  auto c1 = cl.node(1).client();
  REQUIRE(c1->put("/v1/indexes/s", R"({"shards":6})").status == 201);
  const std::int64_t shard = shard_on(*c1, "s", "node-2");
  std::map<std::string, std::int64_t> expected;
  load(*c1, "s", "k", 16000, routing_for(*c1, "s", shard), 200, expected);
  const auto id = start_migration(*c1, "s", shard, "node-3", 1'000'000);
  wait_migration(*c1, id, [](const json::object& m) { return m.at("bytes_done").as_int64() > 600000; });
  cl.node(2).kill9();
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  // Writes while the source is down go nowhere (its shard answers 503); after its restart they
  // land on the source and must reach the target through the catch-up.
  cl.node(2).start();
  auto c2 = cl.node(2).client();
  for (int i = 0; i < 200; ++i) {
    auto r = c2->put("/v1/indexes/s/records/late" + std::to_string(i) + "?routing=" + routing_for(*c1, "s", shard),
                     R"({"n":)" + std::to_string(i) + "}");
    if (r.status < 300) expected["late" + std::to_string(i)] = i;
  }
  auto m = wait_migration(*c1, id, finished, std::chrono::seconds(90));
  CHECK(phase(m) == "done");
  CHECK(m.at("resumes").as_int64() >= 1);  // it says it resumed
  CHECK(cl.node(2).log().find("event=migration_resumed") != std::string::npos);
  CHECK(owners(*c1, "s")[shard] == "node-3");
  verify(*cl.node(3).client(), "s", expected);
}

TEST_CASE("a cancelled migration rolls back and the target holds nothing of the range") {
  cluster cl(2);
  auto c1 = cl.node(1).client();
  REQUIRE(c1->put("/v1/indexes/c", R"({"shards":2})").status == 201);
  const std::int64_t shard = shard_on(*c1, "c", "node-1");
  std::map<std::string, std::int64_t> expected;
  load(*c1, "c", "k", 16000, routing_for(*c1, "c", shard), 200, expected);
  load(*c1, "c", "spread", 2000, {}, 0, expected);
  const auto id = start_migration(*c1, "c", shard, "node-2", 1'000'000);
  wait_migration(*c1, id, [](const json::object& m) { return m.at("bytes_done").as_int64() > 400000; });
  auto cancel = cl.node(2).client()->post("/v1/migrations/" + id + "/cancel", "");
  REQUIRE(cancel.status == 202);
  auto m = wait_migration(*c1, id, finished);
  CHECK(phase(m) == "cancelled");
  CHECK(owners(*c1, "c")[shard] == "node-1");
  // A second cancel of a finished migration is a clear 409.
  CHECK(c1->post("/v1/migrations/" + id + "/cancel", "").status == 409);
  verify(*c1, "c", expected);

  // Look inside the target's store: nothing of the range is left.
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const auto map = body(c1->get("/v1/partition-map"));
  std::uint32_t index_id = 0;
  for (const auto& ix : map.at("indexes").as_array())
    if (ix.at("name") == "c") index_id = static_cast<std::uint32_t>(ix.at("id").as_int64());
  REQUIRE(cl.node(2).terminate() == 0);
  auto store = storage::store::open(storage::store_options{cl.node(2).options().data_dir + "/data/db"});
  REQUIRE(store);
  auto left = (*store)->scan(key_range{index_prefix(index_id), index_upper_bound(index_id)}, std::nullopt, 100000);
  REQUIRE(left);
  std::size_t of_range = 0;
  for (const auto& rec : left->records) {
    auto d = decode_storage_key(rec.key, partitioning::hash);
    REQUIRE(d);
    if (std::string(d->user_key).starts_with("k")) ++of_range;  // every "k" record is in the moved shard
  }
  CHECK(of_range == 0);
  (*store)->close();
}

TEST_CASE("an injected checksum mismatch re-sends the batch, and a digest mismatch copies again") {
  cluster cl(2, {{1, {{"SHARDD_TEST_FAULTS", "corrupt_batch=2,digest_mismatch=1"}}}});
  auto c1 = cl.node(1).client();
  std::map<std::string, std::int64_t> expected;
  const auto shard = index_with_loaded_shard(*c1, "f", 2, "node-1", 8000, 300, expected).shard;  // several batches
  const auto id = start_migration(*c1, "f", shard, "node-2");
  auto m = wait_migration(*c1, id, finished);
  CHECK(phase(m) == "done");
  CHECK(m.at("recopies").as_int64() == 1);
  CHECK(cl.node(1).log().find("fault=corrupt_batch") != std::string::npos);
  CHECK(cl.node(2).log().find("event=peer_checksum_mismatch") != std::string::npos);
  CHECK(cl.node(1).log().find("event=migration_digest_mismatch") != std::string::npos);
  verify(*cl.node(2).client(), "f", expected);
}

TEST_CASE("a corrupted copy batch of megabytes, checked on the target's migration pool, is refused whole and sent again") {
  // The first batch is the whole 2.7 MB shard: its checksum is checked off the network thread.
  // Sent as it is (compression off): compressed, its padded records would make a small frame.
  cluster cl(2, {{1, {{"SHARDD_TEST_FAULTS", "corrupt_batch=1"}}}}, with_migration_config(R"("compress_min_ratio":0)"));
  auto c1 = cl.node(1).client();
  std::map<std::string, std::int64_t> expected;
  const auto shard = index_with_loaded_shard(*c1, "h", 2, "node-1", 8000, 300, expected).shard;
  const auto id = start_migration(*c1, "h", shard, "node-2");
  auto m = wait_migration(*c1, id, finished);
  CHECK(phase(m) == "done");
  CHECK(m.at("recopies").as_int64() == 0);
  CHECK(cl.node(1).log().find("fault=corrupt_batch") != std::string::npos);
  const auto log2 = cl.node(2).log();
  CHECK(log2.find("event=peer_checksum_mismatch") != std::string::npos);
  CHECK(log2.find("frame=data_batch") != std::string::npos);
  verify(*cl.node(2).client(), "h", expected);
}

namespace {

/// A counter of the node's /metrics (0 if absent).
double metric(net::https_client& c, const std::string& name) {
  auto r = c.get("/metrics");
  REQUIRE(r.status == 200);
  std::istringstream in(r.body);
  for (std::string line; std::getline(in, line);)
    if (line.starts_with(name + "{") || line.starts_with(name + " ")) return std::stod(line.substr(line.rfind(' ') + 1));
  return 0;
}

/// Moves a shard of 8,000 records padded to 300 bytes (2.7 MB, compressing ~20x) from node-1
/// to node-2 with the cluster's config `config`; checks every record and the kept digest
/// against a full scan, and returns the bytes node-1 says compression saved.
double move_padded_shard(const std::string& config) {
  cluster cl(2, {}, config);
  auto c1 = cl.node(1).client();
  std::map<std::string, std::int64_t> expected;
  const auto shard = index_with_loaded_shard(*c1, "z", 2, "node-1", 8000, 300, expected).shard;
  const auto id = start_migration(*c1, "z", shard, "node-2");
  auto m = wait_migration(*c1, id, finished);
  CHECK(phase(m) == "done");
  CHECK(m.at("recopies").as_int64() == 0);
  verify(*cl.node(2).client(), "z", expected);
  auto v = cl.node(2).client()->post("/v1/shards/z/" + std::to_string(shard) + "/verify", "");
  INFO(v.body);
  REQUIRE(v.status == 200);
  const auto vb = body(v);
  CHECK(vb.at("kept") == vb.at("scanned"));
  CHECK(vb.at("scanned").at("records").as_int64() == 8000);
  return metric(*c1, "shardd_migration_compression_saved_bytes_total");
}

}  // namespace

TEST_CASE("copy batches of records that compress well cross compressed and arrive whole") {
  const double saved = move_padded_shard(fast_config);  // the default bar: 4x
  CHECK(saved > 8000.0 * 300 * 0.75);
}

TEST_CASE("with compression off, or a bar the records do not reach, copy batches cross as they are") {
  CHECK(move_padded_shard(with_migration_config(R"("compress_min_ratio":0)")) == 0);
  CHECK(move_padded_shard(with_migration_config(R"("compress_min_ratio":1000)")) == 0);
}

TEST_CASE("a copy batch whose file the target cannot write is sent again; the files written beside it keep the digest exact") {
  // node-2's second copy-batch file fails after it was written (as on a full disk). The
  // batches in flight beside it may be ingested already; the source starts again after its
  // last acknowledged batch, so those arrive twice. The kept digests must still agree (no
  // copy from the start) and no import file may stay behind.
  cluster cl(2, {{2, {{"SHARDD_TEST_FAULTS", "fail_copy_build=2"}}}});
  auto c1 = cl.node(1).client();
  std::map<std::string, std::int64_t> expected;
  const auto shard = index_with_loaded_shard(*c1, "g", 2, "node-1", 8000, 300, expected).shard;
  // Capped at 4 MB/s: batches of half a megabyte, four in flight, five or more in all.
  const auto id = start_migration(*c1, "g", shard, "node-2", 4'000'000);
  auto m = wait_migration(*c1, id, finished);
  CHECK(phase(m) == "done");
  CHECK(m.at("recopies").as_int64() == 0);
  CHECK(cl.node(2).log().find("fault=fail_copy_build") != std::string::npos);
  const auto log1 = cl.node(1).log();
  const auto failed_at = log1.find("event=migration_step_failed");
  REQUIRE(failed_at != std::string::npos);
  CHECK(log1.find("no space left on device (injected)", failed_at) != std::string::npos);
  // The node's data directory is `<data_dir>/data` (shardd_process); the store's is `db` in it.
  const auto import_dir = std::filesystem::path(cl.node(2).options().data_dir) / "data" / "db" / "import";
  REQUIRE(std::filesystem::is_directory(import_dir));  // the target wrote its batch files here
  CHECK(std::filesystem::is_empty(import_dir));
  verify(*cl.node(2).client(), "g", expected);
  // The kept digest of the moved shard is what a full scan finds.
  auto v = c1->post("/v1/shards/g/" + std::to_string(shard) + "/verify", "");
  INFO(v.body);
  REQUIRE(v.status == 200);
  const auto vb = body(v);
  CHECK(vb.at("kept") == vb.at("scanned"));
}

TEST_CASE("a move of priority high does its work on the high-priority migration threads at both ends, a normal move on the others") {
  // The pools told apart by nice value: migration.nice 9, migration.high_priority_nice 4.
  cluster cl(2, {}, R"({"cluster":{"heartbeat_interval_ms":200,"heartbeat_miss_limit":3},
                       "migration":{"nice":9,"high_priority_nice":4,"undo_window_ms":300},"rebalance":{"mode":"off"}})");
  auto c1 = cl.node(1).client();
  std::map<std::string, std::int64_t> expected;
  const auto loaded = index_with_loaded_shard(*c1, "p", 2, "node-1", 48000, 1000, expected);  // ~48 MB
  // CPU ticks of each pool's threads on each node, relative to the node's own nice value.
  const auto pools = [&](int node) {
    const auto by_nice = threads_by_nice(cl.node(node).pid());
    const int base = by_nice.begin()->first;
    REQUIRE(base + 9 <= 19);
    REQUIRE(by_nice.count(base + 4) == 1);
    REQUIRE(by_nice.count(base + 9) == 1);
    return std::pair<long long, long long>(by_nice.at(base + 4).cpu_ticks, by_nice.at(base + 9).cpu_ticks);
  };
  const auto move = [&](const std::string& target, const std::string& priority) {
    const auto before1 = pools(1), before2 = pools(2);
    auto r = c1->post("/v1/shards/p/" + std::to_string(loaded.shard) + "/migrate",
                      R"({"target":")" + target + R"(","priority":")" + priority + R"("})");
    INFO(r.body);
    REQUIRE(r.status == 202);
    auto m = wait_migration(*c1, std::string(body(r).at("id").as_string()), finished);
    REQUIRE(phase(m) == "done");
    const auto after1 = pools(1), after2 = pools(2);
    // {high pool's ticks, other pool's ticks} used by the move, source and target.
    return std::pair(std::pair(after1.first - before1.first, after1.second - before1.second),
                     std::pair(after2.first - before2.first, after2.second - before2.second));
  };
  {
    const auto [source, target] = move("node-2", "high");
    INFO("high: source pools " << source.first << "/" << source.second << " ticks, target " << target.first << "/"
                               << target.second);
    CHECK(source.first > source.second);
    CHECK(target.first >= 2);  // hashing and writing 48 MB of records
    CHECK(target.first > target.second);
  }
  {
    const auto [target, source] = move("node-1", "normal");  // back: node-2 is the source
    INFO("normal: source pools " << source.first << "/" << source.second << " ticks, target " << target.first << "/"
                                 << target.second);
    CHECK(source.second > source.first);
    CHECK(target.second >= 2);
    CHECK(target.second > target.first);
  }
  verify(*c1, "p", expected);
}

TEST_CASE("the node bandwidth cap, changed at runtime, holds within 10% over 5 s") {
  cluster cl(2);
  auto c1 = cl.node(1).client();
  REQUIRE(c1->put("/v1/indexes/b", R"({"shards":2})").status == 201);
  auto set = c1->put("/v1/migrations/settings", R"({"max_bytes_per_sec":2000000})");
  REQUIRE(set.status == 200);
  CHECK(body(set).at("max_bytes_per_sec").as_int64() == 2000000);
  CHECK(body(cl.node(2).client()->get("/v1/migrations/settings")).at("max_bytes_per_sec").as_int64() == 2000000);
  const std::int64_t shard = shard_on(*c1, "b", "node-1");
  std::map<std::string, std::int64_t> expected;
  load(*c1, "b", "k", 20000, routing_for(*c1, "b", shard), 1000, expected);  // ~20 MB: 10 s at the cap
  const auto id = start_migration(*c1, "b", shard, "node-2");
  auto first = wait_migration(*c1, id, [](const json::object& m) { return m.at("bytes_done").as_int64() > 1500000; });
  std::this_thread::sleep_for(std::chrono::seconds(5));
  auto second = migration(*c1, id);
  REQUIRE(phase(second) == "copying");
  const double bytes = static_cast<double>(second.at("bytes_done").as_int64() - first.at("bytes_done").as_int64());
  const double secs = static_cast<double>(second.at("updated_ms").as_int64() - first.at("updated_ms").as_int64()) / 1000.0;
  const double rate = bytes / secs;
  INFO("measured " << rate << " bytes/s over " << secs << " s");
  CHECK(secs >= 4.0);
  CHECK(rate <= 2000000 * 1.10);
  CHECK(rate >= 2000000 * 0.90);
  // Lift the cap so the test ends quickly, then check everything.
  REQUIRE(c1->put("/v1/migrations/settings", R"({"max_bytes_per_sec":0})").status == 200);
  auto m = wait_migration(*c1, id, finished);
  CHECK(phase(m) == "done");
  verify(*cl.node(2).client(), "b", expected);
}

TEST_CASE("the adaptive throttle slows a move while the source's foreground p99 is over its bound, and lets go when turned off") {
  // A bound of 1 µs that every request breaks: the limit falls to its floor (256 KiB/s) and
  // the move shows rate_limited_by "adaptive"; off again, it runs at its own cap.
  cluster cl(2, {}, R"({"monitor":{"interval_ms":100},"rebalance":{"mode":"off"},
                       "migration":{"adaptive":true,"adaptive_p99_ms":0.001,"adaptive_min_bytes_per_sec":262144}})");
  auto c1 = cl.node(1).client();
  auto st = body(c1->get("/v1/migrations/settings"));
  CHECK(st.at("adaptive").as_bool());
  CHECK(st.at("adaptive_p99_ms").to_number<double>() == Approx(0.001));
  CHECK(st.at("adaptive_min_bytes_per_sec").as_int64() == 262144);
  for (const char* bad : {R"({"adaptive":"yes"})", R"({"adaptive_p99_ms":0})", R"({"adaptive_min_bytes_per_sec":10})"}) {
    auto r = c1->put("/v1/migrations/settings", bad);
    INFO(bad << " -> " << r.body);
    CHECK(r.status == 400);
  }
  std::map<std::string, std::int64_t> expected;
  const auto loaded = index_with_loaded_shard(*c1, "a", 2, "node-1", 20000, 1000, expected);  // ~20 MB
  std::vector<std::unique_ptr<writer>> writers;  // the foreground, on the moving shard
  for (int i = 0; i < 2; ++i)
    writers.push_back(std::make_unique<writer>(cl.node(1).client(), "a", "f" + std::to_string(i) + "-", loaded.routing));
  const auto id = start_migration(*c1, "a", loaded.shard, "node-2", 4'000'000);
  auto held = wait_migration(*c1, id, [](const json::object& m) {
    return m.at("rate_limited_by") == "adaptive" || finished(m);
  }, std::chrono::seconds(30));
  REQUIRE(held.at("rate_limited_by") == "adaptive");
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  const auto a = migration(*c1, id);
  // The rate between two updates of the record at least 2 s apart. Batches sent at the old
  // rate leave a debt that the limit's next batch waits out, so an update may be seconds away.
  auto b = a;
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  do {
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    b = migration(*c1, id);
  } while (b.at("updated_ms").as_int64() - a.at("updated_ms").as_int64() < 2000 && phase(b) == "copying" &&
           std::chrono::steady_clock::now() < give_up);
  REQUIRE(phase(b) == "copying");
  const double secs = static_cast<double>(b.at("updated_ms").as_int64() - a.at("updated_ms").as_int64()) / 1000.0;
  const double rate = static_cast<double>(b.at("bytes_done").as_int64() - a.at("bytes_done").as_int64()) / secs;
  INFO("rate while held: " << rate << " bytes/s over " << secs << " s (move cap 4 MB/s, floor 256 KiB/s)");
  CHECK(secs >= 2.0);
  CHECK(rate <= 262144 * 2.0);
  CHECK(b.at("rate_limited_by") == "adaptive");
  CHECK(cl.node(1).log().find("event=migration_rate_adapted") != std::string::npos);
  // Off: the limit is lifted at the next check and the move's own cap holds it again.
  REQUIRE(c1->put("/v1/migrations/settings", R"({"adaptive":false})").status == 200);
  auto freed = wait_migration(*c1, id, [](const json::object& m) {
    return m.at("rate_limited_by") == "move_cap" || finished(m);
  }, std::chrono::seconds(30));
  CHECK(freed.at("rate_limited_by") == "move_cap");
  auto m = wait_migration(*c1, id, finished, std::chrono::seconds(60));
  CHECK(phase(m) == "done");
  for (auto& w : writers) w->finish(expected);
  verify(*cl.node(2).client(), "a", expected);
}

TEST_CASE("bad migrations are refused with a clear 4xx") {
  cluster cl(3);
  auto c1 = cl.node(1).client();
  REQUIRE(c1->put("/v1/indexes/x", R"({"shards":3})").status == 201);
  auto own = owners(*c1, "x");
  const auto shard = own.begin()->first;
  const auto owner = own.begin()->second;
  std::string other;
  for (const auto* n : {"node-1", "node-2", "node-3"})
    if (owner != n) other = n;
  CHECK(c1->post("/v1/shards/x/" + std::to_string(shard) + "/migrate", R"({"target":"node-9"})").status == 400);
  CHECK(c1->post("/v1/shards/x/" + std::to_string(shard) + "/migrate", R"({"target":")" + owner + "\"}").status == 400);
  CHECK(c1->post("/v1/shards/x/99/migrate", R"({"target":"node-2"})").status == 404);
  CHECK(c1->post("/v1/shards/nope/0/migrate", R"({"target":"node-2"})").status == 404);
  CHECK(c1->post("/v1/shards/x/abc/migrate", R"({"target":"node-2"})").status == 400);
  CHECK(c1->post("/v1/shards/x/0/migrate", R"({"target":"node-2","priority":"urgent"})").status == 400);
  CHECK(c1->post("/v1/shards/x/0/migrate", R"({})").status == 400);
  CHECK(c1->get("/v1/migrations/m999").status == 404);
  CHECK(c1->get("/v1/migrations?state=sleeping").status == 400);
  // Already moving: a slow move, then a second request for the same shard.
  std::map<std::string, std::int64_t> loaded;
  load(*c1, "x", "k", 4000, routing_for(*c1, "x", shard), 500, loaded);
  const auto id = start_migration(*c1, "x", shard, other, 200000);
  auto again = c1->post("/v1/shards/x/" + std::to_string(shard) + "/migrate", R"({"target":")" + other + "\"}");
  CHECK(again.status == 409);
  CHECK(body(again).at("detail").as_string().find("already moving") != std::string::npos);
  REQUIRE(c1->post("/v1/migrations/" + id + "/cancel", "").status == 202);
  wait_migration(*c1, id, finished);
  // A target that is down, then one that is draining.
  cl.node(3).kill9();
  cl.wait_states({"up", "up", "down"});
  std::int64_t on1 = -1;
  for (const auto& [s, n] : owners(*c1, "x"))
    if (n != "node-3") on1 = s;
  auto down = c1->post("/v1/shards/x/" + std::to_string(on1) + "/migrate", R"({"target":"node-3"})");
  CHECK(down.status == 409);
  CHECK(body(down).at("detail").as_string().find("down") != std::string::npos);
  cl.node(3).start();
  cl.wait_states({"up", "up", "up"});
  REQUIRE(c1->post("/v1/cluster/nodes/node-3/decommission", "").status == 202);
  auto draining = c1->post("/v1/shards/x/" + std::to_string(on1) + "/migrate", R"({"target":"node-3"})");
  CHECK(draining.status == 409);
  CHECK(c1->post("/v1/cluster/nodes/node-1/decommission", "").status == 409);  // the controller
}

TEST_CASE("a hash shard splits at its middle token and a range shard at its median key; either half can move") {
  cluster cl(2);
  auto c1 = cl.node(1).client();
  REQUIRE(c1->put("/v1/indexes/h", R"({"shards":1})").status == 201);
  std::map<std::string, std::int64_t> hexp, rexp;
  load(*c1, "h", "k", 3000, {}, 0, hexp);
  auto hs = c1->post("/v1/shards/h/0/split", "");
  REQUIRE(hs.status == 200);
  auto halves = body(hs).at("shards").as_array();
  REQUIRE(halves.size() == 2);
  CHECK(halves[0].at("end") == halves[1].at("start"));
  CHECK(halves[1].at("start") == "8000000000000000");
  auto shards = body(c1->get("/v1/shards?index=h")).at("shards").as_array();
  std::int64_t sum = 0;
  for (const auto& s : shards) {
    sum += s.at("records").as_int64();
    CHECK(s.at("records").as_int64() > 1200);  // an even split of random tokens
  }
  CHECK(sum == 3000);

  REQUIRE(c1->put("/v1/indexes/r", R"({"partitioning":"range"})").status == 201);
  std::string nd;
  for (int i = 0; i < 1000; ++i) {
    char key[16];
    std::snprintf(key, sizeof key, "key-%04d", i);
    nd += R"({"op":"put","key":")" + std::string(key) + R"(","doc":{"n":)" + std::to_string(i) + "}}\n";
    rexp[key] = i;
  }
  REQUIRE(body(c1->post("/v1/indexes/r/bulk", nd)).at("created").as_int64() == 1000);
  auto rs = c1->post("/v1/shards/r/0/split", "");
  REQUIRE(rs.status == 200);
  CHECK(body(rs).at("shards").as_array()[1].at("start") == "key-0500");
  auto rshards = body(c1->get("/v1/shards?index=r")).at("shards").as_array();
  REQUIRE(rshards.size() == 2);
  CHECK(rshards[0].at("records").as_int64() == 500);
  CHECK(rshards[1].at("records").as_int64() == 500);
  // Move the upper half of each to the other node.
  const auto id1 = start_migration(*c1, "h", 1, owners(*c1, "h")[1] == "node-1" ? "node-2" : "node-1");
  const auto id2 = start_migration(*c1, "r", 1, owners(*c1, "r")[1] == "node-1" ? "node-2" : "node-1");
  CHECK(phase(wait_migration(*c1, id1, finished)) == "done");
  CHECK(phase(wait_migration(*c1, id2, finished)) == "done");
  verify(*cl.node(2).client(), "h", hexp);
  verify(*cl.node(2).client(), "r", rexp);
  const auto in_order = scan_all(*c1, "r");  // std::map: compare as ordered lists through the scan
  CHECK(in_order == rexp);
}

TEST_CASE("while a range shard's median takes seconds, heartbeats and other controller work go on") {
  // Given both nodes slow to find a median (3 s), when a range shard is split, then during
  // the wait an index is created within a second and every member's lease stays fresh; the
  // split itself answers once the median is in.
  const std::vector<std::pair<std::string, std::string>> slow{{"SHARDD_TEST_FAULTS", "median_delay_ms=3000"}};
  cluster cl(2, {{1, slow}, {2, slow}});
  auto c1 = cl.node(1).client();
  REQUIRE(c1->put("/v1/indexes/r", R"({"partitioning":"range"})").status == 201);
  std::string nd;
  for (int i = 0; i < 200; ++i) nd += R"({"op":"put","key":"k)" + std::to_string(1000 + i) + R"(","doc":{}})" "\n";
  REQUIRE(body(c1->post("/v1/indexes/r/bulk", nd)).at("created").as_int64() == 200);

  std::atomic<int> split_status{0};
  std::atomic<long> split_ms{0};
  std::thread splitter([&] {
    auto c = cl.node(2).client();
    const auto t0 = std::chrono::steady_clock::now();
    split_status = c->post("/v1/shards/r/0/split", "").status;
    split_ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const auto t0 = std::chrono::steady_clock::now();
  const auto created = c1->put("/v1/indexes/other", R"({"shards":2})");
  const auto create_ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
  CHECK(created.status == 201);
  CHECK(create_ms < 1000);
  std::int64_t stalest = 0;
  for (int i = 0; i < 10 && split_status == 0; ++i) {
    const auto b = body(c1->get("/v1/cluster"));
    for (const auto& n : b.at("nodes").as_array())
      if (n.at("id") == "node-2" && n.at("last_heartbeat_ms").is_int64())
        stalest = std::max(stalest, n.at("last_heartbeat_ms").as_int64());
    std::this_thread::sleep_for(std::chrono::milliseconds(150));
  }
  CHECK(split_status == 0);  // still waiting for the median while the above went on
  splitter.join();
  CHECK(split_status == 200);
  CHECK(split_ms >= 2500);
  CHECK(stalest < 1000);  // heartbeats every 200 ms were heard throughout
  CHECK(cl.states() == std::vector<std::string>{"up", "up"});
  auto rshards = body(c1->get("/v1/shards?index=r")).at("shards").as_array();
  REQUIRE(rshards.size() == 2);
  CHECK(rshards[0].at("records").as_int64() + rshards[1].at("records").as_int64() == 200);
}

TEST_CASE("finished migrations are listed in creation order with readable progress, then pruned beyond the limit") {
  // Given a controller that keeps one finished record, when three empty shards move one after
  // the other, then each finished move shows progress 1 (also for an empty shard), and once
  // all are done only the newest is listed; the older ids answer 404.
  cluster cl(2, {}, R"({"cluster":{"heartbeat_interval_ms":200,"heartbeat_miss_limit":3},)"
                    R"("migration":{"undo_window_ms":300,"keep_finished":1}})");
  auto c1 = cl.node(1).client();
  REQUIRE(c1->put("/v1/indexes/e", R"({"shards":6})").status == 201);
  std::vector<std::string> ids;
  for (const auto& [s, n] : owners(*c1, "e")) {
    if (ids.size() == 3) break;
    ids.push_back(start_migration(*c1, "e", s, n == "node-1" ? "node-2" : "node-1"));
    auto m = wait_migration(*c1, ids.back(), [](const json::object& m) { return phase(m) == "done"; });
    CHECK(m.at("bytes_total").as_int64() == 0);
    CHECK(m.at("progress").to_number<double>() == 1.0);
  }
  REQUIRE(ids.size() == 3);
  const auto raw = c1->get("/v1/migrations/" + ids.back());
  CHECK(raw.body.find(R"("progress":1.0,)") != std::string::npos);  // not 1E0
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  std::vector<std::string> listed;
  while (std::chrono::steady_clock::now() < until) {
    listed.clear();
    const auto b = body(c1->get("/v1/migrations"));
    for (const auto& m : b.at("migrations").as_array()) listed.emplace_back(m.at("id").as_string());
    if (listed.size() == 1) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  CHECK(listed == std::vector<std::string>{ids.back()});
  CHECK(c1->get("/v1/migrations/" + ids[0]).status == 404);
  CHECK(c1->get("/v1/migrations/" + ids[1]).status == 404);
}

TEST_CASE("decommission under writes moves every shard off the node, then marks it left") {
  cluster cl(3);
  auto c1 = cl.node(1).client();
  REQUIRE(c1->put("/v1/indexes/d", R"({"shards":12})").status == 201);
  std::map<std::string, std::int64_t> expected;
  load(*c1, "d", "base", 6000, {}, 100, expected);
  int on3 = 0;
  for (const auto& [s, n] : owners(*c1, "d")) on3 += n == "node-3";
  REQUIRE(on3 > 0);
  writer w(cl.node(2).client(), "d", "w");
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  auto r = c1->post("/v1/cluster/nodes/node-3/decommission", "");
  REQUIRE(r.status == 202);
  CHECK(body(r).at("migrations").as_array().size() == static_cast<std::size_t>(on3));
  // Progress shows in /v1/cluster until the node has left.
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  bool left = false;
  std::int64_t most_moving = 0;
  while (!left && std::chrono::steady_clock::now() < until) {
    const auto c = body(c1->get("/v1/cluster"));
    for (const auto& n : c.at("nodes").as_array())
      if (n.at("id") == "node-3") {
        left = n.at("state") == "left";
        if (!left) {
          REQUIRE(n.at("drain").is_object());  // draining: its progress
          // (One less for a moment when a commit lands between reading the records and the map.)
          const auto sum = n.at("drain").at("shards_moved").as_int64() + n.at("drain").at("shards_left").as_int64();
          CHECK(sum <= on3);
          CHECK(sum >= on3 - 1);
          most_moving = std::max(most_moving, n.at("migrations_out").as_int64());
        }
      }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  w.finish(expected);
  if (!left) {
    const auto log = cl.node(1).log();
    FAIL("node-3 never left; controller log ends with:\n" << log.substr(log.size() > 6000 ? log.size() - 6000 : 0));
  }
  for (const auto& [s, n] : owners(*c1, "d")) CHECK(n != "node-3");
  CHECK(w.acked.size() > 100);
  verify(*cl.node(2).client(), "d", expected);
  CHECK(most_moving > 0);
  // The node that left: its drain in the cluster view and in its own view, in JSON and text.
  auto view = body(c1->get("/v1/cluster/nodes/node-3"));
  CHECK(view.at("state") == "left");
  CHECK(view.at("drain").at("shards_moved").as_int64() == on3);
  CHECK(view.at("shard_list").as_array().empty());
  auto text = c1->get("/v1/cluster?h=node,state,mig_in,mig_out,drain&s=node&v=false");
  CHECK(text.body.find("node-3  left") != std::string::npos);
  CHECK(text.body.find(std::to_string(on3) + "/" + std::to_string(on3)) != std::string::npos);
  // Removed from the map, its id may join again: its process still runs, and joins as a new member.
  auto removed = cl.node(2).client()->del("/v1/cluster/nodes/node-3");  // relayed to the controller
  INFO(removed.body);
  REQUIRE(removed.status == 200);
  CHECK(body(removed).at("was") == "left");
  CHECK(body(removed).at("shards_recreated_empty").as_array().empty());
  cl.wait_states({"up", "up", "up"});
  auto back = body(c1->get("/v1/cluster/nodes/node-3"));
  CHECK(back.at("state") == "up");
  CHECK(back.at("drain").is_null());
  CHECK(cl.node(1).log().find("event=node_removed") != std::string::npos);
}

TEST_CASE("a node that joins under writes receives its share of shards") {
  cluster cl(2);
  auto c1 = cl.node(1).client();
  REQUIRE(c1->put("/v1/indexes/j", R"({"shards":12})").status == 201);
  std::map<std::string, std::int64_t> expected;
  load(*c1, "j", "base", 6000, {}, 100, expected);
  writer w(cl.node(1).client(), "j", "w");
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  cl.add();
  // The rebalancer (auto mode, the default) moves shards to node-3 until none is queued or moving.
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  int on3 = 0;
  bool settled = false;
  while (std::chrono::steady_clock::now() < until && !settled) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    on3 = 0;
    for (const auto& [s, n] : owners(*c1, "j")) on3 += n == "node-3";
    const auto active = body(c1->get("/v1/migrations?state=active")).at("migrations").as_array().size();
    settled = on3 > 0 && active == 0;
  }
  w.finish(expected);
  REQUIRE(settled);
  CHECK(on3 >= 3);  // about a third of 12
  const auto all = body(c1->get("/v1/migrations?state=finished")).at("migrations").as_array();
  for (const auto& m : all) {
    CHECK(m.at("phase") == "done");
    CHECK(m.at("reason") == "balance");
    CHECK(m.at("target") == "node-3");  // nothing moved but to the new node
  }
  verify(*cl.node(3).client(), "j", expected);
}

TEST_CASE("a shard moved away and back within the undo window starts from nothing: what was deleted meanwhile stays deleted") {
  cluster cl(2, {}, R"({"cluster":{"heartbeat_interval_ms":200,"heartbeat_miss_limit":3},"migration":{"undo_window_ms":5000}})");
  auto c1 = cl.node(1).client();
  REQUIRE(c1->put("/v1/rebalance/settings", R"({"mode":"off"})").status == 200);
  REQUIRE(c1->put("/v1/indexes/b", R"({"shards":2})").status == 201);
  const std::int64_t shard = shard_on(*c1, "b", "node-1");
  const auto routing = routing_for(*c1, "b", shard);
  std::map<std::string, std::int64_t> expected;
  load(*c1, "b", "k", 3000, routing, 50, expected);
  const auto moved_away = std::chrono::steady_clock::now();
  auto away = wait_migration(*c1, start_migration(*c1, "b", shard, "node-2"),
                             [](const json::object& m) { return phase(m) == "retiring" || finished(m); });
  REQUIRE(phase(away) == "retiring");  // node-1 keeps its copy for the undo window
  // Meanwhile, on the new owner: a third of the records deleted, some updated.
  std::string ops;
  for (int i = 0; i < 3000; i += 3) {
    const auto key = "k" + std::to_string(i);
    ops += R"({"op":"delete","key":")" + key + R"(","routing":")" + routing + "\"}\n";
    expected.erase(key);
  }
  for (int i = 1; i < 3000; i += 30) {
    const auto key = "k" + std::to_string(i);
    ops += R"({"op":"put","key":")" + key + R"(","routing":")" + routing + R"(","doc":{"n":-1}})" + "\n";
    expected[key] = -1;
  }
  auto r = c1->post("/v1/indexes/b/bulk", ops);
  REQUIRE(r.status == 200);
  CHECK(body(r).at("deleted").as_int64() == 1000);
  auto back = wait_migration(*c1, start_migration(*c1, "b", shard, "node-1"),
                             [](const json::object& m) { return phase(m) == "retiring" || finished(m); });
  CHECK(phase(back) == "retiring");
  CHECK(back.at("recopies").as_int64() == 0);  // the stale copy was gone before the import began
  CHECK(owners(*c1, "b")[shard] == "node-1");
  verify(*c1, "b", expected);
  // The first move's retirement comes after the shard is back: it must delete nothing.
  std::this_thread::sleep_until(moved_away + std::chrono::seconds(7));
  CHECK(wait_migration(*c1, std::string(away.at("id").as_string()), finished).at("phase") == "done");
  verify(*c1, "b", expected);
}

TEST_CASE("a new cluster starts with the bootstrapping node's migration and rebalance settings; the API changes them") {
  cluster cl(1, {}, R"({"migration":{"max_outgoing":3,"max_incoming":5,"max_bytes_per_sec":7000000},"rebalance":{"mode":"off","threshold":0.3}})");
  auto c = cl.node(1).client();
  auto s = body(c->get("/v1/migrations/settings"));
  CHECK(s.at("max_outgoing").as_int64() == 3);
  CHECK(s.at("max_incoming").as_int64() == 5);
  CHECK(s.at("max_bytes_per_sec").as_int64() == 7000000);
  auto rb = body(c->get("/v1/rebalance/settings"));
  CHECK(rb.at("mode").as_string() == "off");
  CHECK(rb.at("threshold").to_number<double>() == 0.3);
  // The setting the rebalancer replaced is refused with what to use instead.
  auto gone = c->put("/v1/migrations/settings", R"({"convergence":false})");
  CHECK(gone.status == 400);
  CHECK(std::string(body(gone).at("detail").as_string()).find("/v1/rebalance/settings") != std::string::npos);
  REQUIRE(c->put("/v1/migrations/settings", R"({"max_outgoing":4})").status == 200);
  REQUIRE(c->put("/v1/rebalance/settings", R"({"mode":"plan-only"})").status == 200);
  // The config is the bootstrap value only: a restart keeps what the API set.
  REQUIRE(cl.node(1).terminate() == 0);
  cl.node(1).start();
  CHECK(body(cl.node(1).client()->get("/v1/migrations/settings")).at("max_outgoing").as_int64() == 4);
  CHECK(body(cl.node(1).client()->get("/v1/rebalance/settings")).at("mode").as_string() == "plan-only");
}

TEST_CASE("a node whose map lags behind a move still scans, counts and reads the moved shard") {
  // node-3 installs the maps the controller sends 5 s late: right after a move it still sends
  // the shard's requests to the old owner, which answers that the shard is no longer there.
  cluster cl(3, {{3, {{"SHARDD_TEST_FAULTS", "map_delay_ms=5000"}}}});
  auto c1 = cl.node(1).client(), c3 = cl.node(3).client();
  REQUIRE(c1->put("/v1/indexes/lag", R"({"shards":4})").status == 201);
  const std::int64_t shard = shard_on(*c1, "lag", "node-1");
  const auto version_of = [](net::https_client& c) {  // of the map the node itself routes with
    return body(c.get("/v1/partition-map")).at("version").as_int64();
  };
  const auto current = version_of(*c1);
  for (int i = 0; i < 200 && version_of(*c3) < current; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  REQUIRE(version_of(*c3) == current);  // node-3 knows the index and where its shards are
  std::map<std::string, std::int64_t> expected;
  load(*c1, "lag", "m", 3000, routing_for(*c1, "lag", shard), 0, expected);
  load(*c1, "lag", "o", 1000, {}, 0, expected);

  const auto id = start_migration(*c1, "lag", shard, "node-2");
  auto m = wait_migration(*c1, id, [](const json::object& r) { return phase(r) == "retiring" || phase(r) == "done"; });
  REQUIRE(owners(*c1, "lag").at(shard) == "node-2");
  // node-3 has not heard of the move yet.
  REQUIRE(version_of(*c3) < version_of(*c1));
  bool still_old = false;
  const auto stale = body(c3->get("/v1/partition-map"));
  for (const auto& ix : stale.at("indexes").as_array())
    if (ix.at("name").as_string() == "lag")
      for (const auto& s : ix.at("shards").as_array())
        if (s.at("id").as_int64() == shard) still_old = s.at("owner").as_string() == "node-1";
  REQUIRE(still_old);

  // Through node-3: a scan, a count and a read of the moved shard all find it at its new owner.
  verify(*c3, "lag", expected);
  auto r = c3->get("/v1/indexes/lag/records/m7?routing=" + routing_for(*c1, "lag", shard));
  CHECK(r.status == 200);
  CHECK(version_of(*c3) == version_of(*c1));  // and it caught up on the way
}

TEST_CASE("a full check of a moved shard agrees with the kept digest, and finds a record changed behind the store's back") {
  cluster cl(2);
  auto c1 = cl.node(1).client();
  std::map<std::string, std::int64_t> expected;
  const auto loaded = index_with_loaded_shard(*c1, "v", 2, "node-1", 3000, 100, expected);
  const auto shard = std::to_string(loaded.shard);
  // A few overwrites and deletes before the move: the kept digest follows them.
  REQUIRE(c1->put("/v1/indexes/v/records/k1?routing=" + loaded.routing, R"({"n":-1})").status < 300);
  REQUIRE(c1->del("/v1/indexes/v/records/k2?routing=" + loaded.routing).status < 300);
  const auto id = start_migration(*c1, "v", loaded.shard, "node-2");
  auto m = wait_migration(*c1, id, finished);
  REQUIRE(phase(m) == "done");
  CHECK(cl.node(1).log().find("event=migration_verified") != std::string::npos);

  // Asked through node-1, answered by the new owner: the kept digest is what a scan finds.
  auto ok = c1->post("/v1/shards/v/" + shard + "/verify", "");
  INFO(ok.body);
  REQUIRE(ok.status == 200);
  auto b = body(ok);
  CHECK(b.at("node") == "node-2");
  CHECK(b.at("match").as_bool());
  CHECK(b.at("kept").at("records").as_int64() == 2999);
  CHECK(b.at("kept") == b.at("scanned"));

  // Change one record's value in node-2's files, not through the store.
  REQUIRE(cl.node(2).terminate() == 0);
  {
    rocksdb::Options o;
    std::vector<rocksdb::ColumnFamilyDescriptor> families = {{rocksdb::kDefaultColumnFamilyName, {}}, {"meta", {}}};
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    rocksdb::DB* raw = nullptr;
    REQUIRE(rocksdb::DB::Open(rocksdb::DBOptions(o), cl.node(2).options().data_dir + "/data/db", families, &handles, &raw).ok());
    std::unique_ptr<rocksdb::Iterator> it(raw->NewIterator(rocksdb::ReadOptions(), handles[0]));
    std::string changed;
    for (it->SeekToFirst(); it->Valid() && changed.empty(); it->Next()) {
      const std::string key = it->key().ToString();  // the decoded views point into it
      auto d = decode_storage_key(key, partitioning::hash);
      if (d && d->user_key == "k7") changed = key;
    }
    it.reset();
    REQUIRE_FALSE(changed.empty());
    REQUIRE(raw->Put(rocksdb::WriteOptions(), handles[0], changed, R"({"n":70})").ok());
    for (auto* h : handles) (void)raw->DestroyColumnFamilyHandle(h);
    delete raw;
  }
  cl.node(2).start();
  auto bad = cl.node(2).client()->post("/v1/shards/v/" + shard + "/verify", "");
  INFO(bad.body);
  REQUIRE(bad.status == 200);
  b = body(bad);
  CHECK_FALSE(b.at("match").as_bool());
  CHECK(b.at("kept").at("records") == b.at("scanned").at("records"));  // the same records, one value differs
  CHECK(b.at("kept").at("digest") != b.at("scanned").at("digest"));
  CHECK(cl.node(2).log().find("event=shard_verify_mismatch") != std::string::npos);

  // Bad requests.
  CHECK(c1->post("/v1/shards/nope/0/verify", "").status == 404);
  CHECK(c1->post("/v1/shards/v/99/verify", "").status == 404);
  CHECK(c1->get("/v1/shards/v/" + shard + "/verify").status == 405);
}

TEST_CASE("a node runs one full check at a time: a second one meanwhile is refused with 409") {
  cluster cl(1, {{1, {{"SHARDD_TEST_FAULTS", "verify_delay_ms=1500"}}}});
  auto c1 = cl.node(1).client();
  REQUIRE(c1->put("/v1/indexes/w", R"({"shards":1})").status == 201);
  REQUIRE(c1->put("/v1/indexes/w/records/a", R"({"n":1})").status < 300);
  net::client_response first;
  std::thread t([&] { first = cl.node(1).client()->post("/v1/shards/w/0/verify", ""); });
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  auto second = c1->post("/v1/shards/w/0/verify", "");
  t.join();
  CHECK(second.status == 409);
  CHECK(second.body.find("runs on node-1 already") != std::string::npos);
  REQUIRE(first.status == 200);
  CHECK(body(first).at("match").as_bool());
  CHECK(body(first).at("kept").at("records").as_int64() == 1);
  // Once it ended, the next one runs.
  CHECK(c1->post("/v1/shards/w/0/verify", "").status == 200);
}
