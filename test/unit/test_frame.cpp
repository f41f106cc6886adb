#include "shardd/frame.hpp"

#include "shardd/batch_codec.hpp"
#include "shardd/buffer_pool.hpp"
#include "shardd/key_codec.hpp"

#include "support/catch_result.hpp"

#include <cmath>
#include <random>

using namespace shardd;
using namespace shardd::peer;

namespace {

frame make(frame_type t, std::string payload, std::uint8_t flags = 0) {
  frame f;
  f.header.type = t;
  f.header.flags = flags;
  f.header.request_id = 0x0102030405060708ULL;
  f.header.map_version = 42;
  f.payload = std::move(payload);
  return f;
}

}  // namespace

TEST_CASE("CRC32C matches the published check value") {
  CHECK(crc32c("123456789") == 0xe3069283u);
  CHECK(crc32c("") == 0);
  // Incremental: crc of a whole equals crc continued over its parts.
  CHECK(crc32c("6789", crc32c("12345")) == crc32c("123456789"));
}

TEST_CASE("a frame encodes to a 24-byte header and its payload") {
  auto bytes = encode(make(frame_type::forward, "abc"));
  REQUIRE(bytes.size() == 27);
  CHECK(bytes.substr(0, 4) == std::string("\0\0\0\x1b", 4));
  CHECK(static_cast<std::uint8_t>(bytes[4]) == 20);
  CHECK(bytes.substr(24) == "abc");
}

TEST_CASE("frames round-trip through the stream decoder, split at every byte") {
  std::string stream;
  std::vector<frame> sent = {make(frame_type::hello, "{}"), make(frame_type::data_batch, std::string(1000, 'x'), flag_checksummed),
                             make(frame_type::heartbeat, ""), make(frame_type::scan_reply, std::string("\0\1\2", 3))};
  for (const auto& f : sent) stream += encode(f);
  for (std::size_t chunk : {1u, 7u, 24u, 100u, 5000u}) {
    frame_decoder d;
    std::vector<frame> got;
    for (std::size_t i = 0; i < stream.size(); i += chunk) {
      d.feed(std::string_view(stream).substr(i, chunk));
      for (;;) {
        auto r = d.next();
        REQUIRE(r);
        if (!*r) break;
        got.push_back(std::move(**r));
      }
    }
    REQUIRE(got.size() == sent.size());
    for (std::size_t i = 0; i < sent.size(); ++i) {
      CHECK(got[i].header.type == sent[i].header.type);
      CHECK(got[i].header.request_id == sent[i].header.request_id);
      CHECK(got[i].header.map_version == 42);
      CHECK(got[i].payload == sent[i].payload);
    }
    CHECK(d.buffered() == 0);
  }
}

TEST_CASE("a flipped bit in a checksummed payload marks the frame corrupt and the stream goes on") {
  auto bytes = encode(make(frame_type::data_batch, "records from storage", flag_checksummed));
  const auto next = encode(make(frame_type::ack, ""));
  for (std::size_t i = header_bytes; i < bytes.size(); ++i) {
    auto bad = bytes;
    bad[i] ^= 0x10;
    frame_decoder d;
    d.feed(bad + next);
    auto r = d.next();
    REQUIRE(r);
    REQUIRE(*r);
    CHECK((*r)->corrupt);
    auto after = d.next();  // framing was intact: the following frame decodes
    REQUIRE(after);
    REQUIRE(*after);
    CHECK((*after)->header.type == frame_type::ack);
    CHECK(!(*after)->corrupt);
  }
  frame_decoder d;
  d.feed(bytes);
  auto good = d.next();
  REQUIRE(good);
  CHECK(!(*good)->corrupt);
}

TEST_CASE("a checksum computed where the payload was built gives the same frame, and a wrong one is caught") {
  const std::string body(100000, 'r');
  for (const bool room : {false, true}) {
    const std::string payload = room ? std::string(header_bytes, '\0') + body : body;
    auto plain = make(frame_type::data_batch, payload, flag_checksummed);
    plain.header_room = room;
    auto given = plain;
    given.checksum = crc32c(body);
    CHECK(encode(given) == encode(plain));
    CHECK(encode(std::move(given)) == encode(plain));
    // A checksum that is not the payload's: the receiver marks the frame corrupt.
    auto wrong = plain;
    wrong.checksum = crc32c(body) ^ 1u;
    frame_decoder d;
    d.feed(encode(std::move(wrong)));
    auto r = d.next();
    REQUIRE(r);
    REQUIRE(*r);
    CHECK((*r)->corrupt);
    CHECK((*r)->payload.size() == body.size());
  }
}

