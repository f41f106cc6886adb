#pragma once
// Migration helpers for integration tests: start and watch moves, load and check records.

#include "support/cluster.hpp"
#include "support/json_body.hpp"

#include <boost/json/serialize.hpp>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <set>
#include <thread>

namespace shardd::test {

namespace json = boost::json;

/// A routing value whose records land in `shard` of `index`.
inline std::string routing_for(net::https_client& c, const std::string& index, std::int64_t shard) {
  for (int i = 0; i < 5000; ++i) {
    const auto r = "r" + std::to_string(i);
    if (body(c.get("/v1/ring/lookup?index=" + index + "&key=" + r)).at("shard").as_int64() == shard) return r;
  }
  FAIL("no routing value found for shard " << shard);
  return {};
}

/// A shard of `index` that `node` owns (the last one listed).
inline std::int64_t shard_on(net::https_client& c, const std::string& index, const std::string& node) {
  std::int64_t shard = -1;
  for (const auto& [s, n] : owners(c, index))
    if (n == node) shard = s;
  REQUIRE(shard >= 0);
  return shard;
}

inline json::object migration(net::https_client& c, const std::string& id) {
  auto r = c.get("/v1/migrations/" + id);
  REQUIRE(r.status == 200);
  return body(r).as_object();
}

/// Polls a migration until `done(record)` or the limit; returns the last record.
template <class Pred>
inline json::object wait_migration(net::https_client& c, const std::string& id, Pred done,
                            std::chrono::seconds limit = std::chrono::seconds(60)) {
  const auto until = std::chrono::steady_clock::now() + limit;
  json::object last;
  while (std::chrono::steady_clock::now() < until) {
    last = migration(c, id);
    if (done(last)) return last;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  FAIL("migration " << id << " did not get there; last: " << json::serialize(last));
  return last;
}

inline bool finished(const json::object& m) {
  const std::string p(m.at("phase").as_string());
  return p == "done" || p == "failed" || p == "cancelled" || p == "rolled_back";
}

inline std::string phase(const json::object& m) { return std::string(m.at("phase").as_string()); }

inline std::string start_migration(net::https_client& c, const std::string& index, std::int64_t shard, const std::string& target,
                            std::uint64_t max_bps = 0) {
  std::string body_text = R"({"target":")" + target + "\"";
  if (max_bps) body_text += R"(,"max_bytes_per_sec":)" + std::to_string(max_bps);
  body_text += "}";
  auto r = c.post("/v1/shards/" + index + "/" + std::to_string(shard) + "/migrate", body_text);
  INFO(r.body);
  REQUIRE(r.status == 202);
  return std::string(body(r).at("id").as_string());
}

/// A GET that must succeed once the cluster has settled: a node that was cut off or restarted
/// is "down" in the map until its next heartbeat, so a 503 for its shards is waited out (30 s
/// at most), not taken as the result.
inline net::client_response get_settled(net::https_client& c, const std::string& target) {
  auto r = c.get(target);
  for (int i = 0; i < 300 && r.status == 503; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    r = c.get(target);
  }
  INFO(target << ": " << r.body.substr(0, 2000));
  REQUIRE(r.status == 200);
  return r;
}

/// Every record of an index, key -> doc.n, read with a full scan.
inline std::map<std::string, std::int64_t> scan_all(net::https_client& c, const std::string& index) {
  std::map<std::string, std::int64_t> out;
  std::string cursor;
  for (int page = 0; page < 10000; ++page) {
    const auto target = "/v1/indexes/" + index + "/records?limit=5000" + (cursor.empty() ? "" : "&cursor=" + cursor);
    auto b = body(get_settled(c, target));
    for (const auto& rec : b.at("records").as_array()) {
      const std::string key(rec.at("key").as_string());
      REQUIRE(out.count(key) == 0);  // no duplicate
      out[key] = rec.at("doc").at("n").as_int64();
    }
    if (b.at("next_cursor").is_null()) break;
    cursor = std::string(b.at("next_cursor").as_string());
  }
  return out;
}

/// Loads `count` records under `routing` (all into one shard) and records them in `expected`.
inline void load(net::https_client& c, const std::string& index, const std::string& prefix, int count, const std::string& routing,
          std::size_t pad, std::map<std::string, std::int64_t>& expected) {
  for (int from = 0; from < count; from += 5000) {
    const int to = std::min(count, from + 5000);
    auto r = c.post("/v1/indexes/" + index + "/bulk", ndjson_puts(from, to, prefix, routing, pad));
    INFO(r.body.substr(0, 2000));
    REQUIRE(r.status == 200);
    REQUIRE(body(r).at("error_count").as_int64() == 0);
    for (int i = from; i < to; ++i) expected[prefix + std::to_string(i)] = i;
  }
}

/// A new index of `shards` shards with `count` records of `pad` bytes loaded into one shard
/// that `node` owns: that shard, and the routing value that lands there.
struct loaded_shard {
  std::int64_t shard = -1;
  std::string routing;
};
inline loaded_shard index_with_loaded_shard(net::https_client& c, const std::string& index, int shards, const std::string& node,
                                            int count, std::size_t pad, std::map<std::string, std::int64_t>& expected) {
  REQUIRE(c.put("/v1/indexes/" + index, R"({"shards":)" + std::to_string(shards) + "}").status == 201);
  loaded_shard out;
  out.shard = shard_on(c, index, node);
  out.routing = routing_for(c, index, out.shard);
  load(c, index, "k", count, out.routing, pad, expected);
  return out;
}

/// Writes records through `c` until stopped, remembering each acknowledged one, and the values
/// of the writes that failed (an answer lost or a timeout: they may have been applied).
struct writer {
  std::atomic<bool> stop{false};
  std::mutex mu;
  std::map<std::string, std::int64_t> acked;
  std::map<std::string, std::set<std::int64_t>> failed;
  std::atomic<int> failures{0};
  std::thread thread;

