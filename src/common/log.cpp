#include "common/log.hpp"

#include <spdlog/sinks/stdout_sinks.h>

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

}  // namespace shardd::log
