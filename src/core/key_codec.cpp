#include "shardd/key_codec.hpp"

namespace shardd {

void append_u32be(std::string& out, std::uint32_t v) {
  char b[4] = {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
               static_cast<char>(v)};
  out.append(b, 4);
}

void append_u64be(std::string& out, std::uint64_t v) {
  append_u32be(out, static_cast<std::uint32_t>(v >> 32));
  append_u32be(out, static_cast<std::uint32_t>(v));
}

std::uint32_t read_u32be(std::string_view in) noexcept {
  std::uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v = (v << 8) | static_cast<unsigned char>(in[static_cast<std::size_t>(i)]);
  return v;
}

std::uint64_t read_u64be(std::string_view in) noexcept {
  return (static_cast<std::uint64_t>(read_u32be(in)) << 32) | read_u32be(in.substr(4));
}

std::string token_key(std::uint64_t token) {
  std::string out;
  append_u64be(out, token);
  return out;
}

std::string index_prefix(std::uint32_t index_id) {
  std::string out;
  append_u32be(out, index_id);
  return out;
}

std::string index_upper_bound(std::uint32_t index_id) {
  // Index ids never reach UINT32_MAX (the partition map refuses to allocate it), so id + 1
  // is always a valid prefix.
  return index_prefix(index_id + 1);
}

std::string storage_key_hash(std::uint32_t index_id, std::uint64_t token, std::string_view key) {
  std::string out;
  out.reserve(index_prefix_bytes + token_bytes + key.size());
  append_u32be(out, index_id);
  append_u64be(out, token);
  out.append(key);
  return out;
}

std::string storage_key_range(std::uint32_t index_id, std::string_view key) {
  std::string out;
  out.reserve(index_prefix_bytes + key.size());
  append_u32be(out, index_id);
  out.append(key);
  return out;
}

result<decoded_key> decode_storage_key(std::string_view k, partitioning p) {
  decoded_key d;
  if (k.size() < index_prefix_bytes) return make_error(errc::invalid_argument, "storage key shorter than its index prefix");
  d.index_id = read_u32be(k);
  d.partition_key = k.substr(index_prefix_bytes);
  if (p == partitioning::hash) {
    if (k.size() < index_prefix_bytes + token_bytes)
      return make_error(errc::invalid_argument, "hash storage key shorter than prefix and token");
    d.token = read_u64be(k.substr(index_prefix_bytes));
    d.partition_key = k.substr(index_prefix_bytes, token_bytes);
    d.user_key = k.substr(index_prefix_bytes + token_bytes);
  } else {
    d.user_key = d.partition_key;
  }
  return d;
}

key_range storage_range(std::uint32_t index_id, std::string_view start,
                        const std::optional<std::string>& end) {
  key_range r;
  r.begin = index_prefix(index_id);
  r.begin.append(start);
  if (end) {
    r.end = index_prefix(index_id);
    r.end.append(*end);
  } else {
    r.end = index_upper_bound(index_id);
  }
  return r;
}

std::optional<std::string> prefix_successor(std::string_view prefix) {
  std::string s(prefix);
  while (!s.empty()) {
    auto& last = reinterpret_cast<unsigned char&>(s.back());
    if (last != 0xff) {
      ++last;
      return s;
    }
    s.pop_back();
  }
  return std::nullopt;
}

result<void> validate_index_name(std::string_view name) {
  if (name.empty() || name.size() > 64)
    return make_error(errc::invalid_argument, "index name must be 1 to 64 characters of [a-z0-9_-]");
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
    if (!ok)
      return make_error(errc::invalid_argument,
                        "index name must be 1 to 64 characters of [a-z0-9_-]; '" + std::string(name) +
                            "' is not");
  }
  return {};
}

result<void> validate_key(std::string_view key) {
  if (key.empty()) return make_error(errc::invalid_argument, "record key must not be empty");
  if (key.size() > max_key_bytes)
    return make_error(errc::invalid_argument, "record key is " + std::to_string(key.size()) +
                                                  " bytes; the maximum is 1024");
  if (!is_valid_utf8(key)) return make_error(errc::invalid_argument, "record key is not valid UTF-8");
  return {};
}

bool is_valid_utf8(std::string_view s) noexcept {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const auto* e = p + s.size();
  while (p < e) {
    unsigned c = *p;
    if (c < 0x80) {
      ++p;
      continue;
    }
    int n;
    unsigned cp;
    if ((c & 0xe0) == 0xc0) {
      n = 1;
      cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      n = 2;
      cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      n = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (e - p <= n) return false;
    for (int i = 1; i <= n; ++i) {
      if ((p[i] & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (p[i] & 0x3f);
    }
    static constexpr unsigned min_cp[4] = {0, 0x80, 0x800, 0x10000};
    if (cp < min_cp[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    p += n + 1;
  }
  return true;
}

}  // namespace shardd