TEST_CASE("a checksum left for the receiver to check later is caught then, and only then") {
  const std::string body(300000, 'r');
  const auto bytes = encode(make(frame_type::data_batch, body, flag_checksummed));
  const auto h = decode_header(std::span(reinterpret_cast<const std::uint8_t*>(bytes.data()), header_bytes), default_max_frame_bytes);
  REQUIRE(h);
  auto good = finish_frame(*h, bytes.substr(header_bytes), true);
  REQUIRE(good);
  CHECK(good->checksum_deferred);
  CHECK_FALSE(good->corrupt);
  CHECK(good->payload == body);  // the checksum is stripped
  CHECK(payload_intact(*good));
  for (const std::size_t at : {header_bytes, header_bytes + 150000, bytes.size() - 5, bytes.size() - 1}) {
    auto bad = bytes;
    bad[at] ^= 0x01;  // in the payload or in the checksum itself
    auto f = finish_frame(*h, bad.substr(header_bytes), true);
    REQUIRE(f);
    CHECK_FALSE(f->corrupt);  // not checked yet
    CHECK_FALSE(payload_intact(*f));
    auto now = finish_frame(*h, bad.substr(header_bytes));  // checked at once
    REQUIRE(now);
    CHECK(now->corrupt);
    CHECK_FALSE(payload_intact(*now));
  }
}

TEST_CASE("a header that announces a large frame reserves memory only as its bytes arrive") {
  // A 40 MiB frame, fed in 64 KiB pieces as a socket would.
  const std::string payload(40u << 20, 'p');
  const auto bytes = encode(make(frame_type::data_batch, payload));
  frame_decoder d;
  d.feed(std::string_view(bytes).substr(0, header_bytes));
  REQUIRE(d.next());
  CHECK(d.reserved() < (8u << 20));  // not the 40 MiB the header announces
  std::size_t fed = header_bytes;
  bool bounded = true;
  std::optional<frame> got;
  while (fed < bytes.size()) {
    const auto n = std::min<std::size_t>(64 * 1024, bytes.size() - fed);
    d.feed(std::string_view(bytes).substr(fed, n));
    fed += n;
    auto r = d.next();
    REQUIRE(r);
    if (*r) got = std::move(**r);
    // While the frame arrives, what is held stays within a small multiple of what came.
    if (!got && d.reserved() > 4 * fed + (8u << 20)) bounded = false;
  }
  REQUIRE(got);
  CHECK(got->payload == payload);
  CHECK(bounded);
}

TEST_CASE("bad headers are refused with a reason and poison the stream") {
  auto good = encode(make(frame_type::hello, "x"));
  auto refuse = [](std::string bytes, std::size_t max, const std::string& needle) {
    frame_decoder d(max);
    d.feed(bytes);
    auto r = d.next();
    REQUIRE(!r);
    CHECK(r.error().detail.find(needle) != std::string::npos);
    CHECK(!d.next());  // unusable afterwards
  };
  auto with = [&](std::size_t at, char v) {
    auto b = good;
    b[at] = v;
    return b;
  };
  refuse(with(3, 5), 1024, "below the header size");
  refuse(encode(make(frame_type::hello, std::string(2000, 'y'))), 1024, "exceeds the maximum");
  refuse(with(4, 99), 1024, "unknown frame type");
  refuse(with(5, 0x40), 1024, "unknown frame flags");
  refuse(with(6, 1), 1024, "reserved");
  // The high-priority flag belongs on data batches only.
  refuse(with(5, flag_high_priority), 1024, "data batches only");
  // So does the compressed flag.
  refuse(with(5, flag_compressed), 1024, "data batches only");
}

namespace {

/// A batch of `n` records of `value_bytes` each, after `room` bytes, the way a source builds one.
std::string batch_of(std::size_t n, std::size_t value_bytes, bool random_values, std::size_t room = header_bytes) {
  std::mt19937_64 rng(7);
  std::string out(room, '\0');
  for (std::size_t i = 0; i < n; ++i) {
    append_u32be(out, 12);
    out += "key" + std::to_string(100000000 + i);
    std::string v(value_bytes, 'x');
    if (random_values)
      for (auto& c : v) c = static_cast<char>(rng());
    append_u32be(out, static_cast<std::uint32_t>(v.size()));
    out += v;
  }
  return out;
}

}  // namespace

TEST_CASE("a batch that compresses well goes compressed and expands to itself") {
  const auto payload = batch_of(2000, 1000, false);
  auto c = compress_batch(payload, header_bytes, 4.0);
  REQUIRE(c);
  CHECK(c->size() * 4 <= payload.size());
  CHECK(c->substr(0, header_bytes) == payload.substr(0, header_bytes));  // the room is kept
  CHECK(read_u32be(std::string_view(*c).substr(header_bytes)) == payload.size() - header_bytes);
  auto e = expand_batch(std::string_view(*c).substr(header_bytes), default_max_frame_bytes);
  REQUIRE(e);
  CHECK(*e == payload.substr(header_bytes));
}

