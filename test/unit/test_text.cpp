#include "shardd/text.hpp"

#include "shardd/cat_table.hpp"

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
        R"({"zero":0.0,"half":0.5,"one":1.0,"big":1e+21,"eta":12.25,"nan":null,"list":[1,-2,true,null,"a\"b\n"],)"
        R"("nested":{"k":18446744073709551615}})");
  auto back = json::parse(text).as_object();
  CHECK(back.at("half").to_number<double>() == 0.5);
  CHECK(back.at("one").is_double());  // read back as the double it was
  CHECK(back.at("zero").is_double());
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

// --- _cat conventions ---------------------------------------------------------------------

namespace {

cat_table sample_table() {
  return {{{"node", column_kind::text, "node id"},
           {"shards", column_kind::number, "shards"},
           {"bytes", column_kind::bytes, "bytes"},
           {"progress", column_kind::number, "share done"}},
          {{"node-1", "12", "1048576", "50%"}, {"node-2", "3", "1536", "7%"}, {"node-3", "-", "-", "100%"}}};
}

cat_options options(const char* v, const char* h, const char* s, const char* help, const char* bytes) {
  std::string sv = v ? v : "", sh = h ? h : "", ss = s ? s : "", shelp = help ? help : "", sb = bytes ? bytes : "";
  cat_query q{v ? &sv : nullptr, h ? &sh : nullptr, s ? &ss : nullptr, help ? &shelp : nullptr, bytes ? &sb : nullptr};
  auto o = parse_cat_options(q);
  REQUIRE(o);
  return *o;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  while (pos < text.size()) {
    auto nl = text.find('\n', pos);
    out.push_back(text.substr(pos, nl - pos));
    pos = nl + 1;
  }
  return out;
}

}  // namespace

TEST_CASE("_cat tables: columns chosen and ordered by h, header off with v=false") {
  auto t = render_cat(sample_table(), options(nullptr, "shards,node", nullptr, nullptr, nullptr));
  REQUIRE(t);
  CHECK(*t ==
        "shards  node\n"
        "    12  node-1\n"
        "     3  node-2\n"
        "     -  node-3\n");
  auto nohead = render_cat(sample_table(), options("false", "node", nullptr, nullptr, nullptr));
  REQUIRE(nohead);
  CHECK(*nohead == "node-1\nnode-2\nnode-3\n");
  // ?v alone (as in Elasticsearch) keeps the header, which is on by default.
  CHECK(lines_of(render_cat(sample_table(), options("", "node", nullptr, nullptr, nullptr)).value())[0] == "node");
}

TEST_CASE("_cat tables: an unknown column is an error that lists the valid ones") {
  auto bad = render_cat(sample_table(), options(nullptr, "node,colour", nullptr, nullptr, nullptr));
  REQUIRE(!bad);
  CHECK(bad.error().code == errc::invalid_argument);
  CHECK(bad.error().detail.find("colour") != std::string::npos);
  CHECK(bad.error().detail.find("node, shards, bytes, progress") != std::string::npos);
  auto bad_sort = render_cat(sample_table(), options(nullptr, nullptr, "weight", nullptr, nullptr));
  REQUIRE(!bad_sort);
  CHECK(bad_sort.error().detail.find("s names unknown column weight") != std::string::npos);
}

TEST_CASE("_cat tables: s sorts numbers by value, text as text, percentages by their number, several keys in order") {
  auto by_shards = lines_of(render_cat(sample_table(), options(nullptr, "node", "shards", nullptr, nullptr)).value());
  CHECK(by_shards == std::vector<std::string>{"node", "node-3", "node-2", "node-1"});  // "-" first, then 3 < 12
  auto desc = lines_of(render_cat(sample_table(), options(nullptr, "node", "shards:desc", nullptr, nullptr)).value());
  CHECK(desc == std::vector<std::string>{"node", "node-1", "node-2", "node-3"});
  auto pct = lines_of(render_cat(sample_table(), options(nullptr, "node", "progress", nullptr, nullptr)).value());
  CHECK(pct == std::vector<std::string>{"node", "node-2", "node-1", "node-3"});  // 7% < 50% < 100%
  auto text = lines_of(render_cat(sample_table(), options(nullptr, "node", "node:desc", nullptr, nullptr)).value());
  CHECK(text == std::vector<std::string>{"node", "node-3", "node-2", "node-1"});
  cat_table ties{{{"a", column_kind::text, ""}, {"b", column_kind::number, ""}}, {{"x", "2"}, {"y", "1"}, {"x", "1"}}};
  auto two = lines_of(render_cat(ties, options("false", nullptr, "a,b:desc", nullptr, nullptr)).value());
  CHECK(two == std::vector<std::string>{"x  2", "x  1", "y  1"});
}

