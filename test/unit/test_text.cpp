#include "shardd/text.hpp"

#include "support/catch_result.hpp"

#include <boost/json/parse.hpp>

#include <random>

using namespace shardd;

TEST_CASE("base64url round-trips any bytes and matches RFC 4648 vectors") {
  CHECK(base64url_encode("") == "");
  CHECK(base64url_encode("f") == "Zg");
  CHECK(base64url_encode("fo") == "Zm8");
  CHECK(base64url_encode("foo") == "Zm9v");
  CHECK(base64url_encode("foobar") == "Zm9vYmFy");
  CHECK(base64url_encode("\xfb\xff") == "-_8");
  std::mt19937 rng(1);
  for (int i = 0; i < 500; ++i) {
    std::string s(rng() % 40, '\0');
    for (auto& c : s) c = static_cast<char>(rng());
    auto back = base64url_decode(base64url_encode(s));
    REQUIRE(back);
    CHECK(*back == s);
  }
}

TEST_CASE("base64url rejects text the encoder cannot produce") {
  CHECK(!base64url_decode("Zm9v!"));
  CHECK(!base64url_decode("Z"));
  CHECK(!base64url_decode("Zh"));   // non-zero leftover bits
  CHECK(!base64url_decode("Zm9v="));
}

TEST_CASE("tables align columns under a header row") {
  auto t = render_table({"index", "records"}, {{"users", "12"}, {"orders-2024", "3"}});
  CHECK(t ==
        "index        records\n"
        "users             12\n"
        "orders-2024        3\n");
  CHECK(render_table({"a", "b"}, {}) == "a  b\n");
}

TEST_CASE("JSON strings are escaped so any key parses back") {
  std::string out;
  append_json_string(out, "a\"b\\c\nd\x01 \xc3\xa9");
  CHECK(out == "\"a\\\"b\\\\c\\nd\\u0001 \xc3\xa9\"");
  CHECK(boost::json::parse(out).as_string() == "a\"b\\c\nd\x01 \xc3\xa9");
}
