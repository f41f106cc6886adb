// problem+json bodies. Kept apart from http_server.cpp so handler code links without Beast.
#include "net/http_server.hpp"

#include "common/log.hpp"
#include "shardd/text.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

namespace shardd::net {

std::string_view status_title(unsigned status) noexcept {
  switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Error";
  }
}

std::string problem_body(unsigned status, std::string_view slug, std::string_view detail, std::string_view instance) {
  boost::json::object o;
  o["type"] = "urn:shardd:problem:" + std::string(slug);
  o["title"] = status_title(status);
  o["status"] = status;
  // Details and instances echo what the client sent, which need not be UTF-8.
  o["detail"] = to_valid_utf8(detail);
  if (!instance.empty()) o["instance"] = to_valid_utf8(instance);
  return boost::json::serialize(o);
}

void finish_response(http_response& r, std::string_view request_id) {
  bool has_id = false, has_retry = false;
  for (const auto& [n, v] : r.headers) {
    has_id = has_id || n == "X-Request-Id";
    has_retry = has_retry || n == "Retry-After";
  }
  if (!has_id) r.set_header("X-Request-Id", std::string(request_id));
  if ((r.status == 503 || r.status == 429) && !has_retry) r.set_header("Retry-After", "1");
  if (r.content_type != "application/problem+json") return;
  boost::system::error_code ec;
  auto v = boost::json::parse(r.body, ec);
  if (ec || !v.is_object()) return;
  auto& o = v.get_object();
  if (r.status == 500) {
    // The failure's text is for the log, not the client: the id ties one to the other.
    const auto* d = o.if_contains("detail");
    SHARDD_LOG(err, "internal_error", "request_id", request_id, "detail",
               d && d->is_string() ? std::string_view(d->get_string()) : std::string_view());
    o["detail"] = "internal error, request id " + std::string(request_id) + " (the node's log has the detail)";
  }
  o["request_id"] = request_id;
  r.body = boost::json::serialize(o);
}

http_response problem(unsigned status, std::string_view slug, std::string_view detail, std::string_view instance) {
  http_response r;
  r.status = status;
  r.content_type = "application/problem+json";
  r.body = problem_body(status, slug, detail, instance);
  return r;
}

}  // namespace shardd::net
