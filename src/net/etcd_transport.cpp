#include "net/etcd_transport.hpp"

#include "net/tls_context.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

#include <atomic>
#include <mutex>
#include <optional>
#include <set>
#include <variant>

namespace shardd::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using asio::awaitable;
constexpr auto tuple_awaitable = asio::as_tuple(asio::use_awaitable);

struct etcd_transport::impl {
  asio::any_io_executor ex;
  etcd_options opts;
  std::optional<ssl::context> ctx;
  std::atomic<std::size_t> preferred{0};
  std::mutex mu;
  std::set<beast::tcp_stream*> streams;  ///< open watch streams, under mu
  std::string token;                      ///< etcd auth token, under mu (empty: none)

  /// One connection to one member: plain or TLS.
  struct connection {
    std::optional<beast::tcp_stream> plain;
    std::optional<beast::ssl_stream<beast::tcp_stream>> secure;
    beast::tcp_stream& lowest() { return plain ? *plain : beast::get_lowest_layer(*secure); }
  };

  awaitable<result<std::unique_ptr<connection>>> connect(const host_port& ep) {
    auto c = std::make_unique<connection>();
    tcp::resolver resolver(ex);
    auto [rec, results] = co_await resolver.async_resolve(ep.host, std::to_string(ep.port), tuple_awaitable);
    if (rec) co_return make_error(errc::unavailable, ep.to_string() + ": " + rec.message());
    if (ctx)
      c->secure.emplace(ex, *ctx);
    else
      c->plain.emplace(ex);
    auto& low = c->lowest();
    low.expires_after(opts.timeout);
    auto [cec, endpoint] = co_await low.async_connect(results, tuple_awaitable);
    if (cec) co_return make_error(errc::unavailable, ep.to_string() + ": " + cec.message());
    if (c->secure) {
      SSL_set_tlsext_host_name(c->secure->native_handle(), ep.host.c_str());
      c->secure->set_verify_callback(ssl::host_name_verification(ep.host));
      auto [hec] = co_await c->secure->async_handshake(ssl::stream_base::client, tuple_awaitable);
      if (hec) co_return make_error(errc::unavailable, ep.to_string() + ": TLS: " + hec.message());
    }
    co_return c;
  }

  http::request<http::string_body> make_request(const host_port& ep, const std::string& path, const std::string& body) {
    http::request<http::string_body> req{http::verb::post, path, 11};
    req.set(http::field::host, ep.to_string());
    req.set(http::field::content_type, "application/json");
    {
      std::lock_guard lock(mu);
      if (!token.empty()) req.set(http::field::authorization, token);
    }
    req.body() = body;
    req.prepare_payload();
    return req;
  }

  template <class Stream>
  awaitable<result<std::string>> exchange(Stream& s, beast::tcp_stream& low, const host_port& ep, const std::string& path,
                                          const std::string& body) {
    auto req = make_request(ep, path, body);
    low.expires_after(opts.timeout);
    auto [wec, wn] = co_await http::async_write(s, req, tuple_awaitable);
    if (wec) co_return make_error(errc::unavailable, ep.to_string() + ": " + wec.message());
    beast::flat_buffer buf;
    http::response_parser<http::string_body> parser;
    parser.body_limit(opts.max_answer_bytes);
    auto [rec, rn] = co_await http::async_read(s, buf, parser, tuple_awaitable);
    if (rec) co_return make_error(errc::unavailable, ep.to_string() + ": " + rec.message());
    auto& res = parser.get();
    const auto status = res.result_int();
    if (status >= 500) co_return make_error(errc::unavailable, ep.to_string() + ": HTTP " + std::to_string(status) + ": " + res.body());
    if (status == 401) co_return make_error(errc::forbidden, "etcd " + ep.to_string() + ": HTTP 401: " + res.body());
    if (status >= 400) co_return make_error(errc::invalid_argument, "etcd " + ep.to_string() + ": HTTP " + std::to_string(status) + ": " + res.body());
    co_return std::move(res.body());
  }

  /// One request to one member.
  awaitable<result<std::string>> post_to(const host_port& ep, const std::string& path, const std::string& body) {
    auto c = co_await connect(ep);
    if (!c) co_return c.error();
    if ((*c)->secure) co_return co_await exchange(*(*c)->secure, (*c)->lowest(), ep, path, body);
    co_return co_await exchange(*(*c)->plain, (*c)->lowest(), ep, path, body);
  }

  error all_failed(const error& last) const {
    return make_error(errc::unavailable, "etcd unreachable (" + std::to_string(opts.endpoints.size()) +
                                             " member(s) tried; last: " + last.detail + ")");
  }