TEST_CASE("a batch that does not compress well enough, or is small, goes as it is") {
  // Random values: LZ4 gains nothing; the sample says so.
  CHECK(!compress_batch(batch_of(2000, 1000, true), header_bytes, 4.0));
  // Small: under compress_min_bytes, whatever its ratio.
  CHECK(!compress_batch(batch_of(10, 1000, false), header_bytes, 4.0));
  // Turned off.
  CHECK(!compress_batch(batch_of(2000, 1000, false), header_bytes, 0));
  // A bar higher than the ratio reached: ~100x for padding, not 10,000x.
  CHECK(!compress_batch(batch_of(2000, 1000, false), header_bytes, 1000));
  // A batch whose first part is random and the rest padding: the sample decides against it.
  auto mixed = batch_of(100, 1000, true);
  mixed += batch_of(2000, 1000, false, 0);
  CHECK(!compress_batch(mixed, header_bytes, 4.0));
  // ...and a batch whose sample compresses but the whole does not is refused too.
  auto late = batch_of(200, 1000, false);
  late += batch_of(3000, 1000, true, 0);
  CHECK(!compress_batch(late, header_bytes, 4.0));
  CHECK(compress_batch(late, header_bytes, 1.0));  // smaller, so a bar of 1 takes it
}

TEST_CASE("a compressed batch that lies about its length or is damaged is refused before use") {
  const auto payload = batch_of(2000, 1000, false);
  auto c = compress_batch(payload, header_bytes, 4.0);
  REQUIRE(c);
  const std::string wire = c->substr(header_bytes);
  // Declares more than a frame may hold: refused before anything is allocated.
  {
    std::string w = wire;
    w[0] = static_cast<char>(0x7f);
    auto e = expand_batch(w, default_max_frame_bytes);
    REQUIRE(!e);
    CHECK(e.error().code == errc::too_large);
  }
  // Declares one byte more, or one less, than the block holds.
  for (int delta : {1, -1}) {
    std::string w;
    append_u32be(w, static_cast<std::uint32_t>(static_cast<int>(payload.size() - header_bytes) + delta));
    w += wire.substr(4);
    auto e = expand_batch(w, default_max_frame_bytes);
    REQUIRE(!e);
    CHECK(e.error().code == errc::invalid_argument);
  }
  // Truncated, garbage, too short for its length field.
  CHECK(!expand_batch(wire.substr(0, wire.size() / 2), default_max_frame_bytes));
  CHECK(!expand_batch(wire.substr(0, 4) + std::string(500, '\xff'), default_max_frame_bytes));
  CHECK(!expand_batch("abc", default_max_frame_bytes));
  // A smaller bound than the batch.
  CHECK(!expand_batch(wire, 1000));
}

TEST_CASE("a batch expands into a reused buffer over what it held before") {
  const auto big = batch_of(4000, 1000, false);
  const auto small = batch_of(1500, 1000, false);
  const auto small_len = small.size() - header_bytes;
  auto cb = compress_batch(big, header_bytes, 4.0);
  auto cs = compress_batch(small, header_bytes, 4.0);
  REQUIRE(cb);
  REQUIRE(cs);
  std::string buf;
  REQUIRE(expand_batch_into(std::string_view(*cb).substr(header_bytes), default_max_frame_bytes, buf));
  CHECK(buf == big.substr(header_bytes));
  const auto* storage = buf.data();
  const auto room = buf.capacity();
  CHECK(room >= big.size() - header_bytes);
  // A smaller batch into the same buffer: no new allocation, and nothing of the old is left.
  REQUIRE(expand_batch_into(std::string_view(*cs).substr(header_bytes), default_max_frame_bytes, buf));
  CHECK(buf == small.substr(header_bytes));
  CHECK(buf.data() == storage);
  // A larger one again fits in what the buffer has.
  REQUIRE(expand_batch_into(std::string_view(*cb).substr(header_bytes), default_max_frame_bytes, buf));
  CHECK(buf == big.substr(header_bytes));
  CHECK(buf.data() == storage);
  // A refused batch says why, whatever the buffer held.
  std::string lie = cb->substr(header_bytes);
  lie[0] = static_cast<char>(0x7f);
  auto e = expand_batch_into(lie, default_max_frame_bytes, buf);
  REQUIRE(!e);
  CHECK(e.error().code == errc::too_large);
  // A first expansion leaves room for a batch a little larger than itself (no doubling later).
  std::string fresh;
  REQUIRE(expand_batch_into(std::string_view(*cs).substr(header_bytes), default_max_frame_bytes, fresh));
  CHECK(fresh.capacity() >= small_len + small_len / 8);
  CHECK(fresh.capacity() < 2 * small_len);
  // ...but no more than the bound.
  std::string bounded;
  REQUIRE(expand_batch_into(std::string_view(*cs).substr(header_bytes), small_len, bounded));
  CHECK(bounded.capacity() < small_len + small_len / 16);
}

