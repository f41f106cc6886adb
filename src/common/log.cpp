#include "common/log.hpp"

#include <spdlog/sinks/stdout_sinks.h>

#include <random>

namespace shardd::log {

void init(std::string_view node_id, std::string_view level) {
  auto logger = spdlog::stderr_logger_mt("shardd");
  logger->set_pattern("ts=%Y-%m-%dT%H:%M:%S.%fZ level=%l node=" + quote(node_id) + " %v", spdlog::pattern_time_type::utc);
  logger->set_level(spdlog::level::from_str(std::string(level)));
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(logger);
}

std::string quote(std::string_view v) {
  bool needs = v.empty();
  for (char c : v)
    if (c == ' ' || c == '"' || c == '=' || c == '\n' || c == '\t') needs = true;
  if (!needs) return std::string(v);
  std::string out = "\"";
  for (char c : v) {
    if (c == '"' || c == '\\') out.push_back('\\');
    if (c == '\n') {
      out.append("\\n");
      continue;
    }
    out.push_back(c);
  }
  out.push_back('"');
  return out;
}

namespace {

std::mt19937_64& rng() {
  thread_local std::mt19937_64 r{std::random_device{}()};
  return r;
}

}  // namespace

void access(const access_entry& e, double sample) {
  if (!spdlog::should_log(spdlog::level::info)) return;
  if (e.status < 500 && sample < 1.0 &&
      (sample <= 0.0 || std::uniform_real_distribution<double>(0.0, 1.0)(rng()) >= sample))
    return;
  std::string out = line("access", "method", e.method, "target", e.target, "status", e.status, "bytes", e.bytes);
  char ms[32];
  std::snprintf(ms, sizeof ms, "%.3f", e.ms);
  append_fields(out, "ms", std::string_view(ms), "remote", e.remote, "request_id", e.request_id);
  if (!e.forwarded_to.empty()) append_fields(out, "forwarded_to", e.forwarded_to);
  if (!e.forwarded_from.empty()) append_fields(out, "forwarded_from", e.forwarded_from);
  spdlog::log(spdlog::level::info, "{}", out);
}

std::string new_request_id() {
  static constexpr char hex[] = "0123456789abcdef";
  auto v = rng()();
  std::string id(16, '0');
  for (int i = 15; i >= 0; --i, v >>= 4) id[static_cast<std::size_t>(i)] = hex[v & 15];
  return id;
}

bool usable_request_id(std::string_view id) noexcept {
  if (id.empty() || id.size() > 128) return false;
  for (char c : id)
    if (c <= ' ' || c > '~' || c == '"' || c == '\\' || c == '=') return false;
  return true;
}

}  // namespace shardd::log