TEST_CASE("_cat tables: byte columns print human by default and in the unit asked for") {
  CHECK(format_bytes(0, byte_unit::human) == "0b");
  CHECK(format_bytes(1023, byte_unit::human) == "1023b");
  CHECK(format_bytes(1024, byte_unit::human) == "1kb");
  CHECK(format_bytes(1536, byte_unit::human) == "1.5kb");
  CHECK(format_bytes(1048576, byte_unit::human) == "1mb");
  CHECK(format_bytes(5ull << 40, byte_unit::human) == "5tb");
  CHECK(format_bytes(1536, byte_unit::b) == "1536b");
  CHECK(format_bytes(1536, byte_unit::kb) == "1kb");  // whole units, rounded down
  CHECK(format_bytes(1048575, byte_unit::mb) == "0mb");
  CHECK(format_bytes(3ull << 30, byte_unit::gb) == "3gb");
  auto human = lines_of(render_cat(sample_table(), options(nullptr, "bytes", nullptr, nullptr, nullptr)).value());
  CHECK(human == std::vector<std::string>{"bytes", "1mb", "1.5kb", "-"});
  auto kb = lines_of(render_cat(sample_table(), options(nullptr, "bytes", "bytes", nullptr, "kb")).value());
  CHECK(kb == std::vector<std::string>{"bytes", "-", "1kb", "1024kb"});  // sorted by the raw value
}

TEST_CASE("_cat tables: help lists every column with its type and description") {
  auto help = render_cat(sample_table(), options(nullptr, nullptr, nullptr, "", nullptr));
  REQUIRE(help);
  auto l = lines_of(*help);
  REQUIRE(l.size() == 5);
  CHECK(l[0].starts_with("column"));
  CHECK(l[3] == "bytes     bytes   bytes");
  CHECK(l[4] == "progress  number  share done");
}

TEST_CASE("_cat parameters: bad values name the parameter") {
  const std::string yes = "yes", empty, bad_dir = "node:up", comma = "node,", unit = "pb";
  auto err = [](cat_query q) {
    auto o = parse_cat_options(q);
    REQUIRE(!o);
    return o.error().detail;
  };
  CHECK(err({&yes, nullptr, nullptr, nullptr, nullptr}).starts_with("v "));
  CHECK(err({nullptr, nullptr, nullptr, &yes, nullptr}).starts_with("help "));
  CHECK(err({nullptr, &empty, nullptr, nullptr, nullptr}).starts_with("h "));
  CHECK(err({nullptr, &comma, nullptr, nullptr, nullptr}).starts_with("h "));
  CHECK(err({nullptr, nullptr, &bad_dir, nullptr, nullptr}).find("node:up") != std::string::npos);
  CHECK(err({nullptr, nullptr, nullptr, nullptr, &unit}).starts_with("bytes must be one of"));
}

TEST_CASE("pretty JSON is the same value, indented, and refuses what does not parse") {
  const std::string in = R"({"a":[1,{"b":"x\"y"}],"c":{},"d":[]})";
  auto p = pretty_json(in);
  REQUIRE(p);
  CHECK(*p ==
        "{\n"
        "  \"a\": [\n"
        "    1,\n"
        "    {\n"
        "      \"b\": \"x\\\"y\"\n"
        "    }\n"
        "  ],\n"
        "  \"c\": {},\n"
        "  \"d\": []\n"
        "}\n");
  CHECK(boost::json::parse(*p) == boost::json::parse(in));
  CHECK(!pretty_json("{\"a\":"));
}