TEST_CASE("a buffer pool keeps a bounded number of buffers of the sizes it is for") {
  buffer_pool pool(2, 1000, 100000);
  CHECK(pool.take().capacity() < 1000);  // empty: a new buffer
  std::string a(5000, 'a'), b(6000, 'b'), c(7000, 'c');
  const auto* pa = a.data();
  pool.give(std::move(a));
  pool.give(std::move(b));
  pool.give(std::move(c));  // over `keep`: freed
  CHECK(pool.kept() == 2);
  pool.give(std::string(10, 'x'));       // too small to be worth keeping
  pool.give(std::string(200000, 'y'));   // too large to hold while idle
  CHECK(pool.kept() == 2);
  auto t1 = pool.take();
  auto t2 = pool.take();
  CHECK(pool.kept() == 0);
  CHECK((t1.data() == pa || t2.data() == pa));  // the same memory comes back
  CHECK(t1.size() + t2.size() == 11000);        // with what it held
  pool.give(std::move(t1));
  pool.clear();
  CHECK(pool.kept() == 0);
  CHECK(pool.take().capacity() < 1000);
}

TEST_CASE("a data batch flagged high priority, compressed or both round-trips with its flags") {
  for (const int flags : {0x02, 0x04, 0x06}) {  // high priority, compressed, both
    const auto want = static_cast<std::uint8_t>(flag_checksummed | flags);
    static_assert(flag_high_priority == 0x02 && flag_compressed == 0x04);
    const auto bytes = encode(make(frame_type::data_batch, "batch", want));
    frame_decoder d(1024);
    d.feed(bytes);
    auto r = d.next();
    REQUIRE(r);
    REQUIRE(*r);
    CHECK((*r)->header.flags == want);
    CHECK((*r)->payload == "batch");
    CHECK(!(*r)->corrupt);
  }
}

TEST_CASE("payload readers check bounds and report failure once") {
  payload_writer w;
  w.u8(7).u16(0x1234).u32(0xdeadbeef).u64(1ull << 40).bytes("hello").bytes("");
  auto p = w.take();
  payload_reader r(p);
  CHECK(r.u8() == 7);
  CHECK(r.u16() == 0x1234);
  CHECK(r.u32() == 0xdeadbeef);
  CHECK(r.u64() == (1ull << 40));
  CHECK(r.bytes() == "hello");
  CHECK(r.bytes().empty());
  CHECK(r.done());
  payload_reader truncated(std::string_view(p).substr(0, p.size() - 6));
  truncated.u8();
  truncated.u16();
  truncated.u32();
  truncated.u64();
  (void)truncated.bytes();
  CHECK(!truncated.ok());
  payload_writer lie;
  lie.u32(1000).u8(1);  // claims 1000 bytes, has 1
  auto l = lie.take();
  payload_reader liar(l);
  CHECK(liar.bytes().empty());
  CHECK(!liar.ok());
}

TEST_CASE("whatever the decoder accepts from random bytes re-encodes to exactly those bytes") {
  std::mt19937 rng(5);
  int accepted = 0;
  for (int i = 0; i < 5000; ++i) {
    // Random bytes behind a plausible header, so some frames get through.
    std::string junk;
    const std::uint32_t len = header_bytes + rng() % 40;
    junk += std::string("\0\0\0", 3) + static_cast<char>(len);
    junk += static_cast<char>(rng() % 3 ? 20 : rng());
    junk += static_cast<char>(rng() % 4 ? 0 : rng() % 2);
    junk += std::string(2, rng() % 8 ? '\0' : '\1');
    for (int k = 0; k < 60; ++k) junk += static_cast<char>(rng());
    frame_decoder d(4096);
    d.feed(junk);
    std::size_t offset = 0;
    for (;;) {
      auto r = d.next();
      if (!r || !*r) break;
      const auto& f = **r;
      // An intact frame re-encodes to exactly its bytes; a corrupt one is flagged instead.
      if (!f.corrupt) CHECK(encode(f) == junk.substr(offset, f.header.length));
      offset += f.header.length;
      ++accepted;
    }
  }
  CHECK(accepted > 100);
}

#include "shardd/peer_messages.hpp"

