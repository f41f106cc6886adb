#pragma once
// Compression of migration batches on the wire: a copy batch of records that compress well
// crosses the network (and both ends' TLS, checksum and socket copies) in a fraction of its
// bytes. LZ4's block format: fast enough that the bytes it saves cost more than it does.

#include "shardd/error.hpp"

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace shardd::peer {

/// A batch smaller than this goes as it is (a tail batch of a few writes).
inline constexpr std::size_t compress_min_bytes = 64u << 10;
/// How much of a batch is compressed first to judge whether the whole is worth compressing.
inline constexpr std::size_t compress_sample_bytes = 64u << 10;

/// Compresses a batch: `payload` holds `room` bytes kept for the frame's header, then the batch.
/// Returns `room` bytes, the batch's length (u32, big-endian) and its LZ4 block, when its first
/// `compress_sample_bytes` and then the whole compress to at least `min_ratio` times smaller;
/// otherwise nothing (send it as it is). `min_ratio` <= 0: never.
std::optional<std::string> compress_batch(std::string_view payload, std::size_t room, double min_ratio);

/// Expands what `compress_batch` made (without its room): refuses a declared length over
/// `max_bytes` before it allocates (`too_large`), and bytes that are not one LZ4 block of
/// exactly the declared length (`invalid_argument`).
[[nodiscard]] result<std::string> expand_batch(std::string_view wire, std::size_t max_bytes);
/// The same into `out`, resized to the batch's length: what it held is overwritten, so a buffer
/// reused from a pool (buffer_pool) is neither zero-filled nor faulted in again. On an error
/// `out`'s contents are unspecified.
[[nodiscard]] result<void> expand_batch_into(std::string_view wire, std::size_t max_bytes, std::string& out);

}  // namespace shardd::peer
