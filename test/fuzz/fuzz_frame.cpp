// libFuzzer target for the peer protocol decoder: the frame stream decoder, every payload
// decoder and the partition map parser. Properties checked besides "no crash, no sanitizer
// report": whatever decodes intact re-encodes to the same bytes.
//   meson setup build-fuzz -Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false \
//     -Dcpp_args=-fno-sanitize=function   (with CXX=clang++)
//   ninja -C build-fuzz && build-fuzz/test/fuzz/fuzz_frame -max_total_time=60 test/fuzz/corpus

#include "shardd/frame.hpp"
#include "shardd/partition_map.hpp"
#include "shardd/peer_messages.hpp"

#include <cstdint>
#include <string>

using namespace shardd;
using namespace shardd::peer;

namespace {

// Decodes `p` as T; if it decodes, encoding the value must give `p` back.
template <class Decode>
void round_trip(std::string_view p, Decode decode) {
  auto v = decode(p);
  if (v && encode(*v) != p) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  frame_decoder d(1u << 16);
  d.feed(in);
  std::size_t offset = 0;
  for (;;) {
    auto r = d.next();
    if (!r || !*r) break;
    const frame& f = **r;
    // An intact frame re-encodes to exactly the bytes it came from.
    if (!f.corrupt && in.compare(offset, f.header.length, encode(f)) != 0) __builtin_trap();
    offset += f.header.length;
    const std::string_view p = f.payload;
    round_trip(p, decode_hello);
    round_trip(p, decode_error);
    round_trip(p, decode_join);
    round_trip(p, decode_heartbeat);
    round_trip(p, decode_forward_request);
    round_trip(p, decode_forward_response);
    round_trip(p, decode_write_request);
    round_trip(p, decode_write_reply);
    round_trip(p, decode_scan_request);
    round_trip(p, decode_scan_reply);
    round_trip(p, decode_stats_reply);
    round_trip(p, decode_data_batch_view);
    round_trip(p, decode_import_range);
    round_trip(p, decode_digest_reply);
    round_trip(p, decode_migrate_control);
    round_trip(p, decode_median_request);
    round_trip(p, decode_median_reply);
    if (f.header.type == frame_type::map_push || f.header.type == frame_type::map_reply) {
      auto m = from_json(p);
      if (m && !validate(*m)) __builtin_trap();  // from_json only returns valid maps
    }
  }
  return 0;
}
