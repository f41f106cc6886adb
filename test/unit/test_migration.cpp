#include "shardd/digest.hpp"
#include "shardd/migration.hpp"
#include "shardd/throttle.hpp"

#include "support/catch_result.hpp"

#include <algorithm>
#include <random>

using namespace shardd;
using fsm = migration_fsm;
using E = fsm::event_kind;
using A = fsm::action_kind;
using P = migration_phase;

namespace {

fsm::event ev(E k) {
  fsm::event e;
  e.kind = k;
  return e;
}
fsm::event acked(std::string cursor, std::uint64_t bytes = 100, std::uint64_t seq = 0) {
  fsm::event e;
  e.kind = E::batch_acked;
  e.cursor = std::move(cursor);
  e.bytes = bytes;
  e.records = 1;
  e.seq = seq;
  return e;
}
fsm::event tail(std::uint64_t ops) {
  fsm::event e;
  e.kind = E::tail_round;
  e.ops = ops;
  return e;
}
fsm::event verified(bool match) {
  fsm::event e;
  e.kind = E::verified;
  e.match = match;
  return e;
}
fsm::event recovered(bool committed = false) {
  fsm::event e;
  e.kind = E::recovered;
  e.match = committed;
  return e;
}

std::vector<A> kinds(const std::vector<fsm::action>& actions) {
  std::vector<A> out;
  for (const auto& a : actions) out.push_back(a.kind);
  return out;
}

bool has(const std::vector<fsm::action>& actions, A k) {
  return std::any_of(actions.begin(), actions.end(), [&](const fsm::action& a) { return a.kind == k; });
}

// A machine driven to `phase` along the normal path.
fsm at(P phase) {
  fsm m;
  (void)m.on(ev(E::start));
  m.set_snapshot_seq(10);
  (void)m.on(acked("k1"));
  if (phase == P::copying) return m;
  (void)m.on(ev(E::copy_finished));
  (void)m.on(acked("", 50, 20));
  if (phase == P::catching_up) return m;
  (void)m.on(tail(3));
  if (phase == P::verifying) return m;
  (void)m.on(verified(true));
  if (phase == P::cutover) return m;
  (void)m.on(ev(E::fence_ready));
  (void)m.on(ev(E::committed));
  return m;  // retiring
}

}  // namespace

TEST_CASE("the normal path goes queued, copying, catching_up, verifying, cutover, retiring, done") {
  fsm m;
  CHECK(m.current().phase == P::queued);
  CHECK(kinds(m.on(ev(E::start))) == std::vector<A>{A::persist, A::copy_from_start});
  m.set_snapshot_seq(7);
  auto a = m.on(acked("key-9", 1000));
  CHECK(kinds(a) == std::vector<A>{A::persist, A::send_next});
  CHECK(m.current().cursor == "key-9");
  CHECK(m.current().bytes_done == 1000);
  auto f = m.on(ev(E::copy_finished));
  CHECK(m.current().phase == P::catching_up);
  REQUIRE(has(f, A::tail));
  CHECK(f.back().seq == 7);  // the tail starts at the snapshot
  (void)m.on(acked("", 10, 30));
  CHECK(m.current().tail_seq == 30);
  CHECK(kinds(m.on(tail(50000))) == std::vector<A>{A::tail});  // a big round: another one
  CHECK(m.current().phase == P::catching_up);
  auto v = m.on(tail(12));
  CHECK(m.current().phase == P::verifying);
  CHECK(has(v, A::verify));
  CHECK(kinds(m.on(verified(true))) == std::vector<A>{A::persist, A::fence});
  CHECK(m.current().phase == P::cutover);
  CHECK(kinds(m.on(ev(E::fence_ready))) == std::vector<A>{A::commit});
  CHECK(kinds(m.on(ev(E::committed))) == std::vector<A>{A::persist, A::retire});
  CHECK(m.current().phase == P::retiring);
  CHECK(kinds(m.on(ev(E::retired))) == std::vector<A>{A::persist});
  CHECK(m.current().phase == P::done);
  CHECK(m.on(ev(E::cancel)).empty());  // final states ignore everything
}

