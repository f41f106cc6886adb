#include "shardd/frame.hpp"

#include "shardd/key_codec.hpp"

#include <algorithm>
#include <array>
#include <cstring>

namespace shardd::peer {

bool known_type(std::uint8_t t) noexcept {
  switch (static_cast<frame_type>(t)) {
    case frame_type::hello:
    case frame_type::hello_ok:
    case frame_type::error:
    case frame_type::heartbeat:
    case frame_type::heartbeat_ack:
    case frame_type::join:
    case frame_type::join_ok:
    case frame_type::map_push:
    case frame_type::map_ack:
    case frame_type::map_get:
    case frame_type::map_reply:
    case frame_type::ping:
    case frame_type::forward:
    case frame_type::forward_reply:
    case frame_type::write_ops:
    case frame_type::write_reply:
    case frame_type::scan_shard:
    case frame_type::scan_reply:
    case frame_type::node_stats:
    case frame_type::stats_reply:
    case frame_type::moved:
    case frame_type::ack:
    case frame_type::data_batch:
    case frame_type::import_digest:
    case frame_type::digest_reply:
    case frame_type::import_reset:
    case frame_type::migrate_start:
    case frame_type::migrate_control:
    case frame_type::migrate_report:
    case frame_type::migrate_commit:
    case frame_type::shard_median:
    case frame_type::median_reply:
      return true;
  }
  return false;
}

std::string_view to_string(frame_type t) noexcept {
  switch (t) {
    case frame_type::hello: return "hello";
    case frame_type::hello_ok: return "hello_ok";
    case frame_type::error: return "error";
    case frame_type::heartbeat: return "heartbeat";
    case frame_type::heartbeat_ack: return "heartbeat_ack";
    case frame_type::join: return "join";
    case frame_type::join_ok: return "join_ok";
    case frame_type::map_push: return "map_push";
    case frame_type::map_ack: return "map_ack";
    case frame_type::map_get: return "map_get";
    case frame_type::map_reply: return "map_reply";
    case frame_type::ping: return "ping";
    case frame_type::forward: return "forward";
    case frame_type::forward_reply: return "forward_reply";
    case frame_type::write_ops: return "write_ops";
    case frame_type::write_reply: return "write_reply";
    case frame_type::scan_shard: return "scan_shard";
    case frame_type::scan_reply: return "scan_reply";
    case frame_type::node_stats: return "node_stats";
    case frame_type::stats_reply: return "stats_reply";
    case frame_type::moved: return "moved";
    case frame_type::ack: return "ack";
    case frame_type::data_batch: return "data_batch";
    case frame_type::import_digest: return "import_digest";
    case frame_type::digest_reply: return "digest_reply";
    case frame_type::import_reset: return "import_reset";
    case frame_type::migrate_start: return "migrate_start";
    case frame_type::migrate_control: return "migrate_control";
    case frame_type::migrate_report: return "migrate_report";
    case frame_type::migrate_commit: return "migrate_commit";
    case frame_type::shard_median: return "shard_median";
    case frame_type::median_reply: return "median_reply";
  }
  return "unknown";
}

namespace {

std::array<std::uint32_t, 256> make_crc_table() {
  std::array<std::uint32_t, 256> t{};
  for (std::uint32_t i = 0; i < 256; ++i) {
    std::uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82f63b78u : c >> 1;
    t[i] = c;
  }
  return t;
}

const std::array<std::uint32_t, 256> crc_table = make_crc_table();

std::uint32_t crc32c_table(std::string_view data, std::uint32_t seed) noexcept {
  std::uint32_t c = ~seed;
  for (unsigned char b : data) c = crc_table[(c ^ b) & 0xff] ^ (c >> 8);
  return ~c;
}

#if defined(__x86_64__)
// The SSE4.2 crc32 instruction computes CRC32C 8 bytes at a time (~20x the table). It takes
// three cycles and can start one per cycle, so large inputs run three streams at once over
// three blocks of `block` bytes and join them: the CRC register is linear, so the state after
// A‖B is shift(state after A, |B|) xor (state of B from 0), where shift feeds |B| zero bytes,
// done with four table lookups for the fixed block size.
__attribute__((target("sse4.2"))) std::uint64_t crc32c_run(std::uint64_t c, const char* p, std::size_t n) noexcept {
  for (; n >= 8; p += 8, n -= 8) {
    std::uint64_t v;
    std::memcpy(&v, p, 8);
    c = __builtin_ia32_crc32di(c, v);
  }
  auto c32 = static_cast<std::uint32_t>(c);
  while (n--) c32 = __builtin_ia32_crc32qi(c32, static_cast<unsigned char>(*p++));
  return c32;
}

constexpr std::size_t crc_block = 4096;

/// shift[k][b]: the register after crc_block zero bytes from the register b << 8k.
struct crc_shift_table {
  std::array<std::array<std::uint32_t, 256>, 4> t{};
  crc_shift_table() {
    const std::string zeros(crc_block, '\0');
    for (std::size_t k = 0; k < 4; ++k)
      for (std::uint32_t b = 0; b < 256; ++b)
        t[k][b] = static_cast<std::uint32_t>(crc32c_run(static_cast<std::uint64_t>(b) << (8 * k), zeros.data(), crc_block));
  }
  std::uint32_t shift(std::uint32_t c) const noexcept {
    return t[0][c & 0xff] ^ t[1][(c >> 8) & 0xff] ^ t[2][(c >> 16) & 0xff] ^ t[3][c >> 24];
  }
};

__attribute__((target("sse4.2"))) std::uint32_t crc32c_sse42(std::string_view data, std::uint32_t seed) noexcept {
  std::uint64_t c = ~seed;
  const char* p = data.data();
  std::size_t n = data.size();
  if (n >= 3 * crc_block) {
    static const crc_shift_table table;
    while (n >= 3 * crc_block) {
      std::uint64_t a = c, b = 0, d = 0;
      const char* pb = p + crc_block;
      const char* pd = p + 2 * crc_block;
      for (std::size_t i = 0; i < crc_block; i += 8) {
        std::uint64_t va, vb, vd;
        std::memcpy(&va, p + i, 8);
        std::memcpy(&vb, pb + i, 8);
        std::memcpy(&vd, pd + i, 8);
        a = __builtin_ia32_crc32di(a, va);
        b = __builtin_ia32_crc32di(b, vb);
        d = __builtin_ia32_crc32di(d, vd);
      }
      const std::uint32_t ab = table.shift(static_cast<std::uint32_t>(a)) ^ static_cast<std::uint32_t>(b);
      c = table.shift(ab) ^ static_cast<std::uint32_t>(d);
      p += 3 * crc_block;
      n -= 3 * crc_block;
    }
  }
  return ~static_cast<std::uint32_t>(crc32c_run(c, p, n));
}
#endif

}  // namespace

std::uint32_t crc32c(std::string_view data, std::uint32_t seed) noexcept {
#if defined(__x86_64__)
  static const bool hw = __builtin_cpu_supports("sse4.2");
  if (hw) return crc32c_sse42(data, seed);
#endif
  return crc32c_table(data, seed);
}



namespace {

/// The 24 header bytes, big-endian, written in place (no buffer of their own).
void write_header(char* at, const frame_header& h, std::size_t length) {
  auto put = [&at](std::uint64_t v, int bytes) {
    for (int i = bytes - 1; i >= 0; --i) *at++ = static_cast<char>(v >> (8 * i));
  };
  put(static_cast<std::uint32_t>(length), 4);
  put(static_cast<std::uint8_t>(h.type), 1);
  put(h.flags, 1);
  put(0, 2);
  put(h.request_id, 8);
  put(h.map_version, 8);
}

}  // namespace

std::string encode(const frame& f) {
  const bool sum = f.header.flags & flag_checksummed;
  const std::string_view payload = f.header_room ? std::string_view(f.payload).substr(header_bytes) : f.payload;
  const std::size_t length = header_bytes + payload.size() + (sum ? 4 : 0);
  std::string out;
  out.reserve(length);
  out.resize(header_bytes);
  write_header(out.data(), f.header, length);
  out.append(payload);
  if (sum) append_u32be(out, f.checksum ? *f.checksum : crc32c(payload));
  if (f.corrupt_after_checksum && !payload.empty()) out[header_bytes] = static_cast<char>(out[header_bytes] ^ 0x5a);
  return out;
}

std::string encode(frame&& f) {
  if (!f.header_room || f.payload.size() < header_bytes) return encode(static_cast<const frame&>(f));
  const bool sum = f.header.flags & flag_checksummed;
  std::string out = std::move(f.payload);
  const std::size_t length = out.size() + (sum ? 4 : 0);
  write_header(out.data(), f.header, length);
  if (sum) append_u32be(out, f.checksum ? *f.checksum : crc32c(std::string_view(out).substr(header_bytes)));
  if (f.corrupt_after_checksum && out.size() > header_bytes + (sum ? 4 : 0))
    out[header_bytes] = static_cast<char>(out[header_bytes] ^ 0x5a);
  return out;
}

result<frame_header> decode_header(std::span<const std::uint8_t> b, std::size_t max_frame_bytes) {
  if (b.size() < header_bytes) return make_error(errc::invalid_argument, "frame header truncated");
  std::string_view v(reinterpret_cast<const char*>(b.data()), header_bytes);
  frame_header h;
  h.length = read_u32be(v);
  if (h.length < header_bytes)
    return make_error(errc::invalid_argument, "frame length " + std::to_string(h.length) + " is below the header size");
  if (h.length > max_frame_bytes)
    return make_error(errc::too_large, "frame length " + std::to_string(h.length) + " exceeds the maximum of " +
                                           std::to_string(max_frame_bytes));
  if (!known_type(b[4])) return make_error(errc::invalid_argument, "unknown frame type " + std::to_string(b[4]));
  h.type = static_cast<frame_type>(b[4]);
  h.flags = b[5];
  if (h.flags & ~(flag_checksummed | flag_high_priority | flag_compressed))
    return make_error(errc::invalid_argument, "unknown frame flags");
  if ((h.flags & flag_high_priority) && h.type != frame_type::data_batch)
    return make_error(errc::invalid_argument, "the high-priority flag is for data batches only");
  if ((h.flags & flag_compressed) && h.type != frame_type::data_batch)
    return make_error(errc::invalid_argument, "the compressed flag is for data batches only");
  if (b[6] != 0 || b[7] != 0) return make_error(errc::invalid_argument, "reserved frame bytes are not zero");
  h.request_id = read_u64be(v.substr(8));
  h.map_version = read_u64be(v.substr(16));
  if ((h.flags & flag_checksummed) && h.length < header_bytes + 4)
    return make_error(errc::invalid_argument, "checksummed frame too short for its checksum");
  return h;
}

result<frame> finish_frame(const frame_header& h, std::string body, bool defer_checksum) {
  if (body.size() != h.length - header_bytes) return make_error(errc::invalid_argument, "frame body size mismatch");
  frame f;
  f.header = h;
  f.payload = std::move(body);
  if (h.flags & flag_checksummed) {
    const std::size_t n = f.payload.size() - 4;
    const std::uint32_t want = read_u32be(std::string_view(f.payload).substr(n));
    f.payload.resize(n);
    if (defer_checksum) {
      f.checksum = want;
      f.checksum_deferred = true;
    } else {
      f.corrupt = crc32c(f.payload) != want;
    }
  }
  return f;
}

bool payload_intact(const frame& f) noexcept {
  if (f.corrupt) return false;
  return !f.checksum_deferred || (f.checksum && crc32c(f.payload) == *f.checksum);
}

std::optional<frame_decoder::partial> frame_decoder::take_partial(std::size_t min_length) {
  if (failed_) return std::nullopt;
  const std::size_t avail = buffer_.size() - pos_;
  if (avail < header_bytes) return std::nullopt;
  auto h = decode_header(std::span(reinterpret_cast<const std::uint8_t*>(buffer_.data() + pos_), header_bytes), max_);
  if (!h || h->length < min_length || avail >= h->length) return std::nullopt;
  partial out{*h, buffer_.substr(pos_ + header_bytes)};
  buffer_.clear();
  pos_ = 0;
  return out;
}

result<std::optional<frame>> frame_decoder::next() {
  if (failed_) return make_error(errc::invalid_argument, "frame stream already failed");
  const std::size_t avail = buffer_.size() - pos_;
  if (avail < header_bytes) return std::optional<frame>{};
  auto h = decode_header(std::span(reinterpret_cast<const std::uint8_t*>(buffer_.data() + pos_), header_bytes), max_);
  if (!h) {
    failed_ = true;
    return h.error();
  }
  if (avail < h->length) {
    // Grow ahead of the bytes, at most doubling (and 4 MiB at least): a large frame is copied
    // a few times as it arrives, and a header that announces 96 MiB reserves nothing like it
    // before its bytes come.
    const std::size_t want = pos_ + h->length;
    const std::size_t step = std::max<std::size_t>(buffer_.size(), 4u << 20);
    if (buffer_.capacity() < want) buffer_.reserve(std::min(want, buffer_.size() + step));
    return std::optional<frame>{};
  }
  auto f = finish_frame(*h, buffer_.substr(pos_ + header_bytes, h->length - header_bytes));
  pos_ += h->length;
  if (pos_ == buffer_.size()) {
    buffer_.clear();
    pos_ = 0;
  } else if (pos_ > 1u << 20) {
    buffer_.erase(0, pos_);
    pos_ = 0;
  }
  if (!f) {
    failed_ = true;
    return f.error();
  }
  return std::optional<frame>(std::move(*f));
}

payload_writer& payload_writer::u8(std::uint8_t v) {
  out_.push_back(static_cast<char>(v));
  return *this;
}
payload_writer& payload_writer::u16(std::uint16_t v) {
  out_.push_back(static_cast<char>(v >> 8));
  out_.push_back(static_cast<char>(v));
  return *this;
}
payload_writer& payload_writer::u32(std::uint32_t v) {
  append_u32be(out_, v);
  return *this;
}
payload_writer& payload_writer::u64(std::uint64_t v) {
  append_u64be(out_, v);
  return *this;
}
payload_writer& payload_writer::bytes(std::string_view v) {
  append_u32be(out_, static_cast<std::uint32_t>(v.size()));
  out_.append(v);
  return *this;
}

bool payload_reader::take(std::size_t n) {
  if (!ok_ || in_.size() - pos_ < n) {
    ok_ = false;
    return false;
  }
  return true;
}
std::uint8_t payload_reader::u8() {
  if (!take(1)) return 0;
  return static_cast<std::uint8_t>(in_[pos_++]);
}
std::uint16_t payload_reader::u16() {
  if (!take(2)) return 0;
  auto v = static_cast<std::uint16_t>((static_cast<unsigned char>(in_[pos_]) << 8) | static_cast<unsigned char>(in_[pos_ + 1]));
  pos_ += 2;
  return v;
}
std::uint32_t payload_reader::u32() {
  if (!take(4)) return 0;
  auto v = read_u32be(in_.substr(pos_));
  pos_ += 4;
  return v;
}
std::uint64_t payload_reader::u64() {
  if (!take(8)) return 0;
  auto v = read_u64be(in_.substr(pos_));
  pos_ += 8;
  return v;
}
std::string_view payload_reader::bytes() {
  const auto n = u32();
  if (!take(n)) return {};
  auto v = in_.substr(pos_, n);
  pos_ += n;
  return v;
}

}  // namespace shardd::peer
