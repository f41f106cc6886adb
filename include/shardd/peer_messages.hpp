#pragma once
// Payloads of the peer protocol's frames (docs/peer-protocol.md), with their codecs. Pure.

#include "shardd/error.hpp"
#include "shardd/frame.hpp"

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace shardd::peer {

/// First frame on a connection (client → server).
struct hello {
  std::uint32_t protocol = protocol_version;
  std::string cluster_id;
  std::string node_id;
};
std::string encode(const hello& m);
[[nodiscard]] result<hello> decode_hello(std::string_view p);

/// An error answer to any request.
struct error_reply {
  errc code = errc::internal;
  std::string detail;
};
std::string encode(const error_reply& m);
[[nodiscard]] result<error_reply> decode_error(std::string_view p);

/// A node asking to join, or refreshing its registration.
struct join_request {
  std::string node_id;
  std::string rest_address;
  std::string peer_address;
  std::uint32_t weight = 1;
};
std::string encode(const join_request& m);
[[nodiscard]] result<join_request> decode_join(std::string_view p);

/// One shard's load as its owner's monitor measured it over its last interval.
struct shard_load {
  std::uint32_t index_id = 0;
  std::uint32_t shard_id = 0;
  std::uint64_t records = 0;
  std::uint64_t bytes = 0;
  double reads_per_sec = 0;   ///< point reads and scanned records
  double writes_per_sec = 0;  ///< puts and deletes
  double bytes_in_per_sec = 0;
  double bytes_out_per_sec = 0;
  /// The share of its sampled requests its hottest key had, in thousandths on the wire (0: unknown).
  double top_key_share = 0;
  friend bool operator==(const shard_load&, const shard_load&) = default;
};
/// The largest rate a heartbeat carries, in thousandths (2^48: 281 billion per second).
constexpr std::uint64_t max_rate_milli = 1ull << 48;
/// Shard loads one heartbeat may carry at most (a node holds at most this many shards).
constexpr std::uint32_t max_heartbeat_loads = 1u << 20;

/// What a node's monitor tells the controller: each local shard's load over the last interval
/// and how many anomalies it has open.
struct load_report {
  std::vector<shard_load> shards;
  std::uint32_t anomalies_open = 0;
};

/// Something a member noticed that belongs in the controller's event journal (an anomaly
/// opened or closed, its monitor's settings changed). Sent with heartbeats until one is
/// answered; `seq` lets the controller skip what it already recorded.
struct member_event {
  std::uint64_t seq = 0;    ///< per sender incarnation, increasing from 1
  std::string type;         ///< "anomaly" or "monitor"
  std::string summary;      ///< one line, at most max_event_summary bytes
  std::string fields_json;  ///< a JSON object of strings and numbers, at most max_event_fields bytes
  friend bool operator==(const member_event&, const member_event&) = default;
};
constexpr std::uint32_t max_heartbeat_events = 64;
constexpr std::size_t max_event_type = 32;
constexpr std::size_t max_event_summary = 512;
constexpr std::size_t max_event_fields = 2048;

/// Liveness and the sender's totals, every heartbeat interval, with the load of each shard it
/// owns (empty while its monitor is off or has not sampled yet) and its open anomalies.
struct heartbeat {
  std::string node_id;
  std::uint64_t map_version = 0;
  std::uint32_t shards = 0;
  std::uint64_t records = 0;
  std::uint64_t bytes = 0;
  std::vector<shard_load> load;
  std::uint32_t anomalies_open = 0;
  std::uint64_t incarnation = 0;  ///< the sender's, random per start: its event seqs start again
  std::vector<member_event> events;
  std::uint64_t disk_used = 0, disk_total = 0;  ///< the data disk (disk_total 0: not measured)
};
std::string encode(const heartbeat& m);
[[nodiscard]] result<heartbeat> decode_heartbeat(std::string_view p);

/// An HTTP request relayed to the node that owns its shard, and the owner's answer.
struct forward_request {
  std::string method;
  std::string target;
  std::string content_type;
  std::string body;
  std::string request_id;  ///< the client's request's id (a trailing field: empty from an older sender)
};
/// The longest request id a forward carries.
constexpr std::size_t max_request_id = 128;
std::string encode(const forward_request& m);
[[nodiscard]] result<forward_request> decode_forward_request(std::string_view p);

struct forward_response {
  std::uint16_t status = 200;
  std::string content_type;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
};
std::string encode(const forward_response& m);
[[nodiscard]] result<forward_response> decode_forward_response(std::string_view p);

/// Record writes for shards the receiver owns (bulk requests split by owner).
struct record_op {
  std::uint8_t kind = 0;  ///< 0 put, 1 delete
  std::string key;        ///< storage key
  std::string value;
};
struct write_request {
  std::uint32_t index_id = 0;
  std::vector<record_op> ops;
};
std::string encode(const write_request& m);
[[nodiscard]] result<write_request> decode_write_request(std::string_view p);

struct write_reply {
  std::vector<std::uint8_t> statuses;  ///< storage::op_status per op
};
std::string encode(const write_reply& m);
[[nodiscard]] result<write_reply> decode_write_reply(std::string_view p);

/// One page of one shard's records in [begin, end), after `after`.
struct scan_request {
  std::string index;
  std::uint32_t shard = 0;
  std::string begin;  ///< storage keys
  std::string end;
  std::optional<std::string> after;
  std::uint32_t limit = 100;
  std::uint32_t max_examined = 100000;
  std::optional<std::string> key_start, key_end, key_prefix;  ///< user-key filter (hash indexes)
};
std::string encode(const scan_request& m);
[[nodiscard]] result<scan_request> decode_scan_request(std::string_view p);

struct scan_reply {
  std::vector<std::pair<std::string, std::string>> records;  ///< storage key, document
  std::optional<std::string> resume_after;
  std::uint32_t examined = 0;
};
std::string encode(const scan_reply& m);
[[nodiscard]] result<scan_reply> decode_scan_reply(std::string_view p);

/// Exact counts of the shards a node holds.
struct shard_stat {
  std::uint32_t index_id = 0;
  std::uint32_t shard_id = 0;
  std::uint64_t records = 0;
  std::uint64_t bytes = 0;
};
struct stats_reply {
  std::vector<shard_stat> shards;
};
std::string encode(const stats_reply& m);
[[nodiscard]] result<stats_reply> decode_stats_reply(std::string_view p);

/// Migration data (`data_batch`): records copied from a snapshot (kind 0), or writes shipped
/// from the log (kind 1). Built one record at a time, straight from where the records are
/// read, and decoded in place, so no record is held as a string of its own on either side.
/// The writer builds a payload one record at a time.
class data_batch_writer {
 public:
  /// `header_room`: the payload starts with room for the frame header (frame::header_room),
  /// so the frame is built around it without copying the batch.
  data_batch_writer(std::string_view migration, std::uint8_t kind, std::size_t reserve_bytes = 0, bool header_room = false);
  void add(std::uint8_t op_kind, std::string_view key, std::string_view value);
  std::uint32_t count() const noexcept { return count_; }
  /// Appends the cursor and sequence and returns the payload.
  std::string finish(std::string_view cursor, std::uint64_t seq);

 private:
  payload_writer w_;
  std::size_t count_at_ = 0;
  std::uint32_t count_ = 0;
};

/// A data_batch decoded in place: every view points into the payload, which must outlive it.
/// `ops`: kind 0 put, 1 delete, storage keys; `cursor`: a copy's last key; `seq`: the last log
/// sequence a tail batch covers.
struct record_op_view {
  std::uint8_t kind = 0;
  std::string_view key;
  std::string_view value;
};
struct data_batch_view {
  std::string_view migration;
  std::uint8_t kind = 0;
  std::vector<record_op_view> ops;
  std::string_view cursor;
  std::uint64_t seq = 0;
};
[[nodiscard]] result<data_batch_view> decode_data_batch_view(std::string_view p);
std::string encode(const data_batch_view& m);
/// What a receiver needs before the records: the kind, the number of records and the first
/// key (empty if none), read without touching the rest (which decode_data_batch_view checks).
struct data_batch_head {
  std::uint8_t kind = 0;
  std::uint32_t count = 0;
  std::string_view first_key;
};
[[nodiscard]] result<data_batch_head> peek_data_batch(std::string_view p);

/// A range of one migration (import_digest, import_reset).
struct import_range {
  std::string migration;
  std::uint32_t index_id = 0;
  std::uint32_t shard_id = 0;
  std::string begin, end;
};
std::string encode(const import_range& m);
[[nodiscard]] result<import_range> decode_import_range(std::string_view p);

struct digest_reply {
  std::uint64_t count = 0;
  std::array<std::uint64_t, 4> sum{};
};
std::string encode(const digest_reply& m);
[[nodiscard]] result<digest_reply> decode_digest_reply(std::string_view p);

/// A command for a running migration: "pause", "resume" or "cancel".
struct migrate_control {
  std::string migration;
  std::string command;
};
std::string encode(const migrate_control& m);
[[nodiscard]] result<migrate_control> decode_migrate_control(std::string_view p);

/// The median key of a range shard (for a split), and how many records it holds.
struct median_request {
  std::string index;
  std::uint32_t shard = 0;
};
std::string encode(const median_request& m);
[[nodiscard]] result<median_request> decode_median_request(std::string_view p);
struct median_reply {
  std::string key;  ///< user key; empty if the shard holds fewer than two records
  std::uint64_t records = 0;
};
std::string encode(const median_reply& m);
[[nodiscard]] result<median_reply> decode_median_reply(std::string_view p);

}  // namespace shardd::peer