TEST_CASE("a lost peer in every phase continues where it was, and gives up after the limit") {
  for (P phase : {P::copying, P::catching_up, P::verifying, P::cutover, P::retiring}) {
    INFO(to_string(phase));
    auto m = at(phase);
    REQUIRE(m.current().phase == phase);
    fsm::event lost = ev(E::peer_failed);
    lost.reason = "connection refused";
    auto a = m.on(lost);
    CHECK(m.current().phase == phase);
    REQUIRE(a.size() == 1);
    switch (phase) {
      case P::copying:
        CHECK(a[0].kind == A::copy_from_cursor);
        CHECK(a[0].cursor == "k1");  // resumes after the last acknowledged key
        break;
      case P::catching_up: CHECK(a[0] == fsm::action(A::tail, {}, 20)); break;
      case P::verifying: CHECK(a[0].kind == A::verify); break;
      case P::cutover: CHECK(a[0].kind == A::fence); break;
      default: CHECK(a[0].kind == A::retire); break;
    }
    std::vector<fsm::action> last;
    for (int i = 0; i < 10 && !is_final(m.current().phase); ++i) last = m.on(lost);
    CHECK(m.current().phase == P::rolled_back);
    CHECK(has(last, A::rollback));
    CHECK(has(last, A::unfence) == (phase == P::cutover));
    CHECK(m.current().error.find("connection refused") != std::string::npos);
  }
}

TEST_CASE("a batch refused for its checksum is sent again from the last acknowledged key") {
  auto m = at(P::copying);
  fsm::event bad = ev(E::checksum_failed);
  bad.reason = "batch 3";
  auto a = m.on(bad);
  REQUIRE(a.size() == 1);
  CHECK(a[0] == fsm::action(A::copy_from_cursor, "k1"));
  CHECK(m.current().phase == P::copying);
  auto c = at(P::catching_up);
  CHECK(c.on(bad) == std::vector<fsm::action>{fsm::action(A::tail, {}, 20)});
}

TEST_CASE("an ack resets the failure count, so only failures in a row give up") {
  auto m = at(P::copying);
  for (int i = 0; i < 50; ++i) {
    (void)m.on(ev(E::peer_failed));
    (void)m.on(acked("k" + std::to_string(i)));
  }
  CHECK(m.current().phase == P::copying);
}

TEST_CASE("a digest mismatch copies everything again, up to a limit") {
  auto m = at(P::verifying);
  auto a = m.on(verified(false));
  CHECK(kinds(a) == std::vector<A>{A::persist, A::copy_from_start});
  CHECK(m.current().phase == P::copying);
  CHECK(m.current().cursor.empty());
  CHECK(m.current().bytes_done == 0);
  CHECK(m.current().recopies == 1);
  for (int i = 0; i < 3; ++i) {
    (void)m.on(ev(E::copy_finished));
    (void)m.on(tail(0));
    a = m.on(verified(false));
  }
  CHECK(m.current().phase == P::rolled_back);
  CHECK(has(a, A::rollback));
  CHECK(m.current().error.find("digests differed") != std::string::npos);
}

TEST_CASE("cancel rolls back before the commit and is refused after it") {
  for (P phase : {P::queued, P::copying, P::catching_up, P::verifying, P::cutover}) {
    INFO(to_string(phase));
    fsm m = phase == P::queued ? fsm{} : at(phase);
    auto a = m.on(ev(E::cancel));
    CHECK(m.current().phase == P::cancelled);
    CHECK(has(a, A::rollback));
    CHECK(has(a, A::unfence) == (phase == P::cutover));
  }
  auto late = at(P::retiring);
  CHECK(late.on(ev(E::cancel)).empty());
  CHECK(late.current().phase == P::retiring);
}

TEST_CASE("a refused commit releases the fence and rolls back") {
  auto m = at(P::cutover);
  fsm::event r = ev(E::commit_refused);
  r.reason = "cancelled by operator";
  auto a = m.on(r);
  CHECK(kinds(a) == std::vector<A>{A::unfence, A::rollback, A::persist});
  CHECK(m.current().phase == P::cancelled);
}

