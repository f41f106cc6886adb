// What a member of the cluster may send to another: real processes, loopback, real mutual
// TLS, frames crafted with the members' own certificates.

#include "shardd/key_codec.hpp"
#include "shardd/migration.hpp"
#include "shardd/partition_map.hpp"
#include "shardd/routing.hpp"
#include "support/catch_result.hpp"
#include "support/cluster.hpp"
#include "support/json_body.hpp"
#include "support/migration_ops.hpp"
#include "support/peer_call.hpp"

#include <boost/asio/executor_work_guard.hpp>

#include <thread>

using namespace shardd;
using namespace shardd::test;

namespace {

peer::frame frame_of(peer::frame_type t, std::string payload) {
  peer::frame f;
  f.header.type = t;
  f.payload = std::move(payload);
  return f;
}

std::string tail_batch(const std::string& migration, const std::vector<std::string>& keys) {
  peer::data_batch_writer w(migration, 1);
  for (const auto& k : keys) w.add(0, k, "not a record");
  return w.finish("", 1);
}

}  // namespace

TEST_CASE("import requests are taken only from the shard's source, only for its keys and its range") {
  cluster cl(3);
  auto c1 = cl.node(1).client();
  std::map<std::string, std::int64_t> expected;
  const auto [shard, routing] = index_with_loaded_shard(*c1, "s", 3, "node-1", 6000, 300, expected);
  const auto id = start_migration(*c1, "s", shard, "node-2", 400'000);  // several seconds of copying
  wait_migration(*c1, id, [](const json::object& m) { return m.at("bytes_done").as_int64() > 0; });

  auto map = from_json(c1->get("/v1/partition-map").body);
  REQUIRE(map);
  const auto& ix = *map->find_index("s");
  const auto& moving = *ix.find_shard(static_cast<std::uint32_t>(shard));
  REQUIRE(moving.state == shard_state::migrating);
  const auto range = shard_storage_range(ix, moving);
  const auto inside = route_key(ix, "k1", routing).storage_key;
  // A record of another shard, on the import's target: what a stray batch could overwrite.
  std::string victim;
  for (int i = 0; i < 1000 && victim.empty(); ++i) {
    const auto key = "v" + std::to_string(i);
    const auto& s = ix.shards[route_key(ix, key).shard_pos];
    if (s.id != moving.id && s.owner == "node-2") victim = key;
  }
  REQUIRE(!victim.empty());
  REQUIRE(c1->put("/v1/indexes/s/records/" + victim, R"({"n":7})").status == 201);
  expected[victim] = 7;
  const auto victim_key = route_key(ix, victim).storage_key;
  const auto port2 = cl.node(2).peer_port();
  const peer::import_range whole{id, ix.id, moving.id, range.begin, range.end};

  // A member that is not the source may not send the shard's data, nor reset or digest it.
  CHECK(refusal(call_peer_as("node-3", port2, frame_of(peer::frame_type::data_batch, tail_batch(id, {inside})))) ==
        errc::forbidden);
  CHECK(refusal(call_peer_as("node-3", port2, frame_of(peer::frame_type::import_reset, peer::encode(whole)))) ==
        errc::forbidden);
  CHECK(refusal(call_peer_as("node-3", port2, frame_of(peer::frame_type::import_digest, peer::encode(whole)))) ==
        errc::forbidden);
  // The source may not reach outside the shard: a batch that strays, a reset of a wider range.
  CHECK(refusal(call_peer_as("node-1", port2, frame_of(peer::frame_type::data_batch, tail_batch(id, {inside, victim_key})))) ==
        errc::forbidden);
  auto wider = whole;
  wider.end = index_upper_bound(ix.id);
  CHECK(refusal(call_peer_as("node-1", port2, frame_of(peer::frame_type::import_reset, peer::encode(wider)))) ==
        errc::forbidden);
  // Data for a shard that is not moving here is refused (and may be retried with a newer map).
  CHECK(refusal(call_peer_as("node-1", port2, frame_of(peer::frame_type::data_batch, tail_batch(id, {victim_key})))) ==
        errc::unavailable);
  // A copy batch must be sorted: ingesting it whole relies on it.
  {
    peer::data_batch_writer w(id, 0);
    const auto other = route_key(ix, "k2", routing).storage_key;
    w.add(0, std::max(inside, other), "x");
    w.add(0, std::min(inside, other), "x");
    CHECK(refusal(call_peer_as("node-1", port2, frame_of(peer::frame_type::data_batch, w.finish("", 0)))) ==
          errc::invalid_argument);
  }
  // The network thread reads a batch's head only (it names the shard); the import decodes and
  // checks every record on the migration pool. A good head does not carry a bad body through:
  // a copy batch that strays after its first key, and one cut short after its first record.
  {
    peer::data_batch_writer w(id, 0);
    w.add(0, inside, "x");
    w.add(0, victim_key, "x");
    CHECK(refusal(call_peer_as("node-1", port2, frame_of(peer::frame_type::data_batch, w.finish("", 0)))) ==
          errc::forbidden);
  }
  {
    peer::data_batch_writer w(id, 0);
    w.add(0, inside, std::string(40, 'a'));
    w.add(0, inside + "z", std::string(40, 'b'));
    auto cut = w.finish("", 0);
    cut.resize(cut.size() - 12 - 20);  // the trailer (empty cursor, sequence) and half the second value
    REQUIRE(peer::peek_data_batch(cut));
    REQUIRE(peer::peek_data_batch(cut)->first_key == inside);
    CHECK(refusal(call_peer_as("node-1", port2, frame_of(peer::frame_type::data_batch, cut))) ==
          errc::invalid_argument);
  }
  CHECK(refusal(call_peer_as("node-3", port2, frame_of(peer::frame_type::data_batch, "\x01\x02"))) == errc::invalid_argument);

  // None of it touched anything: the move finishes and every record reads back as written.
  auto m = wait_migration(*c1, id, finished, std::chrono::seconds(90));
  CHECK(phase(m) == "done");
  CHECK(owners(*c1, "s")[shard] == "node-2");
  CHECK(body(c1->get("/v1/indexes/s/records/" + victim)).at("doc").at("n").as_int64() == 7);
  verify(*c1, "s", expected);
}

namespace {

std::uint64_t map_version(net::https_client& c) {
  return static_cast<std::uint64_t>(body(c.get("/v1/partition-map")).at("version").as_int64());
}

std::string index_names(net::https_client& c) {
  std::string out;
  const auto map = body(c.get("/v1/partition-map"));
  for (const auto& ix : map.at("indexes").as_array()) out += std::string(ix.at("name").as_string()) + ",";
  return out;
}

}  // namespace

TEST_CASE("a member with a valid certificate cannot act outside its role: maps, commits, reports, starts, forwards") {
  cluster cl(3);
  auto c1 = cl.node(1).client();
  // A move node-2 → node-3, so that the source is not the controller (node-1).
  std::map<std::string, std::int64_t> expected;
  const auto shard = index_with_loaded_shard(*c1, "h", 6, "node-2", 6000, 300, expected).shard;
  const auto id = start_migration(*c1, "h", shard, "node-3", 400'000);
  wait_migration(*c1, id, [](const json::object& m) { return phase(m) == "copying" && m.at("bytes_done").as_int64() > 0; });
  const auto version = map_version(*c1);
  const auto indexes = index_names(*c1);
  const auto port1 = cl.node(1).peer_port(), port2 = cl.node(2).peer_port();

  // map_push: a member that makes itself controller and drops the index, or pushes a map
  // that names the real controller.
  auto map = from_json(c1->get("/v1/partition-map").body);
  REQUIRE(map);
  auto forged = *map;
  forged.version += 100;
  forged.controller = "node-3";
  forged.indexes.clear();
  CHECK(refusal(call_peer_as("node-3", port2, frame_of(peer::frame_type::map_push, to_json(forged)))) == errc::forbidden);
  forged.controller = "node-1";
  CHECK(refusal(call_peer_as("node-3", port2, frame_of(peer::frame_type::map_push, to_json(forged)))) == errc::forbidden);

  // migrate_commit: from a member that is not the source; from the source while it copies.
  const auto commit = peer::encode(peer::migrate_control{id, "commit"});
  CHECK(refusal(call_peer_as("node-3", port1, frame_of(peer::frame_type::migrate_commit, commit))) == errc::forbidden);
  CHECK(refusal(call_peer_as("node-2", port1, frame_of(peer::frame_type::migrate_commit, commit))) == errc::conflict);
  // migrate_report from a member that is not the source (claiming to be it in the payload).
  migration_record fake;
  fake.id = id;
  fake.index = "h";
  fake.shard = static_cast<std::uint32_t>(shard);
  fake.source = "node-2";
  fake.target = "node-3";
  fake.phase = migration_phase::rolled_back;
  fake.error = "forged";
  CHECK(refusal(call_peer_as("node-3", port1, frame_of(peer::frame_type::migrate_report, to_json(fake)))) == errc::forbidden);
  // migrate_start and migrate_control come only from the controller.
  CHECK(refusal(call_peer_as("node-3", port2, frame_of(peer::frame_type::migrate_control,
                                                      peer::encode(peer::migrate_control{id, "cancel"})))) == errc::forbidden);
  auto start = fake;
  start.id = "m999";
  start.phase = migration_phase::queued;
  CHECK(refusal(call_peer_as("node-3", port2, frame_of(peer::frame_type::migrate_start, to_json(start)))) == errc::forbidden);
  // join and heartbeat go to the controller only.
  CHECK(refusal(call_peer_as("node-3", port2, frame_of(peer::frame_type::heartbeat,
                                                      peer::encode(peer::heartbeat{"node-3", version, 0, 0, 0})))) == errc::conflict);
  // A node that is not a member may not forward, write, scan, ask for stats or the map.
  const auto fwd = peer::encode(peer::forward_request{"DELETE", "/v1/indexes/h", "", ""});
  CHECK(refusal(call_peer_as("node-5", port2, frame_of(peer::frame_type::forward, fwd))) == errc::forbidden);
  CHECK(refusal(call_peer_as("node-5", port2, frame_of(peer::frame_type::node_stats, ""))) == errc::forbidden);
  CHECK(refusal(call_peer_as("node-5", port2, frame_of(peer::frame_type::map_get, ""))) == errc::forbidden);
  // A ping: answered for a member, refused for anyone else and with anything in it.
  auto pong = call_peer_as("node-3", port2, frame_of(peer::frame_type::ping, ""));
  REQUIRE(pong);
  CHECK(pong->header.type == peer::frame_type::ack);
  CHECK(refusal(call_peer_as("node-5", port2, frame_of(peer::frame_type::ping, ""))) == errc::forbidden);
  CHECK(refusal(call_peer_as("node-3", port2, frame_of(peer::frame_type::ping, "xyz"))) == errc::invalid_argument);
  CHECK(refusal(call_peer_as("node-5", port1, frame_of(peer::frame_type::write_ops,
                                                      peer::encode(peer::write_request{map->find_index("h")->id, {}})))) ==
        errc::forbidden);

  // Nothing changed: the same map, the same indexes; the move goes on and finishes.
  CHECK(map_version(*c1) == version);
  CHECK(index_names(*c1) == indexes);
  CHECK(cl.node(2).log().find("event=peer_frame_refused") != std::string::npos);
  auto m = wait_migration(*c1, id, finished, std::chrono::seconds(90));
  CHECK(phase(m) == "done");
  CHECK(m.at("error").as_string() != "forged");
  CHECK(owners(*c1, "h")[shard] == "node-3");
  verify(*c1, "h", expected);
}

TEST_CASE("a node that has left may no longer forward requests") {
  cluster cl(2);
  auto c1 = cl.node(1).client();
  REQUIRE(c1->put("/v1/rebalance/settings", R"({"mode":"off"})").status == 200);
  cl.add();  // node-3, which gets no shards
  REQUIRE(c1->put("/v1/indexes/l", R"({"shards":2})").status == 201);
  REQUIRE(c1->put("/v1/indexes/l/records/a", R"({"n":1})").status == 201);
  const auto fwd = peer::encode(peer::forward_request{"GET", "/v1/indexes/l/records/a", "", ""});
  const std::string owner(body(c1->get("/v1/ring/lookup?index=l&key=a")).at("owner").as_string());
  auto& owner_node = cl.node(owner == "node-1" ? 1 : 2);
  // A member forwards to the owner; the answer is the record.
  auto before = call_peer_as("node-3", owner_node.peer_port(), frame_of(peer::frame_type::forward, fwd));
  REQUIRE(refusal(before) == errc::ok);
  CHECK(before->header.type == peer::frame_type::forward_reply);
  REQUIRE(c1->post("/v1/cluster/nodes/node-3/decommission", "").status == 202);
  cl.wait_states({"up", "up", "left"});
  auto after = call_peer_as("node-3", owner_node.peer_port(), frame_of(peer::frame_type::forward, fwd));
  CHECK(refusal(after) == errc::forbidden);
}

TEST_CASE("a reply whose body does not match its checksum fails its request, and the connection goes on") {
  // A peer server in this process answers a ping whose payload is "damage" with a reply
  // damaged after its checksum was taken, and any other ping with a sound one.
  boost::asio::io_context server_ioc;
  tls_config server_tls{test_certs().cert("node-2"), test_certs().key("node-2"), test_certs().ca()};
  net::peer_handler handler = [](peer::frame req, std::string) -> boost::asio::awaitable<peer::frame> {
    peer::frame out = frame_of(peer::frame_type::ack, "ack:" + req.payload);
    out.header.flags = peer::flag_checksummed;
    out.corrupt_after_checksum = req.payload == "damage";
    co_return out;
  };
  net::peer_server server(server_ioc, server_tls, net::peer_identity{"shardd", "node-2"}, handler);
  const auto port = free_port();
  server.start(host_port{"127.0.0.1", port});
  std::thread server_thread([&] {
    auto guard = boost::asio::make_work_guard(server_ioc);
    server_ioc.run();
  });
  // One client, one connection, three requests in turn.
  boost::asio::io_context ioc;
  tls_config tls{test_certs().cert("node-1"), test_certs().key("node-1"), test_certs().ca()};
  net::peer_client client(ioc, tls, net::peer_identity{"shardd", "node-1"});
  auto ask = [&](std::string payload) {
    auto fut = boost::asio::co_spawn(
        ioc, client.call("node-2", "127.0.0.1:" + std::to_string(port), frame_of(peer::frame_type::ping, std::move(payload)),
                         std::chrono::seconds(5)),
        boost::asio::use_future);
    while (fut.wait_for(std::chrono::seconds(0)) != std::future_status::ready) ioc.run_one_for(std::chrono::milliseconds(50));
    return fut.get();
  };
  auto sound = ask("one");
  REQUIRE(sound);
  CHECK(sound->payload == "ack:one");
  auto damaged = ask("damage");
  REQUIRE(!damaged);
  CHECK(damaged.error().code == errc::corrupt);
  CHECK(damaged.error().detail.find("checksum mismatch in the ack reply") != std::string::npos);
  auto after = ask("two");
  REQUIRE(after);
  CHECK(after->payload == "ack:two");
  server.stop();
  server_ioc.stop();
  server_thread.join();
}