TEST_CASE("every peer message round-trips through its codec") {
  hello h{protocol_version, "cluster-a", "node-7"};
  auto h2 = decode_hello(encode(h));
  REQUIRE(h2);
  CHECK(h2->cluster_id == "cluster-a");
  CHECK(h2->node_id == "node-7");

  auto e = decode_error(encode(error_reply{errc::conflict, "busy"}));
  REQUIRE(e);
  CHECK(e->code == errc::conflict);
  auto corrupt = decode_error(encode(error_reply{errc::corrupt, "checksum mismatch"}));
  REQUIRE(corrupt);
  CHECK(corrupt->code == errc::corrupt);  // a typed error: the sender re-sends without reading the text
  auto full = decode_error(encode(error_reply{errc::insufficient_storage, "disk above flood"}));
  REQUIRE(full);
  CHECK(full->code == errc::insufficient_storage);
  CHECK(decode_error(encode(error_reply{errc::not_controller, "stepped down"}))->code == errc::not_controller);
  CHECK(!decode_error(std::string("\x0c\0\0\0\0", 5)));  // one past the last code (not_controller, 11)

  forward_response fr{404, "application/problem+json", {{"X-Shardd-Node", "n2"}, {"Allow", "GET"}}, "{}"};
  auto fr2 = decode_forward_response(encode(fr));
  REQUIRE(fr2);
  CHECK(fr2->status == 404);
  CHECK(fr2->headers == fr.headers);

  write_request w{7, {{0, "k1", "v1"}, {1, "k2", ""}}};
  auto w2 = decode_write_request(encode(w));
  REQUIRE(w2);
  REQUIRE(w2->ops.size() == 2);
  CHECK(w2->ops[1].kind == 1);
  CHECK(w2->ops[0].value == "v1");

  scan_request s;
  s.index = "users";
  s.shard = 3;
  s.begin = std::string("\0\0\0\1", 4);
  s.end = std::string("\0\0\0\2", 4);
  s.after = "k";
  s.key_prefix = "p";
  auto s2 = decode_scan_request(encode(s));
  REQUIRE(s2);
  CHECK(s2->after == s.after);
  CHECK(!s2->key_start);
  CHECK(s2->key_prefix == "p");

  scan_reply sr{{{"a", "1"}, {"b", "2"}}, std::string("b"), 9};
  auto sr2 = decode_scan_reply(encode(sr));
  REQUIRE(sr2);
  CHECK(sr2->records == sr.records);
  CHECK(sr2->examined == 9);

  stats_reply st{{{1, 2, 3, 4}, {5, 6, 7, 8}}};
  auto st2 = decode_stats_reply(encode(st));
  REQUIRE(st2);
  CHECK(st2->shards[1].bytes == 8);

  auto hb = decode_heartbeat(encode(heartbeat{"n", 5, 6, 7, 8, {}, 0, 0, {}}));
  REQUIRE(hb);
  CHECK(hb->records == 7);
  CHECK(hb->load.empty());
  auto j = decode_join(encode(join_request{"n", "a:1", "b:2", 3}));
  REQUIRE(j);
  CHECK(j->weight == 3);
}

TEST_CASE("a heartbeat carries each shard's load; a count that the payload cannot hold is refused") {
  heartbeat h{"n2", 9, 2, 30, 4000, {}, 3, 0, {}};
  h.load.push_back(shard_load{1, 3, 20, 3000, 12.5, 0.25, 1024.0, 99.001, 0.625});
  h.load.push_back(shard_load{2, 0, 10, 1000, 0, 1500, 0, 0});
  auto back = decode_heartbeat(encode(h));
  REQUIRE(back);
  REQUIRE(back->load.size() == 2);
  CHECK(back->load[0] == h.load[0]);
  CHECK(back->load[1].writes_per_sec == 1500);
  CHECK(back->load[0].top_key_share == 0.625);
  CHECK(back->anomalies_open == 3);
  // A payload from a sender that carries no load (an older node) still decodes.
  payload_writer w;
  w.bytes("n3").u64(1).u32(0).u64(0).u64(0);
  auto old = decode_heartbeat(w.take());
  REQUIRE(old);
  CHECK(old->load.empty());
  // A count of a million entries in a payload that holds none: refused before any allocation.
  payload_writer big;
  big.bytes("n3").u64(1).u32(0).u64(0).u64(0).u32(0).u32(1000000);
  CHECK_FALSE(decode_heartbeat(big.take()));
  // Rates that are not numbers or below zero travel as zero.
  heartbeat odd{"n4", 1, 1, 1, 1, {shard_load{1, 1, 1, 1, -5, std::nan(""), 0, 0}}, 0, 0, {}};
  auto odd_back = decode_heartbeat(encode(odd));
  REQUIRE(odd_back);
  CHECK(odd_back->load[0].reads_per_sec == 0);
  CHECK(odd_back->load[0].writes_per_sec == 0);
  // A rate beyond what a double carries back exactly: clamped when sent, refused when read.
  heartbeat huge{"n4", 1, 1, 1, 1, {shard_load{1, 1, 1, 1, 1e300, 0, 0, 0}}, 0, 0, {}};
  auto huge_back = decode_heartbeat(encode(huge));
  REQUIRE(huge_back);
  CHECK(huge_back->load[0].reads_per_sec == static_cast<double>(max_rate_milli) / 1000);
  CHECK(encode(*huge_back) == encode(huge));
  payload_writer over;
  over.bytes("n4").u64(1).u32(0).u64(0).u64(0).u32(0).u32(1).u32(1).u32(1).u64(0).u64(0).u64(max_rate_milli + 1).u64(0).u64(0).u64(0).u32(0);
  CHECK_FALSE(decode_heartbeat(over.take()));
  // A hottest key's share above 1000 thousandths: refused.
  payload_writer share;
  share.bytes("n4").u64(1).u32(0).u64(0).u64(0).u32(0).u32(1).u32(1).u32(1).u64(0).u64(0).u64(0).u64(0).u64(0).u64(0).u32(1001);
  CHECK_FALSE(decode_heartbeat(share.take()));
  payload_writer whole;
  whole.bytes("n4").u64(1).u32(0).u64(0).u64(0).u32(0).u32(1).u32(1).u32(1).u64(0).u64(0).u64(0).u64(0).u64(0).u64(0).u32(1000);
  auto whole_back = decode_heartbeat(whole.take());
  REQUIRE(whole_back);
  CHECK(whole_back->load[0].top_key_share == 1.0);
}