TEST_CASE("pause stops sending, resume carries on from the same place") {
  auto m = at(P::copying);
  CHECK(kinds(m.on(ev(E::pause))) == std::vector<A>{A::stop_sending, A::persist});
  CHECK(m.current().paused);
  CHECK(kinds(m.on(acked("k2"))) == std::vector<A>{A::persist, A::stop_sending});  // in-flight ack
  auto r = m.on(ev(E::resume));
  CHECK(kinds(r) == std::vector<A>{A::persist, A::copy_from_cursor});
  CHECK(r[1].cursor == "k2");
  auto c = at(P::cutover);
  CHECK(c.on(ev(E::pause)).empty());  // the fence is short: no pausing it
}

TEST_CASE("after a restart of the source each phase resumes from its persisted state") {
  for (P phase : {P::copying, P::catching_up, P::verifying, P::cutover, P::retiring}) {
    INFO(to_string(phase));
    auto before = at(phase);
    auto persisted = fsm_state_from_json(to_json(before.current()));
    REQUIRE(persisted);
    CHECK(*persisted == before.current());
    fsm m(*persisted, {});
    auto a = m.on(recovered(false));
    CHECK(m.current().resumes == 1);
    switch (phase) {
      case P::copying: CHECK(a.back() == fsm::action(A::copy_from_cursor, "k1")); break;
      case P::catching_up: CHECK(a.back() == fsm::action(A::tail, {}, 20)); break;
      case P::verifying: CHECK(a.back().kind == A::verify); break;
      case P::cutover:
        // The fence was lost with the process: catch up again before fencing anew.
        CHECK(m.current().phase == P::catching_up);
        CHECK(a.back() == fsm::action(A::tail, {}, 20));
        break;
      default: CHECK(a.back().kind == A::retire); break;
    }
  }
  fsm committed(at(P::cutover).current(), {});
  auto a = committed.on(recovered(true));
  CHECK(committed.current().phase == P::retiring);
  CHECK(a.back().kind == A::retire);
}

TEST_CASE("migration records and states survive their JSON form") {
  migration_record r;
  r.id = "m-7";
  r.index = "users";
  r.index_id = 3;
  r.shard = 12;
  r.source = "node-1";
  r.target = "node-2";
  r.priority = migration_priority::high;
  r.phase = P::catching_up;
  r.bytes_done = 1 << 20;
  r.error = "x";
  auto back = migration_from_json(to_json(r));
  REQUIRE(back);
  CHECK(*back == r);
  CHECK(!migration_from_json(R"({"id":"m"})"));
  CHECK(!fsm_state_from_json(R"({"phase":"flying","cursor":""})"));
  fsm::state s;
  s.cursor = std::string("\0\1\xff", 3);  // binary storage keys survive
  auto sb = fsm_state_from_json(to_json(s));
  REQUIRE(sb);
  CHECK(sb->cursor == s.cursor);
}