  /// `pace` above zero: one write per `pace` at most, so the shard's load does not depend on
  /// which node serves it (as long as a write takes less).
  /// `keys` non-empty: writes cycle through them (the prefix is unused).
  writer(std::unique_ptr<net::https_client> c, std::string index, std::string prefix, std::string routing = {},
         std::chrono::microseconds pace = std::chrono::microseconds(0), std::vector<std::string> keys = {})
      : thread([this, c = std::move(c), index, prefix, routing, pace, keys = std::move(keys)]() mutable {
          auto next = std::chrono::steady_clock::now();
          for (int i = 0; !stop; ++i) {
            if (pace.count() > 0) {
              next += pace;
              std::this_thread::sleep_until(next);
            }
            // Updates as well as creates.
            const auto key = keys.empty() ? prefix + std::to_string(i % 3000) : keys[static_cast<std::size_t>(i) % keys.size()];
            const auto target = "/v1/indexes/" + index + "/records/" + key + (routing.empty() ? "" : "?routing=" + routing);
            try {
              auto r = c->put(target, R"({"n":)" + std::to_string(i) + "}");
              if (r.status == 200 || r.status == 201) {
                std::lock_guard lock(mu);
                acked[key] = i;
              } else {
                ++failures;
                std::lock_guard lock(mu);
                failed[key].insert(i);
              }
            } catch (const std::exception&) {
              ++failures;
              std::lock_guard lock(mu);
              failed[key].insert(i);
            }
          }
        }) {}
  /// A test that ends early (a failed REQUIRE) still stops its writers.
  ~writer() {
    stop = true;
    if (thread.joinable()) thread.join();
  }
  void finish(std::map<std::string, std::int64_t>& expected) {
    stop = true;
    if (thread.joinable()) thread.join();
    for (const auto& [k, v] : acked) expected[k] = v;
  }
};


/// One key written with rising values and read back at the same time: a read counts as a
/// regression when it returns a value older than one acknowledged before the read began, or
/// older than one read before. A write that failed may still land late (its outcome is
/// unknown), so its value never counts. Threads other than the test's own only count: Catch's
/// checks are not thread-safe.
struct clock_check {
  std::atomic<bool> stop{false};
  std::atomic<std::int64_t> acked{-1};
  std::atomic<int> regressions{0}, reads{0};
  std::mutex mu;
  std::set<std::int64_t> failed;  ///< under mu
  std::thread writer_thread, reader_thread;