TEST_CASE("a heartbeat carries the sender's journal events, bounded in number and size") {
  heartbeat h{"n2", 9, 2, 30, 4000, {}, 1, 77, {}};
  h.events.push_back(member_event{5, "anomaly", "anomaly 1 opened", R"({"anomaly":1})"});
  h.events.push_back(member_event{6, "monitor", "monitor settings", "{}"});
  auto back = decode_heartbeat(encode(h));
  REQUIRE(back);
  CHECK(back->incarnation == 77);
  CHECK(back->events == h.events);
  // A heartbeat with load but no events section (an older sender) decodes with none.
  payload_writer w;
  w.bytes("n3").u64(1).u32(0).u64(0).u64(0).u32(2).u32(0);
  auto old = decode_heartbeat(w.take());
  REQUIRE(old);
  CHECK(old->events.empty());
  // Too many, or too large: refused.
  heartbeat many = h;
  many.events.assign(max_heartbeat_events + 1, member_event{1, "anomaly", "x", "{}"});
  CHECK_FALSE(decode_heartbeat(encode(many)));
  heartbeat big = h;
  big.events[0].summary.assign(max_event_summary + 1, 's');
  CHECK_FALSE(decode_heartbeat(encode(big)));
  big.events[0].summary = "s";
  big.events[0].fields_json.assign(max_event_fields + 1, ' ');
  CHECK_FALSE(decode_heartbeat(encode(big)));
  payload_writer lie;  // a count the payload cannot hold
  lie.bytes("n3").u64(1).u32(0).u64(0).u64(0).u32(0).u32(0).u64(1).u32(60);
  CHECK_FALSE(decode_heartbeat(lie.take()));
  // One encoding per heartbeat: empty trailing sections are left out, and refused when sent.
  const heartbeat bare{"n5", 1, 0, 0, 0, {}, 0, 0, {}};
  payload_writer plain;
  plain.bytes("n5").u64(1).u32(0).u64(0).u64(0);
  CHECK(encode(bare) == plain.take());
  payload_writer empty_monitor;
  empty_monitor.bytes("n5").u64(1).u32(0).u64(0).u64(0).u32(0).u32(0);
  CHECK_FALSE(decode_heartbeat(empty_monitor.take()));
  payload_writer empty_events;
  empty_events.bytes("n5").u64(1).u32(0).u64(0).u64(0).u32(1).u32(0).u64(0).u32(0);
  CHECK_FALSE(decode_heartbeat(empty_events.take()));
}

TEST_CASE("a heartbeat carries the sender's data disk after its other sections, only when measured") {
  heartbeat h{"n6", 3, 1, 2, 3, {}, 0, 0, {}};
  h.disk_used = 123456789;
  h.disk_total = 987654321;
  auto back = decode_heartbeat(encode(h));
  REQUIRE(back);
  CHECK(back->disk_used == 123456789);
  CHECK(back->disk_total == 987654321);
  CHECK(encode(*back) == encode(h));
  // With load and events too.
  h.load.push_back(shard_load{1, 2, 3, 4, 5, 6, 7, 8});
  h.incarnation = 9;
  h.events.push_back(member_event{1, "anomaly", "a", "{}"});
  auto full = decode_heartbeat(encode(h));
  REQUIRE(full);
  CHECK(full->disk_total == 987654321);
  CHECK(full->events.size() == 1);
  // A heartbeat without it (an older sender, or none measured) decodes with total 0.
  heartbeat none{"n6", 3, 1, 2, 3, {}, 0, 5, {}};
  auto nb = decode_heartbeat(encode(none));
  REQUIRE(nb);
  CHECK(nb->disk_total == 0);
  // A disk section with total 0 is left out when sent, and refused when read.
  payload_writer zero;
  zero.bytes("n6").u64(3).u32(1).u64(2).u64(3).u32(0).u32(0).u64(0).u32(0).u64(5).u64(0);
  CHECK_FALSE(decode_heartbeat(zero.take()));
  payload_writer trailing;  // bytes after the disk section
  trailing.bytes("n6").u64(3).u32(1).u64(2).u64(3).u32(0).u32(0).u64(0).u32(0).u64(5).u64(10).u8(1);
  CHECK_FALSE(decode_heartbeat(trailing.take()));
}