TEST_CASE("a range digest is order-independent and sensitive to every record") {
  std::mt19937 rng(3);
  std::vector<std::pair<std::string, std::string>> recs;
  for (int i = 0; i < 500; ++i) recs.emplace_back("k" + std::to_string(i), std::string(rng() % 50, 'v'));
  range_digest a, b;
  for (const auto& [k, v] : recs) a.add(k, v);
  std::shuffle(recs.begin(), recs.end(), rng);
  for (const auto& [k, v] : recs) b.add(k, v);
  CHECK(a == b);
  CHECK(a.count() == 500);
  range_digest c = b;
  c.add("extra", "1");
  CHECK(!(c == a));
  range_digest d;  // a changed value
  for (const auto& [k, v] : recs) d.add(k, k == "k7" ? v + "!" : v);
  CHECK(d.count() == a.count());
  CHECK(!(d == a));
  range_digest twice;  // unlike XOR, a record added twice does not cancel
  twice.add("k", "v");
  twice.add("k", "v");
  range_digest none;
  none.merge(range_digest{});
  CHECK(twice.sum_hex() != none.sum_hex());
  range_digest left, right;  // merging halves equals the whole
  for (std::size_t i = 0; i < recs.size(); ++i) (i % 2 ? left : right).add(recs[i].first, recs[i].second);
  left.merge(right);
  CHECK(left == a);
  CHECK(range_digest::from(a.count(), a.limbs()) == a);
  // Removal undoes an add, in any order, across carries and borrows of the 256-bit sum.
  range_digest e = a;
  for (const auto& [k, v] : recs)
    if (k.size() % 2) e.remove(k, v);
  range_digest odd;
  for (const auto& [k, v] : recs)
    if (k.size() % 2) odd.add(k, v);
  range_digest even = a;
  even.subtract(odd);
  CHECK(e == even);
  e.merge(odd);
  CHECK(e == a);
  range_digest gone = a;
  for (const auto& [k, v] : recs) gone.remove(k, v);
  CHECK(gone == range_digest{});
  range_digest under;  // below zero wraps modulo 2^256 and comes back
  under.remove("k", "v");
  under.add("k", "v");
  CHECK(under == range_digest{});
}

