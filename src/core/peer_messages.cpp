#include "shardd/peer_messages.hpp"

#include <algorithm>
#include <cmath>

namespace shardd::peer {

namespace {

error malformed(std::string_view what) {
  return make_error(errc::invalid_argument, "malformed " + std::string(what) + " payload");
}

void put_opt(payload_writer& w, const std::optional<std::string>& v) {
  w.u8(v ? 1 : 0);
  if (v) w.bytes(*v);
}

std::optional<std::string> get_opt(payload_reader& r) {
  const auto present = r.u8();
  if (present > 1) r.fail();  // only 0 and 1 are canonical
  if (present != 1) return std::nullopt;
  return std::string(r.bytes());
}

// Counts read from the wire bound allocations: each element takes at least `min_bytes`.
bool plausible(const payload_reader& r, std::uint32_t count, std::size_t min_bytes) {
  return r.ok() && static_cast<std::uint64_t>(count) * min_bytes <= r.remaining();
}

}  // namespace

std::string encode(const hello& m) {
  payload_writer w;
  w.u32(m.protocol).bytes(m.cluster_id).bytes(m.node_id);
  return w.take();
}
result<hello> decode_hello(std::string_view p) {
  payload_reader r(p);
  hello m;
  m.protocol = r.u32();
  m.cluster_id = r.bytes();
  m.node_id = r.bytes();
  if (!r.done()) return malformed("hello");
  return m;
}

std::string encode(const error_reply& m) {
  payload_writer w;
  w.u8(static_cast<std::uint8_t>(m.code)).bytes(m.detail);
  return w.take();
}
result<error_reply> decode_error(std::string_view p) {
  payload_reader r(p);
  error_reply m;
  const auto code = r.u8();
  m.detail = r.bytes();
  if (!r.done() || code > static_cast<std::uint8_t>(errc::not_controller)) return malformed("error");
  m.code = static_cast<errc>(code);
  return m;
}

std::string encode(const join_request& m) {
  payload_writer w;
  w.bytes(m.node_id).bytes(m.rest_address).bytes(m.peer_address).u32(m.weight);
  return w.take();
}
result<join_request> decode_join(std::string_view p) {
  payload_reader r(p);
  join_request m;
  m.node_id = r.bytes();
  m.rest_address = r.bytes();
  m.peer_address = r.bytes();
  m.weight = r.u32();
  if (!r.done()) return malformed("join");
  return m;
}

std::string encode(const heartbeat& m) {
  payload_writer w;
  w.bytes(m.node_id).u64(m.map_version).u32(m.shards).u64(m.records).u64(m.bytes);
  // Trailing sections only when they say something (so each heartbeat has one encoding): the
  // monitor's, then the events'.
  const bool disk = m.disk_total != 0;
  const bool events = m.incarnation != 0 || !m.events.empty() || disk;
  if (!events && m.load.empty() && m.anomalies_open == 0) return w.take();
  w.u32(m.anomalies_open).u32(static_cast<std::uint32_t>(m.load.size()));
  // Rates travel as thousandths (a rate is never negative; NaN and below zero become 0), at
  // most max_rate_milli, below which a value read back as a double re-encodes exactly.
  auto milli = [](double v) -> std::uint64_t {
    if (!(v > 0)) return 0;
    if (v * 1000 >= static_cast<double>(max_rate_milli)) return max_rate_milli;
    return static_cast<std::uint64_t>(std::llround(v * 1000));
  };
  for (const auto& l : m.load)
    w.u32(l.index_id).u32(l.shard_id).u64(l.records).u64(l.bytes).u64(milli(l.reads_per_sec)).u64(milli(l.writes_per_sec))
        .u64(milli(l.bytes_in_per_sec)).u64(milli(l.bytes_out_per_sec))
        .u32(static_cast<std::uint32_t>(std::llround(std::clamp(l.top_key_share > 0 ? l.top_key_share : 0.0, 0.0, 1.0) * 1000)));
  if (!events) return w.take();
  w.u64(m.incarnation).u32(static_cast<std::uint32_t>(m.events.size()));
  for (const auto& e : m.events) w.u64(e.seq).bytes(e.type).bytes(e.summary).bytes(e.fields_json);
  if (disk) w.u64(m.disk_used).u64(m.disk_total);
  return w.take();
}
result<heartbeat> decode_heartbeat(std::string_view p) {
  payload_reader r(p);
  heartbeat m;
  m.node_id = r.bytes();
  m.map_version = r.u64();
  m.shards = r.u32();
  m.records = r.u64();
  m.bytes = r.u64();
  if (r.ok() && r.remaining() > 0) {  // a sender without a monitor stops here
    constexpr std::size_t entry_bytes = 4 + 4 + 8 * 6 + 4;
    m.anomalies_open = r.u32();
    const auto n = r.u32();
    if (n > max_heartbeat_loads || !plausible(r, n, entry_bytes)) return malformed("heartbeat");
    m.load.reserve(n);
    for (std::uint32_t i = 0; i < n; ++i) {
      shard_load l;
      l.index_id = r.u32();
      l.shard_id = r.u32();
      l.records = r.u64();
      l.bytes = r.u64();
      std::uint64_t rates[4];
      for (auto& x : rates) x = r.u64();
      for (auto x : rates)
        if (x > max_rate_milli) return malformed("heartbeat");
      l.reads_per_sec = static_cast<double>(rates[0]) / 1000;
      l.writes_per_sec = static_cast<double>(rates[1]) / 1000;
      l.bytes_in_per_sec = static_cast<double>(rates[2]) / 1000;
      l.bytes_out_per_sec = static_cast<double>(rates[3]) / 1000;
      const auto top = r.u32();
      if (top > 1000) return malformed("heartbeat");
      l.top_key_share = static_cast<double>(top) / 1000;
      m.load.push_back(l);
    }
    if (r.ok() && r.remaining() == 0 && m.load.empty() && m.anomalies_open == 0)
      return malformed("heartbeat");  // an empty section is left out, not sent
    if (r.ok() && r.remaining() > 0) {  // a sender without events stops here
      m.incarnation = r.u64();
      const auto ne = r.u32();
      if (ne > max_heartbeat_events || !plausible(r, ne, 8 + 3 * 4)) return malformed("heartbeat");
      for (std::uint32_t i = 0; i < ne; ++i) {
        member_event e;
        e.seq = r.u64();
        e.type = r.bytes();
        e.summary = r.bytes();
        e.fields_json = r.bytes();
        if (e.type.size() > max_event_type || e.summary.size() > max_event_summary || e.fields_json.size() > max_event_fields)
          return malformed("heartbeat");
        m.events.push_back(std::move(e));
      }
      if (r.ok() && r.remaining() > 0) {  // a sender that did not measure its disk stops here
        m.disk_used = r.u64();
        m.disk_total = r.u64();
        if (m.disk_total == 0) return malformed("heartbeat");  // left out, not sent
      } else if (m.incarnation == 0 && m.events.empty()) {
        return malformed("heartbeat");  // left out, not sent
      }
    }
  }
  if (!r.done()) return malformed("heartbeat");
  return m;
}

std::string encode(const forward_request& m) {
  payload_writer w;
  w.bytes(m.method).bytes(m.target).bytes(m.content_type).bytes(m.body);
  if (!m.request_id.empty()) w.bytes(m.request_id);
  return w.take();
}
result<forward_request> decode_forward_request(std::string_view p) {
  payload_reader r(p);
  forward_request m;
  m.method = r.bytes();
  m.target = r.bytes();
  m.content_type = r.bytes();
  m.body = r.bytes();
  if (r.ok() && r.remaining() > 0) {  // a sender that names no request id stops here
    m.request_id = r.bytes();
    // Present means not empty (an empty id is left out): one encoding per message.
    if (m.request_id.empty() || m.request_id.size() > max_request_id) return malformed("forward");
  }
  if (!r.done()) return malformed("forward");
  return m;
}

std::string encode(const forward_response& m) {
  payload_writer w;
  w.u16(m.status).bytes(m.content_type).u32(static_cast<std::uint32_t>(m.headers.size()));
  for (const auto& [n, v] : m.headers) w.bytes(n).bytes(v);
  w.bytes(m.body);
  return w.take();
}
result<forward_response> decode_forward_response(std::string_view p) {
  payload_reader r(p);
  forward_response m;
  m.status = r.u16();
  m.content_type = r.bytes();
  const auto n = r.u32();
  if (!plausible(r, n, 8)) return malformed("forward reply");
  for (std::uint32_t i = 0; i < n; ++i) {
    std::string name(r.bytes());
    m.headers.emplace_back(std::move(name), std::string(r.bytes()));
  }
  m.body = r.bytes();
  if (!r.done()) return malformed("forward reply");
  return m;
}

std::string encode(const write_request& m) {
  payload_writer w;
  w.u32(m.index_id).u32(static_cast<std::uint32_t>(m.ops.size()));
  for (const auto& op : m.ops) w.u8(op.kind).bytes(op.key).bytes(op.value);
  return w.take();
}
result<write_request> decode_write_request(std::string_view p) {
  payload_reader r(p);
  write_request m;
  m.index_id = r.u32();
  const auto n = r.u32();
  if (!plausible(r, n, 9)) return malformed("write_ops");
  m.ops.reserve(n);
  for (std::uint32_t i = 0; i < n; ++i) {
    record_op op;
    op.kind = r.u8();
    op.key = r.bytes();
    op.value = r.bytes();
    if (op.kind > 1) return malformed("write_ops");
    m.ops.push_back(std::move(op));
  }
  if (!r.done()) return malformed("write_ops");
  return m;
}

std::string encode(const write_reply& m) {
  payload_writer w;
  w.bytes(std::string_view(reinterpret_cast<const char*>(m.statuses.data()), m.statuses.size()));
  return w.take();
}
result<write_reply> decode_write_reply(std::string_view p) {
  payload_reader r(p);
  auto b = r.bytes();
  if (!r.done()) return malformed("write reply");
  write_reply m;
  m.statuses.assign(b.begin(), b.end());
  return m;
}

std::string encode(const scan_request& m) {
  payload_writer w;
  w.bytes(m.index).u32(m.shard).bytes(m.begin).bytes(m.end);
  put_opt(w, m.after);
  w.u32(m.limit).u32(m.max_examined);
  put_opt(w, m.key_start);
  put_opt(w, m.key_end);
  put_opt(w, m.key_prefix);
  return w.take();
}
result<scan_request> decode_scan_request(std::string_view p) {
  payload_reader r(p);
  scan_request m;
  m.index = r.bytes();
  m.shard = r.u32();
  m.begin = r.bytes();
  m.end = r.bytes();
  m.after = get_opt(r);
  m.limit = r.u32();
  m.max_examined = r.u32();
  m.key_start = get_opt(r);
  m.key_end = get_opt(r);
  m.key_prefix = get_opt(r);
  if (!r.done()) return malformed("scan_shard");
  return m;
}

std::string encode(const scan_reply& m) {
  payload_writer w;
  w.u32(static_cast<std::uint32_t>(m.records.size()));
  for (const auto& [k, v] : m.records) w.bytes(k).bytes(v);
  put_opt(w, m.resume_after);
  w.u32(m.examined);
  return w.take();
}
result<scan_reply> decode_scan_reply(std::string_view p) {
  payload_reader r(p);
  scan_reply m;
  const auto n = r.u32();
  if (!plausible(r, n, 8)) return malformed("scan reply");
  m.records.reserve(n);
  for (std::uint32_t i = 0; i < n; ++i) {
    std::string k(r.bytes());
    m.records.emplace_back(std::move(k), std::string(r.bytes()));
  }
  m.resume_after = get_opt(r);
  m.examined = r.u32();
  if (!r.done()) return malformed("scan reply");
  return m;
}

std::string encode(const stats_reply& m) {
  payload_writer w;
  w.u32(static_cast<std::uint32_t>(m.shards.size()));
  for (const auto& s : m.shards) w.u32(s.index_id).u32(s.shard_id).u64(s.records).u64(s.bytes);
  return w.take();
}
result<stats_reply> decode_stats_reply(std::string_view p) {
  payload_reader r(p);
  stats_reply m;
  const auto n = r.u32();
  if (!plausible(r, n, 24)) return malformed("stats reply");
  m.shards.reserve(n);
  for (std::uint32_t i = 0; i < n; ++i) {
    shard_stat s;
    s.index_id = r.u32();
    s.shard_id = r.u32();
    s.records = r.u64();
    s.bytes = r.u64();
    m.shards.push_back(s);
  }
  if (!r.done()) return malformed("stats reply");
  return m;
}

data_batch_writer::data_batch_writer(std::string_view migration, std::uint8_t kind, std::size_t reserve_bytes,
                                     bool header_room) {
  // Room for the frame's header and checksum too: the frame is built in this buffer.
  w_.buffer().reserve(reserve_bytes + migration.size() + 9 + (header_room ? header_bytes + 4 : 0));
  if (header_room) w_.buffer().append(header_bytes, '\0');
  w_.bytes(migration).u8(kind);
  count_at_ = w_.buffer().size();
  w_.u32(0);  // patched by finish()
}

void data_batch_writer::add(std::uint8_t op_kind, std::string_view key, std::string_view value) {
  w_.u8(op_kind).bytes(key).bytes(value);
  ++count_;
}

std::string data_batch_writer::finish(std::string_view cursor, std::uint64_t seq) {
  w_.bytes(cursor).u64(seq);
  std::string out = w_.take();
  for (int i = 0; i < 4; ++i) out[count_at_ + static_cast<std::size_t>(i)] = static_cast<char>(count_ >> (24 - 8 * i));
  return out;
}

std::string encode(const data_batch_view& m) {
  std::size_t size = m.cursor.size() + 16;
  for (const auto& op : m.ops) size += op.key.size() + op.value.size() + 9;
  data_batch_writer w(m.migration, m.kind, size);
  for (const auto& op : m.ops) w.add(op.kind, op.key, op.value);
  return w.finish(m.cursor, m.seq);
}

result<data_batch_view> decode_data_batch_view(std::string_view p) {
  payload_reader r(p);
  data_batch_view m;
  m.migration = r.bytes();
  m.kind = r.u8();
  const auto n = r.u32();
  if (!plausible(r, n, 9) || m.kind > 1) return malformed("data_batch");
  m.ops.reserve(n);
  for (std::uint32_t i = 0; i < n; ++i) {
    record_op_view op;
    op.kind = r.u8();
    op.key = r.bytes();
    op.value = r.bytes();
    if (op.kind > 1) return malformed("data_batch");
    m.ops.push_back(op);
  }
  m.cursor = r.bytes();
  m.seq = r.u64();
  if (!r.done()) return malformed("data_batch");
  return m;
}

result<data_batch_head> peek_data_batch(std::string_view p) {
  payload_reader r(p);
  data_batch_head h;
  (void)r.bytes();  // the migration
  h.kind = r.u8();
  h.count = r.u32();
  if (!plausible(r, h.count, 9) || h.kind > 1) return malformed("data_batch");
  if (h.count > 0) {
    (void)r.u8();
    h.first_key = r.bytes();
    if (!r.ok()) return malformed("data_batch");
  }
  return h;
}

std::string encode(const import_range& m) {
  payload_writer w;
  w.bytes(m.migration).u32(m.index_id).u32(m.shard_id).bytes(m.begin).bytes(m.end);
  return w.take();
}
result<import_range> decode_import_range(std::string_view p) {
  payload_reader r(p);
  import_range m;
  m.migration = r.bytes();
  m.index_id = r.u32();
  m.shard_id = r.u32();
  m.begin = r.bytes();
  m.end = r.bytes();
  if (!r.done()) return malformed("import range");
  return m;
}

std::string encode(const digest_reply& m) {
  payload_writer w;
  w.u64(m.count);
  for (auto v : m.sum) w.u64(v);
  return w.take();
}
result<digest_reply> decode_digest_reply(std::string_view p) {
  payload_reader r(p);
  digest_reply m;
  m.count = r.u64();
  for (auto& v : m.sum) v = r.u64();
  if (!r.done()) return malformed("digest reply");
  return m;
}

std::string encode(const migrate_control& m) {
  payload_writer w;
  w.bytes(m.migration).bytes(m.command);
  return w.take();
}
result<migrate_control> decode_migrate_control(std::string_view p) {
  payload_reader r(p);
  migrate_control m;
  m.migration = r.bytes();
  m.command = r.bytes();
  if (!r.done()) return malformed("migrate_control");
  return m;
}

std::string encode(const median_request& m) {
  payload_writer w;
  w.bytes(m.index).u32(m.shard);
  return w.take();
}
result<median_request> decode_median_request(std::string_view p) {
  payload_reader r(p);
  median_request m;
  m.index = r.bytes();
  m.shard = r.u32();
  if (!r.done()) return malformed("shard_median");
  return m;
}

std::string encode(const median_reply& m) {
  payload_writer w;
  w.bytes(m.key).u64(m.records);
  return w.take();
}
result<median_reply> decode_median_reply(std::string_view p) {
  payload_reader r(p);
  median_reply m;
  m.key = r.bytes();
  m.records = r.u64();
  if (!r.done()) return malformed("median reply");
  return m;
}

}  // namespace shardd::peer
