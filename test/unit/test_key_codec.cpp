#include "shardd/key_codec.hpp"

#include "support/catch_result.hpp"

#include <random>

using namespace shardd;

TEST_CASE("hash storage keys are prefix, big-endian token, then the user key") {
  auto k = storage_key_hash(0x01020304u, 0x1122334455667788ULL, "user");
  REQUIRE(k.size() == 4 + 8 + 4);
  CHECK(k.substr(0, 4) == std::string("\x01\x02\x03\x04", 4));
  CHECK(k.substr(4, 8) == std::string("\x11\x22\x33\x44\x55\x66\x77\x88", 8));
  CHECK(k.substr(12) == "user");
  auto d = decode_storage_key(k, partitioning::hash);
  REQUIRE(d);
  CHECK(d->index_id == 0x01020304u);
  CHECK(d->token == 0x1122334455667788ULL);
  CHECK(d->user_key == "user");
}

TEST_CASE("range storage keys are prefix then the user key and decode back") {
  auto k = storage_key_range(7, "alpha");
  CHECK(k == std::string("\0\0\0\x07" "alpha", 9));
  auto d = decode_storage_key(k, partitioning::range);
  REQUIRE(d);
  CHECK(d->index_id == 7);
  CHECK(!d->token);
  CHECK(d->user_key == "alpha");
}

TEST_CASE("truncated storage keys are rejected, not misread") {
  CHECK(!decode_storage_key("abc", partitioning::range));
  CHECK(!decode_storage_key(std::string("\0\0\0\1\0\0", 6), partitioning::hash));
}

TEST_CASE("byte order of encoded tokens equals numeric order") {
  std::mt19937_64 rng(42);
  for (int i = 0; i < 10000; ++i) {
    std::uint64_t a = rng(), b = rng();
    CHECK((token_key(a) < token_key(b)) == (a < b));
  }
}

TEST_CASE("every key of an index sorts inside the index's storage range") {
  std::mt19937_64 rng(7);
  for (std::uint32_t id : {1u, 2u, 255u, 256u, 65535u, 0xfffffffeu}) {
    key_range all{index_prefix(id), index_upper_bound(id)};
    for (int i = 0; i < 200; ++i) {
      std::string user(rng() % 20 + 1, '\0');
      for (auto& c : user) c = static_cast<char>(rng() % 256);
      CHECK(all.contains(storage_key_hash(id, rng(), user)));
      CHECK(all.contains(storage_key_range(id, user)));
    }
    CHECK(!all.contains(index_prefix(id + 1)));
  }
}

TEST_CASE("storage_range maps partition bounds to storage keys of the index") {
  auto r = storage_range(3, token_key(100), token_key(200));
  CHECK(r.contains(storage_key_hash(3, 100, "x")));
  CHECK(r.contains(storage_key_hash(3, 199, "zzzz")));
  CHECK(!r.contains(storage_key_hash(3, 200, "")));
  CHECK(!r.contains(storage_key_hash(3, 99, "zzzz")));
  auto open = storage_range(3, "m", std::nullopt);
  CHECK(open.contains(storage_key_range(3, "zzz\xff\xff")));
  CHECK(!open.contains(storage_key_range(4, "a")));
}

TEST_CASE("prefix_successor is the first string after every extension of the prefix") {
  CHECK(prefix_successor("abc") == "abd");
  CHECK(prefix_successor(std::string("a\xff", 2)) == "b");
  CHECK(!prefix_successor(std::string("\xff\xff", 2)));
  CHECK(!prefix_successor(""));
}

TEST_CASE("index names allow only [a-z0-9_-]{1,64}") {
  CHECK(validate_index_name("users"));
  CHECK(validate_index_name("a-b_c-09"));
  CHECK(validate_index_name(std::string(64, 'x')));
  CHECK(!validate_index_name(""));
  CHECK(!validate_index_name(std::string(65, 'x')));
  CHECK(!validate_index_name("Users"));
  CHECK(!validate_index_name("a/b"));
  CHECK(!validate_index_name("a.b"));
  CHECK(validate_index_name("a b").error().code == errc::invalid_argument);
}

TEST_CASE("keys must be 1 to 1024 bytes of valid UTF-8") {
  CHECK(validate_key("k"));
  CHECK(validate_key(std::string(1024, 'k')));
  CHECK(validate_key("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"));
  auto too_long = validate_key(std::string(1025, 'k'));
  REQUIRE(!too_long);
  CHECK(too_long.error().detail.find("1025") != std::string::npos);
  CHECK(!validate_key(""));
  CHECK(!validate_key("\xff"));
  CHECK(!validate_key("\xc0\xaf"));          // overlong '/'
  CHECK(!validate_key("\xed\xa0\x80"));      // surrogate
  CHECK(!validate_key("\xf4\x90\x80\x80"));  // above U+10FFFF
  CHECK(!validate_key("\xe2\x82"));          // truncated
}