TEST_CASE("a token bucket holds a sender to its rate") {
  using clock = token_bucket::clock;
  token_bucket b(1'000'000, 100'000);  // 1 MB/s, 100 kB burst
  auto now = clock::time_point{};
  std::uint64_t sent = 0;
  // A sender that sends 64 kB and sleeps as told, for 5 simulated seconds.
  const auto start = now;
  while (now - start < std::chrono::seconds(5)) {
    now += b.take(65536, now);
    sent += 65536;
  }
  const double secs = std::chrono::duration<double>(now - start).count();
  CHECK(static_cast<double>(sent) / secs == Approx(1'000'000).epsilon(0.05));
  token_bucket unlimited;
  CHECK(unlimited.take(1u << 30, now) == std::chrono::nanoseconds(0));
}

TEST_CASE("the adaptive limit halves while the foreground p99 is over its bound, holds near it, and lifts when calm") {
  // A node whose foreground p99 grows with the migration rate: 2 ms + 1 ms per 10 MB/s.
  auto p99_at = [](std::uint64_t rate) { return std::uint64_t{2000} + rate / 10'000; };
  const std::uint64_t bound = 10'000, floor = 1'000'000;  // 10 ms; 1 MB/s
  adaptive_rate a;
  std::uint64_t rate = 200'000'000;  // moves run at 200 MB/s (p99 22 ms) with no cap
  std::vector<std::uint64_t> seen;
  for (int step = 0; step < 40; ++step) {
    const auto limit = a.update(p99_at(rate), bound, floor, 0, rate);
    if (limit) rate = limit;
    seen.push_back(limit);
  }
  CHECK(seen[0] == 100'000'000);  // the first cut halves what moves reached
  CHECK(seen[1] == 50'000'000);
  CHECK(a.limit() >= floor);
  CHECK(p99_at(a.limit()) <= bound);   // it settles under the bound...
  CHECK(a.limit() >= 30'000'000);      // ...not far below it (80 MB/s is the bound's rate)
  CHECK(seen[38] == seen[39]);         // and holds there
  // Never below the floor, however bad the foreground.
  adaptive_rate b;
  for (int i = 0; i < 50; ++i) b.update(1'000'000, bound, floor, 0, 50'000'000);
  CHECK(b.limit() == floor);
  // Calm (or no foreground at all) raises it back, and it is lifted at the cap...
  for (int i = 0; i < 40 && b.limit(); ++i) b.update(std::nullopt, bound, floor, 8'000'000, 0);
  CHECK(b.limit() == 0);
  // ...or, with no cap, at the rate moves reached before the first cut.
  adaptive_rate c;
  c.update(bound + 1, bound, floor, 0, 40'000'000);
  CHECK(c.limit() == 20'000'000);
  int steps = 0;
  while (c.limit() && steps < 100) c.update(bound / 2, bound, floor, 0, c.limit()), ++steps;
  CHECK(c.limit() == 0);
  CHECK(steps == 4);  // 20 -> 25 -> 31.25 -> 39.06 -> 48.8 (lifted)
  // Which limit holds a move back: the lowest rate among those set.
  CHECK(binding_limit(0, 0, 0, 1) == rate_limit::none);
  CHECK(binding_limit(5'000'000, 0, 0, 1) == rate_limit::move_cap);
  CHECK(binding_limit(5'000'000, 4'000'000, 0, 1) == rate_limit::node_cap);
  CHECK(binding_limit(5'000'000, 4'000'000, 6'000'000, 2) == rate_limit::adaptive);  // 3 MB/s each
  CHECK(to_string(rate_limit::adaptive) == "adaptive");
}

TEST_CASE("priority shares give high four times low, and a lone class everything") {
  using clock = token_bucket::clock;
  const auto t = clock::time_point{};
  priority_shares s(10'000'000);
  s.activate(migration_priority::low, t);
  CHECK(s.rate_of(migration_priority::low) == 10'000'000);
  s.activate(migration_priority::high, t);
  CHECK(s.rate_of(migration_priority::high) == 8'000'000);
  CHECK(s.rate_of(migration_priority::low) == 2'000'000);
  s.activate(migration_priority::normal, t);
  CHECK(s.rate_of(migration_priority::normal) == 10'000'000 * 2 / 7);
  s.deactivate(migration_priority::high, t);
  s.deactivate(migration_priority::normal, t);
  CHECK(s.rate_of(migration_priority::low) == 10'000'000);
  priority_shares unlimited(0);
  CHECK(unlimited.take(migration_priority::low, 1u << 30, t) == std::chrono::nanoseconds(0));
}

TEST_CASE("progress counts bytes while copying and is whole once the data is across, also for an empty shard") {
  migration_record r;
  r.phase = migration_phase::queued;
  CHECK(migration_progress(r) == 0.0);
  r.phase = migration_phase::copying;
  r.bytes_total = 1000;
  r.bytes_done = 500;
  CHECK(migration_progress(r) == 0.5);
  r.bytes_done = 1500;  // writes during the move add to what is sent
  CHECK(migration_progress(r) == 1.0);
  r.bytes_done = 250;
  r.phase = migration_phase::cancelled;
  CHECK(migration_progress(r) == 0.25);  // how far it got
  migration_record empty;
  for (auto p : {migration_phase::verifying, migration_phase::cutover, migration_phase::retiring, migration_phase::done}) {
    empty.phase = p;
    CHECK(migration_progress(empty) == 1.0);
  }
  empty.phase = migration_phase::rolled_back;
  CHECK(migration_progress(empty) == 0.0);
}

TEST_CASE("a source's persisted state round-trips, and malformed state is an error, never an exception") {
  outgoing_state s;
  s.record.id = "m7";
  s.record.index = "users";
  s.record.source = "node-1";
  s.record.target = "node-2";
  s.record.phase = migration_phase::catching_up;
  s.fsm.phase = migration_phase::catching_up;
  s.fsm.cursor = std::string("\0\x01key", 5);
  s.fsm.tail_seq = 99;
  auto back = outgoing_state_from_json(to_json(s));
  REQUIRE(back);
  CHECK(*back == s);
  const std::string rec = to_json(s.record), fsm = to_json(s.fsm);
  for (const std::string& bad : {std::string("not json"), std::string(""), std::string("[]"), std::string("{}"),
                                std::string("{\"record\":1,\"fsm\":") + fsm + "}",
                                std::string("{\"record\":") + rec + "}",
                                std::string("{\"record\":") + rec + ",\"fsm\":{\"phase\":\"sideways\"}}",
                                std::string("{\"record\":") + rec + ",\"fsm\":" + fsm + ",\"x\":1}",
                                std::string("{\"record\":") + rec + ",\"fsm\":" + fsm}) {
    INFO(bad);
    CHECK_FALSE(outgoing_state_from_json(bad));
  }
}