  clock_check(std::unique_ptr<net::https_client> wc, std::unique_ptr<net::https_client> rc, const std::string& index,
              const std::string& routing, std::string key = "clock") {
    const auto target = "/v1/indexes/" + index + "/records/" + key + "?routing=" + routing;
    writer_thread = std::thread([this, c = std::move(wc), target] {
      for (std::int64_t v = 0; !stop; ++v) {
        bool ok = false;
        try {
          ok = c->put(target, R"({"n":)" + std::to_string(v) + "}").status < 300;
        } catch (const std::exception&) {
        }
        if (ok) {
          acked = v;
        } else {
          std::lock_guard lock(mu);
          failed.insert(v);
        }
      }
    });
    reader_thread = std::thread([this, c = std::move(rc), target] {
      std::int64_t last = -1;
      while (!stop) {
        const auto floor = acked.load();
        try {
          auto r = c->get(target);
          if (r.status != 200) continue;
          const auto v = json::parse(r.body).at("doc").at("n").as_int64();
          ++reads;
          if (v < floor || v < last) {
            std::lock_guard lock(mu);
            if (!failed.count(v)) ++regressions;
          }
          last = std::max(last, v);
        } catch (const std::exception&) {
        }
      }
    });
  }
  /// Stops both threads; the key's last acknowledged value goes to `expected`, its failed
  /// writes to `unknown`.
  void finish(std::map<std::string, std::int64_t>& expected, std::map<std::string, std::set<std::int64_t>>& unknown,
              const std::string& key = "clock") {
    join();
    if (acked >= 0) expected[key] = acked;
    unknown[key].insert(failed.begin(), failed.end());
  }
  void join() {
    stop = true;
    if (writer_thread.joinable()) writer_thread.join();
    if (reader_thread.joinable()) reader_thread.join();
  }
  ~clock_check() { join(); }
};

/// The check that ends a case with writes of unknown outcome: every record in `expected` (the
/// loaded and the acknowledged ones) reads back with its value, or with the value of a write to
/// it that failed (which may have been applied, even after a later acknowledged one); any other
/// record is one whose only writes failed, with one of their values.
inline void verify_allowing(net::https_client& c, const std::string& index, const std::map<std::string, std::int64_t>& expected,
                            const std::map<std::string, std::set<std::int64_t>>& failed) {
  const auto got = scan_all(c, index);
  const auto maybe = [&](const std::string& k, std::int64_t v) {
    auto it = failed.find(k);
    return it != failed.end() && it->second.count(v) > 0;
  };
  std::size_t lost = 0, wrong = 0, stray = 0;
  std::string first_wrong;  // the first few, for the failure message
  for (const auto& [k, v] : expected) {
    auto it = got.find(k);
    if (it == got.end())
      ++lost;
    else if (it->second != v && !maybe(k, it->second) && ++wrong <= 5)
      first_wrong += k + ": acked " + std::to_string(v) + ", read " + std::to_string(it->second) + "; ";
  }
  INFO(first_wrong);
  for (const auto& [k, v] : got)
    if (!expected.count(k) && !maybe(k, v)) ++stray;
  INFO("records " << got.size() << ", expected " << expected.size() << ", writes of unknown outcome on " << failed.size()
                  << " keys");
  CHECK(lost == 0);
  CHECK(wrong == 0);
  CHECK(stray == 0);
  CHECK(body(get_settled(c, "/v1/indexes/" + index + "/count")).at("count").as_int64() == static_cast<std::int64_t>(got.size()));
}

/// The full count and content check that ends every case: verify_allowing with no write of
/// unknown outcome, so every record reads back as acknowledged and there is no other.
inline void verify(net::https_client& c, const std::string& index, const std::map<std::string, std::int64_t>& expected) {
  verify_allowing(c, index, expected, {});
}

}  // namespace shardd::test
