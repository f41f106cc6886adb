// Per-byte costs of a migration batch on one core: prints figures, asserts nothing.
//   checksum_bench
// CRC32C (every data_batch, both ends) and the record digest's SHA-256 (every record a write
// or an ingest keeps in its shard's digest), in GiB/s over a 4 MiB buffer, beside memcpy of the
// same buffer in the same run (the anchor), as ratios.

#include "shardd/digest.hpp"
#include "shardd/frame.hpp"

#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

using namespace shardd;
using clock_type = std::chrono::steady_clock;

namespace {

volatile std::uint64_t sink;

template <class F>
double best_gib_per_s(std::size_t bytes, F f) {
  double best = 0;
  for (int round = 0; round < 7; ++round) {
    const auto t0 = clock_type::now();
    for (int i = 0; i < 16; ++i) f();
    const double s = std::chrono::duration<double>(clock_type::now() - t0).count();
    best = std::max(best, 16.0 * static_cast<double>(bytes) / s / (1u << 30));
  }
  return best;
}

}  // namespace

int main() {
  const std::size_t n = 4u << 20;
  std::string buf(n, '\0'), copy(n, '\0');
  std::mt19937_64 rng(1);
  for (auto& c : buf) c = static_cast<char>(rng());
  const double memcpy_rate = best_gib_per_s(n, [&] {
    std::memcpy(copy.data(), buf.data(), n);
    sink = sink + static_cast<unsigned char>(copy[n / 2]);
  });
  const double crc_rate = best_gib_per_s(n, [&] { sink = sink + peer::crc32c(buf); });
  // Records of 1 KiB and of 100 bytes, as the migration benchmark moves (16-byte keys).
  auto digest_rate = [&](std::size_t value) {
    return best_gib_per_s(n, [&] {
      range_digest d;
      const std::string_view all(buf);
      for (std::size_t at = 0; at + 16 + value <= n; at += 16 + value) d.add(all.substr(at, 16), all.substr(at + 16, value));
      sink = sink + d.count();
    });
  };
  const double sha_1k = digest_rate(1024), sha_100 = digest_rate(100);
  std::printf("RESULT anchor memcpy_gib_per_s=%.2f\n", memcpy_rate);
  std::printf("RESULT crc32c gib_per_s=%.2f ratio_to_memcpy=%.3f\n", crc_rate, crc_rate / memcpy_rate);
  std::printf("RESULT record_digest doc_bytes=1024 gib_per_s=%.2f ratio_to_memcpy=%.3f\n", sha_1k, sha_1k / memcpy_rate);
  std::printf("RESULT record_digest doc_bytes=100 gib_per_s=%.2f ratio_to_memcpy=%.3f\n", sha_100, sha_100 / memcpy_rate);
  return 0;
}
