#include "shardd/text.hpp"

#include "shardd/json_fields.hpp"
#include "shardd/key_codec.hpp"

#include "support/catch_result.hpp"

#include <boost/json/parse.hpp>

#include <cmath>
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

TEST_CASE("decimal integers are digits only, within their bounds") {
  CHECK(parse_decimal("0") == 0u);
  CHECK(parse_decimal("42") == 42u);
  CHECK(parse_decimal("007") == 7u);
  CHECK(parse_decimal("18446744073709551615") == 18446744073709551615ull);
  for (const char* bad : {"", "+3", " 3", "3 ", "-1", "3x", "0x10", "18446744073709551616", "1e3"}) {
    INFO(bad);
    CHECK_FALSE(parse_decimal(bad));
  }
  CHECK_FALSE(parse_decimal("0", 1, 10));
  CHECK_FALSE(parse_decimal("11", 1, 10));
  CHECK(parse_decimal("10", 1, 10) == 10u);
}

TEST_CASE("JSON text writes doubles as people read them and everything else as Boost.JSON does") {
  namespace json = boost::json;
  json::object o;
  o["zero"] = 0.0;
  o["half"] = 0.5;
  o["one"] = 1.0;
  o["big"] = 1e21;
  o["eta"] = 12.25;
  o["nan"] = std::nan("");
  o["list"] = json::array{1, -2, true, nullptr, "a\"b\n"};
  o["nested"] = json::object{{"k", std::uint64_t(18446744073709551615ull)}};
  const auto text = to_json_text(o);
  CHECK(text ==
        R"({"zero":0,"half":0.5,"one":1,"big":1e+21,"eta":12.25,"nan":null,"list":[1,-2,true,null,"a\"b\n"],)"
        R"("nested":{"k":18446744073709551615}})");
  auto back = json::parse(text).as_object();
  CHECK(back.at("half").to_number<double>() == 0.5);
  CHECK(back.at("list") == o.at("list"));
  CHECK(back.at("nested") == o.at("nested"));
  CHECK(text.find('E') == std::string::npos);
}

TEST_CASE("to_valid_utf8 keeps valid text and replaces each stray byte with U+FFFD") {
  CHECK(to_valid_utf8("plain") == "plain");
  CHECK(to_valid_utf8("caf\xc3\xa9") == "caf\xc3\xa9");
  CHECK(to_valid_utf8("a\xff" "b") == "a\xEF\xBF\xBD" "b");
  CHECK(to_valid_utf8("\xc3") == "\xEF\xBF\xBD");              // truncated sequence
  CHECK(to_valid_utf8("\xed\xa0\x80") == "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // a surrogate, byte by byte
  CHECK(is_valid_utf8(to_valid_utf8("\x80\x81\xfe\xff\xf0\x9f\x98")));
}
