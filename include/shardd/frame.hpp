#pragma once
// The peer protocol's frame codec (docs/peer-protocol.md). Pure: bytes in, values out.

#include "shardd/error.hpp"

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace shardd::peer {

inline constexpr std::uint32_t protocol_version = 1;
inline constexpr std::size_t header_bytes = 24;
/// Hard maximum frame size. Room for the largest payloads the node builds: a forwarded body
/// (rest.max_body_bytes, at most 64 MiB), or a data batch or scan page (a 4 MiB or 16 MiB
/// budget plus one record of up to limits.max_doc_bytes, at most 64 MiB).
inline constexpr std::size_t default_max_frame_bytes = 96u << 20;

enum class frame_type : std::uint8_t {
  hello = 1,          ///< client → server, first frame: protocol version, cluster id, node id
  hello_ok = 2,       ///< server → client: accepted
  error = 3,          ///< reply to any request: errc + detail
  heartbeat = 10,     ///< node → controller: liveness and node stats
  heartbeat_ack = 11, ///< controller → node: its map version, and the map if the node is behind
  join = 12,          ///< node → controller: register (id, addresses, weight)
  join_ok = 13,       ///< controller → node: the current map
  map_push = 14,      ///< controller → node: a new map version
  map_ack = 15,
  map_get = 16,       ///< any → any: send me your map
  map_reply = 17,
  ping = 18,          ///< member → member: nothing to do; the reply is `ack` (the monitor's round trip per peer)
  forward = 20,       ///< an HTTP request for the node that owns the shard
  forward_reply = 21,
  write_ops = 22,     ///< a batch of record writes for shards the receiver owns
  write_reply = 23,
  scan_shard = 24,    ///< a page of one shard's records
  scan_reply = 25,
  node_stats = 26,    ///< the receiver's per-shard records and bytes
  stats_reply = 27,
  moved = 28,         ///< reply: the receiver does not own that shard in its (newer) map
  ack = 29,           ///< reply: done, nothing to say
  data_batch = 40,    ///< migration data, checksummed end to end
  import_digest = 41, ///< source → target: digest of what you imported
  digest_reply = 42,
  import_reset = 43,  ///< source → target: drop what you imported of a range (copy again)
  migrate_start = 44, ///< controller → source: run this migration
  migrate_control = 45,  ///< controller → source: pause, resume, cancel
  migrate_report = 46,   ///< source → controller: progress; the reply is the controller's record
  migrate_commit = 47,   ///< source → controller: make the target the owner
  shard_median = 48,  ///< controller → owner: the median key of a range shard
  median_reply = 49,
};

/// True for the frame types this version knows.
bool known_type(std::uint8_t t) noexcept;
std::string_view to_string(frame_type t) noexcept;

enum frame_flags : std::uint8_t {
  flag_checksummed = 0x01,  ///< the payload's last 4 bytes are the CRC32C of the rest
  /// On a data_batch only: the batch belongs to a move of priority high, whose work the target
  /// does on its high-priority migration threads. Refused on any other frame.
  flag_high_priority = 0x02,
  /// On a data_batch only: the payload is the batch compressed (`compress_batch`); the target
  /// expands it on its migration pool before anything else of it is read. Refused on any other
  /// frame.
  flag_compressed = 0x04,
};

struct frame_header {
  std::uint32_t length = header_bytes;  ///< whole frame, header included
  frame_type type = frame_type::error;
  std::uint8_t flags = 0;
  std::uint64_t request_id = 0;
  std::uint64_t map_version = 0;
};

struct frame {
  frame_header header;
  std::string payload;  ///< without the checksum
  /// A checksummed frame whose checksum did not match: framing is intact, so the stream goes
  /// on, but the payload must not be used. The receiver answers with an error.
  bool corrupt = false;
  /// Fault injection for tests: `encode` flips one payload byte after computing the checksum.
  bool corrupt_after_checksum = false;
  /// Set by the transport on a reply: the node id (certificate CN) of the peer that sent it.
  std::string sender;
  /// The payload starts with header_bytes of room for the header (data_batch_writer builds
  /// batches so): encode(frame&&) writes the header there instead of copying the payload.
  bool header_room = false;
  /// `crc32c` of the payload (after the header room, if any), computed where the payload was built — a
  /// migration batch, on the migration pool, while it is still in that core's cache — so that
  /// `encode`, on a network thread, does not read megabytes again. A wrong value is what the
  /// receiver's check catches (the frame arrives `corrupt`).
  std::optional<std::uint32_t> checksum;
  /// A large data batch whose checksum the network thread that read it left unchecked
  /// (`checksum` holds the one sent): the receiver checks it (`payload_intact`) off the network
  /// thread, before it uses the payload. A megabyte's CRC is not the network thread's work.
  bool checksum_deferred = false;
};

/// Serialises a frame; sets the length, and appends the CRC32C when flag_checksummed is set.
std::string encode(const frame& f);
/// The same, taking the payload: with `header_room`, the frame is built in the payload's own
/// buffer (no copy of it).
std::string encode(frame&& f);

/// Parses and checks a header: length within [header_bytes, max_frame_bytes], a known type,
/// no unknown flags, reserved bytes zero.
[[nodiscard]] result<frame_header> decode_header(std::span<const std::uint8_t> bytes, std::size_t max_frame_bytes);

/// Builds a frame from a checked header and the bytes that followed it; verifies and strips
/// the checksum of a checksummed frame (a mismatch sets `corrupt`). `defer_checksum`: strips
/// it unchecked, into `checksum`, and sets `checksum_deferred`.
[[nodiscard]] result<frame> finish_frame(const frame_header& h, std::string body, bool defer_checksum = false);
/// Whether a received frame's payload may be used: not `corrupt`, and a deferred checksum
/// matches.
[[nodiscard]] bool payload_intact(const frame& f) noexcept;

/// Splits a byte stream into frames. Feed bytes with `feed`; `next` returns complete frames.
/// After an error the stream is unusable (the connection must close).
class frame_decoder {
 public:
  explicit frame_decoder(std::size_t max_frame_bytes = default_max_frame_bytes) : max_(max_frame_bytes) {}
  void feed(std::string_view bytes) { buffer_.append(bytes); }
  /// A frame if one is complete, nullopt if more bytes are needed, or an error.
  [[nodiscard]] result<std::optional<frame>> next();
  std::size_t buffered() const noexcept { return buffer_.size() - pos_; }
  /// A frame of at least `min_length` bytes whose header is buffered but not all its body:
  /// its header and the body bytes buffered so far, taken out of the decoder, for the caller
  /// to read the rest straight into place and call finish_frame. Nothing otherwise (a bad
  /// header included: next() reports it).
  struct partial {
    frame_header header;
    std::string body;  ///< the bytes buffered so far
  };
  std::optional<partial> take_partial(std::size_t min_length);
  std::size_t reserved() const noexcept { return buffer_.capacity(); }  ///< bytes held for frames to come

 private:
  std::size_t max_;
  std::string buffer_;
  std::size_t pos_ = 0;
  bool failed_ = false;
};

/// CRC32C (Castagnoli), as used by iSCSI and RocksDB.
std::uint32_t crc32c(std::string_view data, std::uint32_t seed = 0) noexcept;

/// Writes a binary payload: big-endian integers and length-prefixed byte strings.
class payload_writer {
 public:
  payload_writer& u8(std::uint8_t v);
  payload_writer& u16(std::uint16_t v);
  payload_writer& u32(std::uint32_t v);
  payload_writer& u64(std::uint64_t v);
  payload_writer& bytes(std::string_view v);  ///< u32 length, then the bytes
  std::string take() { return std::move(out_); }
  std::string& buffer() noexcept { return out_; }

 private:
  std::string out_;
};

/// Reads a binary payload with bounds checks. After the first failed read every read fails
/// and `ok()` is false; callers check once at the end.
class payload_reader {
 public:
  explicit payload_reader(std::string_view in) : in_(in) {}
  std::uint8_t u8();
  std::uint16_t u16();
  std::uint32_t u32();
  std::uint64_t u64();
  std::string_view bytes();  ///< views into the input
  /// Marks the payload invalid (a value out of its domain).
  void fail() noexcept { ok_ = false; }
  bool ok() const noexcept { return ok_; }
  bool done() const noexcept { return ok_ && pos_ == in_.size(); }
  std::size_t remaining() const noexcept { return in_.size() - pos_; }

 private:
  bool take(std::size_t n);
  std::string_view in_;
  std::size_t pos_ = 0;
  bool ok_ = true;
};

}  // namespace shardd::peer