  template <class Stream>
  awaitable<result<void>> read_stream(Stream& s, beast::tcp_stream& low, const host_port& ep, const std::string& path,
                                      const std::string& body, const std::function<bool(std::string_view)>& on_line) {
    auto req = make_request(ep, path, body);
    low.expires_after(opts.timeout);
    auto [wec, wn] = co_await http::async_write(s, req, tuple_awaitable);
    if (wec) co_return make_error(errc::unavailable, ep.to_string() + ": " + wec.message());
    beast::flat_buffer buf;
    http::response_parser<http::string_body> parser;
    parser.body_limit(boost::none);
    auto [hec, hn] = co_await http::async_read_header(s, buf, parser, tuple_awaitable);
    if (hec) co_return make_error(errc::unavailable, ep.to_string() + ": " + hec.message());
    if (parser.get().result_int() == 401) co_return make_error(errc::forbidden, ep.to_string() + ": watch answered HTTP 401");
    if (parser.get().result_int() != 200)
      co_return make_error(errc::unavailable, ep.to_string() + ": watch answered HTTP " + std::to_string(parser.get().result_int()));
    low.expires_never();
    {
      std::lock_guard lock(mu);
      streams.insert(&low);
    }
    struct unregister {
      impl* self;
      beast::tcp_stream* low;
      ~unregister() {
        std::lock_guard lock(self->mu);
        self->streams.erase(low);
      }
    } guard{this, &low};
    std::size_t scanned = 0;
    while (!parser.is_done()) {
      auto [ec, n] = co_await http::async_read_some(s, buf, parser, tuple_awaitable);
      if (ec) co_return make_error(errc::unavailable, ep.to_string() + ": watch stream: " + ec.message());
      // The body is a series of JSON objects, one per line: hand over each complete one.
      auto& b = parser.get().body();
      std::size_t start = 0;
      for (auto nl = b.find('\n', scanned); nl != std::string::npos; nl = b.find('\n', start)) {
        std::string_view line(b.data() + start, nl - start);
        start = nl + 1;
        if (line.empty()) continue;
        if (!on_line(line)) co_return result<void>{};
      }
      b.erase(0, start);
      scanned = b.size();
      if (b.size() > opts.max_answer_bytes)
        co_return make_error(errc::too_large, ep.to_string() + ": a watch event over " + std::to_string(opts.max_answer_bytes) + " bytes");
    }
    auto& rest = parser.get().body();
    if (!rest.empty() && rest.find_first_not_of(" \r\n") != std::string::npos) (void)on_line(rest);
    co_return result<void>{};
  }
};

etcd_transport::etcd_transport(asio::any_io_executor ex, etcd_options o) : impl_(std::make_shared<impl>()) {
  impl_->ex = std::move(ex);
  impl_->opts = std::move(o);
  if (impl_->opts.tls) {
    impl_->ctx.emplace(make_client_context(impl_->opts.ca));
    if (!impl_->opts.cert.empty()) {
      boost::system::error_code ec;
      impl_->ctx->use_certificate_chain_file(impl_->opts.cert, ec);
      if (ec) throw std::runtime_error("etcd.cert: cannot load " + impl_->opts.cert + ": " + ec.message());
      impl_->ctx->use_private_key_file(impl_->opts.key, ssl::context::pem, ec);
      if (ec) throw std::runtime_error("etcd.key: cannot load " + impl_->opts.key + ": " + ec.message());
    }
  }
}

etcd_transport::~etcd_transport() { close_streams(); }

void etcd_transport::set_token(std::string token) {
  std::lock_guard lock(impl_->mu);
  impl_->token = std::move(token);
}

void etcd_transport::close_streams() {
  std::lock_guard lock(impl_->mu);
  for (auto* s : impl_->streams) {
    boost::system::error_code ignore;
    (void)s->socket().close(ignore);
  }
}

std::string etcd_transport::current_endpoint() const {
  const auto& eps = impl_->opts.endpoints;
  return eps.empty() ? std::string() : eps[impl_->preferred.load() % eps.size()].to_string();
}

awaitable<result<std::string>> etcd_transport::post(std::string path, std::string body) {
  auto keep = impl_;  // the transport may be destroyed while this runs; its state may not
  const auto& eps = keep->opts.endpoints;
  if (eps.empty()) co_return make_error(errc::unavailable, "etcd: no endpoints");
  error last{errc::unavailable, "etcd: no member answered"};
  const std::size_t first = keep->preferred.load();
  for (std::size_t i = 0; i < eps.size(); ++i) {
    // A member that cannot be reached, or that answers 5xx, passes the request on.
    const std::size_t at = (first + i) % eps.size();
    auto r = co_await keep->post_to(eps[at], path, body);
    if (r || r.error().code != errc::unavailable) {
      keep->preferred.store(at);
      co_return r;
    }
    last = r.error();
  }
  co_return keep->all_failed(last);
}

awaitable<result<void>> etcd_transport::stream(std::string path, std::string body, std::function<bool(std::string_view)> on_line) {
  auto keep = impl_;
  const auto& eps = keep->opts.endpoints;
  if (eps.empty()) co_return make_error(errc::unavailable, "etcd: no endpoints");
  error last{errc::unavailable, "etcd: no member answered"};
  const std::size_t first = keep->preferred.load();
  for (std::size_t i = 0; i < eps.size(); ++i) {
    const std::size_t at = (first + i) % eps.size();
    auto c = co_await keep->connect(eps[at]);
    if (!c) {
      last = c.error();
      continue;
    }
    keep->preferred.store(at);
    if ((*c)->secure) co_return co_await keep->read_stream(*(*c)->secure, (*c)->lowest(), eps[at], path, body, on_line);
    co_return co_await keep->read_stream(*(*c)->plain, (*c)->lowest(), eps[at], path, body, on_line);
  }
  co_return keep->all_failed(last);
}

}  // namespace shardd::net