TEST_CASE("a data batch written record by record decodes in place and re-encodes to the same bytes") {
  std::vector<std::string> keys, values;
  for (int i = 0; i < 300; ++i) {  // over 255 records: every byte of the patched count matters
    keys.push_back("key" + std::to_string(i));
    values.emplace_back(static_cast<std::size_t>(i), 'v');
  }
  const std::uint64_t seq = 0x0102030405060708ull;
  data_batch_writer w("m7", 1);
  for (std::size_t i = 0; i < keys.size(); ++i) w.add(static_cast<std::uint8_t>(i % 2), keys[i], values[i]);
  CHECK(w.count() == 300);
  const std::string streamed = w.finish("cursor", seq);

  auto v = decode_data_batch_view(streamed);
  REQUIRE(v);
  CHECK(v->migration == "m7");
  CHECK(v->kind == 1);
  CHECK(v->cursor == "cursor");
  CHECK(v->seq == seq);
  REQUIRE(v->ops.size() == 300);
  for (std::size_t i = 0; i < 300; ++i) {
    CHECK(v->ops[i].kind == i % 2);
    CHECK(v->ops[i].key == keys[i]);
    CHECK(v->ops[i].value == values[i]);
    // In place: the views point into the payload.
    CHECK(v->ops[i].key.data() >= streamed.data());
    CHECK(v->ops[i].key.data() < streamed.data() + streamed.size());
  }
  CHECK(encode(*v) == streamed);
  CHECK(!decode_data_batch_view(streamed.substr(0, streamed.size() - 1)));
  CHECK(!decode_data_batch_view(streamed + "x"));
  // An empty batch.
  data_batch_writer none("m", 0);
  auto e = decode_data_batch_view(none.finish("", 0));
  REQUIRE(e);
  CHECK(e->ops.empty());
  // A record of an unknown kind is refused.
  data_batch_writer bad("m", 0);
  bad.add(7, "k", "v");
  CHECK(!decode_data_batch_view(bad.finish("k", 0)));
}

TEST_CASE("a data batch's head (kind, count, first key) is read without decoding the records") {
  data_batch_writer w("m9", 0);
  w.add(0, "first", std::string(40, 'a'));
  w.add(0, "second", "b");
  const std::string payload = w.finish("second", 0);
  auto h = peek_data_batch(payload);
  REQUIRE(h);
  CHECK(h->kind == 0);
  CHECK(h->count == 2);
  CHECK(h->first_key == "first");
  // The records after the first are not read: a batch broken there passes the peek, and the
  // full decode (on the migration pool) refuses it.
  const std::string broken = payload.substr(0, payload.size() - 12);
  CHECK(peek_data_batch(broken));
  CHECK(!decode_data_batch_view(broken));
  // Empty: no first key.
  data_batch_writer none("m", 1);
  auto e = peek_data_batch(none.finish("", 0));
  REQUIRE(e);
  CHECK(e->kind == 1);
  CHECK(e->count == 0);
  CHECK(e->first_key.empty());
  // Refused: an unknown batch kind, a count the payload cannot hold, a first key cut short.
  payload_writer kind;
  kind.bytes("m").u8(2).u32(0);
  CHECK(!peek_data_batch(kind.take()));
  payload_writer lying;
  lying.bytes("m").u8(0).u32(1000000);
  CHECK(!peek_data_batch(lying.take()));
  CHECK(!peek_data_batch(payload.substr(0, 12)));
  CHECK(!peek_data_batch(""));
}

TEST_CASE("truncated, padded or lying payloads are refused") {
  auto w = encode(write_request{1, {{0, "k", "v"}}});
  CHECK(!decode_write_request(w.substr(0, w.size() - 1)));
  CHECK(!decode_write_request(w + "x"));
  payload_writer huge;
  huge.u32(1).u32(0xffffffffu);  // four billion ops in eight bytes
  CHECK(!decode_write_request(huge.take()));
  payload_writer bad_kind;
  bad_kind.u32(1).u32(1).u8(9).bytes("k").bytes("v");
  CHECK(!decode_write_request(bad_kind.take()));
  CHECK(!decode_error(std::string("\x63\0\0\0\0", 5)));  // unknown error code
  CHECK(!decode_stats_reply(std::string("\0\0\1\0", 4)));
  // An optional field's flag is 0 or 1; anything else is not a canonical payload.
  auto r = encode(scan_reply{{}, std::string("k"), 1});
  r[4] = 0x40;
  CHECK(!decode_scan_reply(r));
}

