#include "shardd/batch_codec.hpp"

#include "shardd/key_codec.hpp"

#include <lz4.h>

#include <algorithm>
#include <memory>

namespace shardd::peer {

namespace {

/// A compression buffer per thread, kept between batches (the migration pool's few threads):
/// the batch is compressed into it and only the result, a fraction of it, is copied out.
struct scratch {
  std::unique_ptr<char[]> data;
  std::size_t size = 0;
  char* get(std::size_t n) {
    if (n > size) {
      data.reset(new char[n]);  // not zeroed: LZ4 writes what is read back
      size = n;
    }
    return data.get();
  }
};

thread_local scratch tls_scratch;

}  // namespace

std::optional<std::string> compress_batch(std::string_view payload, std::size_t room, double min_ratio) {
  if (min_ratio <= 0 || payload.size() < room || payload.size() - room < compress_min_bytes) return std::nullopt;
  const std::string_view body = payload.substr(room);
  if (body.size() > static_cast<std::size_t>(LZ4_MAX_INPUT_SIZE)) return std::nullopt;
  const int whole = static_cast<int>(body.size());
  const int bound = LZ4_compressBound(whole);
  char* buf = tls_scratch.get(static_cast<std::size_t>(bound));
  // A sample first: a batch that does not compress costs a sixty-fourth of a whole attempt.
  if (body.size() >= 2 * compress_sample_bytes) {
    const int sample = static_cast<int>(compress_sample_bytes);
    const int n = LZ4_compress_default(body.data(), buf, sample, bound);
    if (n <= 0 || static_cast<double>(sample) < min_ratio * n) return std::nullopt;
  }
  const int n = LZ4_compress_default(body.data(), buf, whole, bound);
  if (n <= 0 || static_cast<double>(whole) < min_ratio * n) return std::nullopt;
  std::string out;
  out.reserve(room + 4 + static_cast<std::size_t>(n) + 4);  // and the frame's checksum
  out.append(payload.substr(0, room));
  append_u32be(out, static_cast<std::uint32_t>(whole));
  out.append(buf, static_cast<std::size_t>(n));
  return out;
}

result<std::string> expand_batch(std::string_view wire, std::size_t max_bytes) {
  std::string out;
  if (auto ok = expand_batch_into(wire, max_bytes, out); !ok) return ok.error();
  return out;
}

result<void> expand_batch_into(std::string_view wire, std::size_t max_bytes, std::string& out) {
  if (wire.size() < 4) return make_error(errc::invalid_argument, "compressed data_batch too short");
  const std::uint32_t length = read_u32be(wire);
  if (length > max_bytes || length > static_cast<std::uint32_t>(LZ4_MAX_INPUT_SIZE))
    return make_error(errc::too_large, "compressed data_batch expands to " + std::to_string(length) +
                                           " bytes, over the maximum of " + std::to_string(max_bytes));
  const std::string_view block = wire.substr(4);
  if (block.size() > static_cast<std::size_t>(LZ4_MAX_INPUT_SIZE))
    return make_error(errc::invalid_argument, "compressed data_batch too large");
  if (out.capacity() < length) {
    // A new buffer, with room for the slightly larger batches that follow (growing one in
    // place would double it), never more than `max_bytes`.
    std::string fresh;
    fresh.reserve(std::max<std::size_t>(length, std::min<std::size_t>(length + length / 8, max_bytes)));
    out = std::move(fresh);
  }
  out.resize(length);  // fills only what lies beyond what `out` held
  const int n = LZ4_decompress_safe(block.data(), out.data(), static_cast<int>(block.size()), static_cast<int>(length));
  if (n < 0 || static_cast<std::uint32_t>(n) != length)
    return make_error(errc::invalid_argument, "compressed data_batch does not expand to its declared length");
  return {};
}

}  // namespace shardd::peer
