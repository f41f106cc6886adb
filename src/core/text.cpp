#include "shardd/text.hpp"

#include "shardd/json_fields.hpp"
#include "shardd/key_codec.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <algorithm>
#include <charconv>

namespace shardd {

namespace {

/// RFC 4648 base64: the standard alphabet (§4) or the URL one (§5); '=' padding or none.
struct base64_kind {
  const char* alphabet;
  bool pad;
};
constexpr base64_kind url_kind{"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", false};
constexpr base64_kind std_kind{"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", true};

int value_of(char c, const base64_kind& k) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == k.alphabet[62]) return 62;
  if (c == k.alphabet[63]) return 63;
  return -1;
}

std::string encode(std::string_view in, const base64_kind& k) {
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 3 <= in.size(); i += 3) {
    unsigned v = (static_cast<unsigned char>(in[i]) << 16) | (static_cast<unsigned char>(in[i + 1]) << 8) |
                 static_cast<unsigned char>(in[i + 2]);
    out.push_back(k.alphabet[(v >> 18) & 63]);
    out.push_back(k.alphabet[(v >> 12) & 63]);
    out.push_back(k.alphabet[(v >> 6) & 63]);
    out.push_back(k.alphabet[v & 63]);
  }
  const std::size_t rest = in.size() - i;
  if (rest == 1) {
    unsigned v = static_cast<unsigned char>(in[i]) << 16;
    out.push_back(k.alphabet[(v >> 18) & 63]);
    out.push_back(k.alphabet[(v >> 12) & 63]);
    if (k.pad) out.append("==");
  } else if (rest == 2) {
    unsigned v = (static_cast<unsigned char>(in[i]) << 16) | (static_cast<unsigned char>(in[i + 1]) << 8);
    out.push_back(k.alphabet[(v >> 18) & 63]);
    out.push_back(k.alphabet[(v >> 12) & 63]);
    out.push_back(k.alphabet[(v >> 6) & 63]);
    if (k.pad) out.push_back('=');
  }
  return out;
}

std::optional<std::string> decode(std::string_view in, const base64_kind& k) {
  if (k.pad) {
    if (in.size() % 4 != 0) return std::nullopt;
    std::size_t pad = 0;
    while (pad < 2 && pad < in.size() && in[in.size() - 1 - pad] == '=') ++pad;
    in.remove_suffix(pad);
  } else if (in.size() % 4 == 1) {
    return std::nullopt;
  }
  std::string out;
  out.reserve(in.size() * 3 / 4);
  unsigned acc = 0;
  int bits = 0;
  for (char c : in) {
    int v = value_of(c, k);
    if (v < 0) return std::nullopt;
    acc = (acc << 6) | static_cast<unsigned>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  // Leftover bits must be zero, and a lone sextet cannot occur: else no encoder wrote it.
  if (bits >= 6 || (bits > 0 && (acc & ((1u << bits) - 1)) != 0)) return std::nullopt;
  return out;
}

bool numeric(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || c == '.' || c == '-'; });
}
}  // namespace

std::string base64url_encode(std::string_view in) { return encode(in, url_kind); }
std::optional<std::string> base64url_decode(std::string_view in) { return decode(in, url_kind); }
std::string base64_encode(std::string_view in) { return encode(in, std_kind); }
std::optional<std::string> base64_decode(std::string_view in) { return decode(in, std_kind); }

std::string render_table(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> width(header.size(), 0);
  std::vector<bool> right(header.size(), true);
  for (std::size_t c = 0; c < header.size(); ++c) width[c] = header[c].size();
  for (const auto& r : rows)
    for (std::size_t c = 0; c < header.size() && c < r.size(); ++c) {
      width[c] = std::max(width[c], r[c].size());
      if (!numeric(r[c])) right[c] = false;
    }
  if (rows.empty()) std::fill(right.begin(), right.end(), false);
  auto line = [&](const std::vector<std::string>& cells, std::string& out) {
    for (std::size_t c = 0; c < header.size(); ++c) {
      std::string_view cell = c < cells.size() ? std::string_view(cells[c]) : std::string_view();
      const std::size_t pad = width[c] - cell.size();
      const bool last = c + 1 == header.size();
      if (right[c]) out.append(pad, ' ');
      out.append(cell);
      if (!right[c] && !last) out.append(pad, ' ');
      if (!last) out.append("  ");
    }
    out.push_back('\n');
  };
  std::string out;
  line(header, out);
  for (const auto& r : rows) line(r, out);
  return out;
}

namespace {
void pretty(const boost::json::value& v, std::string& out, std::size_t indent) {
  switch (v.kind()) {
    case boost::json::kind::object: {
      const auto& o = v.get_object();
      if (o.empty()) {
        out.append("{}");
        return;
      }
      out.append("{\n");
      std::size_t i = 0;
      for (const auto& [k, e] : o) {
        out.append(indent + 2, ' ');
        append_json_string(out, k);
        out.append(": ");
        pretty(e, out, indent + 2);
        out.append(++i < o.size() ? ",\n" : "\n");
      }
      out.append(indent, ' ').push_back('}');
      return;
    }
    case boost::json::kind::array: {
      const auto& a = v.get_array();
      if (a.empty()) {
        out.append("[]");
        return;
      }
      out.append("[\n");
      for (std::size_t i = 0; i < a.size(); ++i) {
        out.append(indent + 2, ' ');
        pretty(a[i], out, indent + 2);
        out.append(i + 1 < a.size() ? ",\n" : "\n");
      }
      out.append(indent, ' ').push_back(']');
      return;
    }
    default: out.append(to_json_text(v));
  }
}
}  // namespace

std::optional<std::string> pretty_json(std::string_view json) {
  boost::system::error_code ec;
  auto v = boost::json::parse(json, ec);
  if (ec) return std::nullopt;
  std::string out;
  out.reserve(json.size() * 2);
  pretty(v, out, 0);
  out.push_back('\n');
  return out;
}

std::string to_valid_utf8(std::string_view s) {
  if (is_valid_utf8(s)) return std::string(s);
  std::string out;
  out.reserve(s.size() + 16);
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    const std::size_t n = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 0;
    if (n > 0 && i + n <= s.size() && is_valid_utf8(s.substr(i, n))) {
      out.append(s.substr(i, n));
      i += n;
    } else {
      out.append("\xEF\xBF\xBD");
      ++i;
    }
  }
  return out;
}

void append_json_string(std::string& out, std::string_view s) {
  static constexpr char hex[] = "0123456789abcdef";
  out.push_back('"');
  std::size_t run = 0;  // the start of the bytes not yet copied that need no escape
  for (std::size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out.append(s.data() + run, i - run);
    run = i + 1;
    switch (c) {
      case '"': out.append("\\\""); break;
      case '\\': out.append("\\\\"); break;
      case '\n': out.append("\\n"); break;
      case '\r': out.append("\\r"); break;
      case '\t': out.append("\\t"); break;
      case '\b': out.append("\\b"); break;
      case '\f': out.append("\\f"); break;
      default:
        out.append("\\u00");
        out.push_back(hex[c >> 4]);
        out.push_back(hex[c & 15]);
    }
  }
  out.append(s.data() + run, s.size() - run);
  out.push_back('"');
}

std::optional<std::uint64_t> parse_decimal(std::string_view s, std::uint64_t min, std::uint64_t max) {
  if (s.empty() || s.front() < '0' || s.front() > '9') return std::nullopt;
  std::uint64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || p != s.data() + s.size() || v < min || v > max) return std::nullopt;
  return v;
}

}  // namespace shardd