TEST_CASE("CRC32C agrees at every length and alignment, so the fast path matches the reference") {
  std::mt19937 rng(9);
  std::string data(300, '\0');
  for (auto& ch : data) ch = static_cast<char>(rng());
  // Reference: bitwise CRC32C.
  auto reference = [](std::string_view d) {
    std::uint32_t c = ~0u;
    for (unsigned char b : d) {
      c ^= b;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82f63b78u : c >> 1;
    }
    return ~c;
  };
  for (std::size_t off = 0; off < 9; ++off)
    for (std::size_t len = 0; len < 120; ++len) CHECK(crc32c(std::string_view(data).substr(off, len)) == reference(std::string_view(data).substr(off, len)));
  // Large inputs run three interleaved streams over 4 KiB blocks and join them: lengths at,
  // around and well past the block boundaries, at odd offsets, and seeded (a CRC continued).
  std::string big(200000, '\0');
  for (auto& ch : big) ch = static_cast<char>(rng());
  for (std::size_t len : {12287u, 12288u, 12289u, 24576u, 30001u, 199990u})
    for (std::size_t off : {0u, 3u, 7u}) {
      const auto part = std::string_view(big).substr(off, len);
      CHECK(crc32c(part) == reference(part));
      CHECK(crc32c(part.substr(5000), crc32c(part.substr(0, 5000))) == reference(part));
    }
}

TEST_CASE("a forwarded request carries its request id; one from a sender without it decodes, one too long is refused") {
  forward_request f{"GET", "/v1/indexes/a/records/k", "", "", "req-42"};
  auto back = decode_forward_request(encode(f));
  REQUIRE(back);
  CHECK(back->request_id == "req-42");
  CHECK(back->target == f.target);
  f.request_id.clear();
  auto none = decode_forward_request(encode(f));
  REQUIRE(none);
  CHECK(none->request_id.empty());
  f.request_id = std::string(max_request_id + 1, 'x');
  CHECK_FALSE(decode_forward_request(encode(f)));
}

TEST_CASE("a batch built with room for its header frames in place to the same bytes as a copy") {
  for (const bool corrupt : {false, true}) {
    data_batch_writer plain("m1", 0), roomy("m1", 0, 0, true);
    for (int i = 0; i < 100; ++i) {
      const auto k = "k" + std::to_string(1000 + i);
      plain.add(0, k, std::string(static_cast<std::size_t>(i), 'x'));
      roomy.add(0, k, std::string(static_cast<std::size_t>(i), 'x'));
    }
    frame a = make(frame_type::data_batch, plain.finish("k1099", 0), flag_checksummed);
    frame b = make(frame_type::data_batch, roomy.finish("k1099", 0), flag_checksummed);
    b.header_room = true;
    a.corrupt_after_checksum = b.corrupt_after_checksum = corrupt;
    const std::string copied = encode(a);
    CHECK(encode(static_cast<const frame&>(b)) == copied);  // the const form skips the room
    const char* buffer = b.payload.data();
    const std::string in_place = encode(std::move(b));
    CHECK(in_place == copied);
    CHECK(in_place.data() == buffer);  // built in the batch's own buffer
    frame_decoder d;
    d.feed(in_place);
    auto f = d.next();
    REQUIRE(f);
    REQUIRE(*f);
    CHECK((*f)->corrupt == corrupt);
    if (!corrupt) CHECK((*f)->payload == a.payload);
  }
}

TEST_CASE("a large frame's body is handed over part-read, to be read into place, and finishes the same") {
  const std::string body(300000, 'b');
  const std::string bytes = encode(make(frame_type::data_batch, body, flag_checksummed));
  frame_decoder d(1u << 20);
  d.feed(std::string_view(bytes).substr(0, 10));
  CHECK_FALSE(d.take_partial(65536));  // no whole header yet
  d.feed(std::string_view(bytes).substr(10, 70000));
  CHECK_FALSE(d.take_partial(400000));  // smaller than asked for
  auto p = d.take_partial(65536);
  REQUIRE(p);
  CHECK(p->header.length == bytes.size());
  CHECK(p->body == bytes.substr(header_bytes, 70010 - header_bytes));
  CHECK(d.buffered() == 0);
  p->body += bytes.substr(70010);  // the rest, as the transport reads it
  auto f = finish_frame(p->header, std::move(p->body));
  REQUIRE(f);
  CHECK_FALSE(f->corrupt);
  CHECK(f->payload == body);
  // A complete frame is left to next(); a bad header too (next() reports it).
  frame_decoder whole(1u << 20);
  whole.feed(bytes);
  CHECK_FALSE(whole.take_partial(65536));
  CHECK(whole.next());
  frame_decoder bad(1u << 20);
  bad.feed(std::string(24, '\xff'));
  CHECK_FALSE(bad.take_partial(1));
  CHECK_FALSE(bad.next());
}
