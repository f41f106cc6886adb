#include "net/http_server.hpp"

#include "net/listen.hpp"
#include "net/tls_context.hpp"
#include "common/log.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

#include <mutex>
#include <unordered_map>

namespace shardd::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using asio::awaitable;
using asio::use_awaitable;
constexpr auto as_tuple_awaitable = asio::as_tuple(use_awaitable);

namespace {

/// One connection. Shared by its coroutine and, weakly, by the server's registry.
struct session {
  session(tcp::socket sock, ssl::context& ctx) : stream(std::move(sock), ctx) {}
  beast::ssl_stream<beast::tcp_stream> stream;
  bool idle = true;  // waiting for a request; touched only on the session's executor
};

http_method to_method(http::verb v) {
  switch (v) {
    case http::verb::get: return http_method::get;
    case http::verb::head: return http_method::head;
    case http::verb::put: return http_method::put;
    case http::verb::post: return http_method::post;
    case http::verb::delete_: return http_method::delete_;
    default: return http_method::other;
  }
}

bool is_disconnect(const boost::system::error_code& ec) {
  return ec == http::error::end_of_stream || ec == asio::error::operation_aborted || ec == beast::error::timeout ||
         ec == ssl::error::stream_truncated || ec == asio::error::eof || ec == asio::error::connection_reset ||
         ec == asio::error::broken_pipe || ec == http::error::partial_message;
}

}  // namespace

struct http_server::impl : std::enable_shared_from_this<impl> {
  impl(asio::io_context& c, const tls_config& tls, http_handler h, http_server_options o)
      : ioc(c), ctx(make_rest_server_context(tls)), acceptor(asio::make_strand(c)), handler(std::move(h)), opts(o) {}

  asio::io_context& ioc;
  ssl::context ctx;
  tcp::acceptor acceptor;
  http_handler handler;
  http_server_options opts;
  std::atomic<bool> stopping{false};

  mutable std::mutex mutex;  // guards sessions only
  std::unordered_map<session*, std::weak_ptr<session>> sessions;

  std::atomic<int> refusing{0};  // connections being answered 503 (over max_connections)
  std::size_t next_context = 0;  // touched only by the accept loop

  // A connection's executor: a strand of the server's io_context, or the next of the session
  // contexts, each run by one thread (its implicit strand, without a strand's queue and lock).
  asio::any_io_executor session_executor() {
    if (opts.session_contexts.empty()) return asio::make_strand(ioc);
    return opts.session_contexts[next_context++ % opts.session_contexts.size()]->get_executor();
  }

  awaitable<void> accept_loop();
  awaitable<void> run(std::shared_ptr<session> s);
  awaitable<void> refuse(std::shared_ptr<session> s);
  awaitable<bool> write(session& s, http_response res, unsigned version, bool keep_alive, bool head = false);
  awaitable<void> linger(session& s);

  // Runs `f(session&)` on each live session's strand.
  template <class F>
  void for_each_session(F f) {
    std::vector<std::shared_ptr<session>> live;
    {
      std::lock_guard lock(mutex);
      for (auto& [p, w] : sessions)
        if (auto s = w.lock()) live.push_back(std::move(s));
    }
    for (auto& s : live) {
      auto ex = s->stream.get_executor();
      asio::post(ex, [s, f] { f(*s); });
    }
  }
};

http_server::http_server(asio::io_context& ioc, const tls_config& tls, http_handler handler, http_server_options opts)
    : impl_(std::make_shared<impl>(ioc, tls, std::move(handler), opts)) {}

http_server::~http_server() {
  impl_->stopping = true;
  boost::system::error_code ec;
  (void)impl_->acceptor.close(ec);
}

void http_server::start(const host_port& listen) {
  auto& a = impl_->acceptor;
  open_acceptor(a, listen, "rest.listen");
  asio::co_spawn(a.get_executor(), impl_->accept_loop(), [](std::exception_ptr e) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      SHARDD_LOG(err, "rest_accept_failed", "error", ex.what());
    }
  });
}

awaitable<void> http_server::impl::accept_loop() {
  auto self = shared_from_this();
  while (!stopping) {
    auto [ec, sock] = co_await acceptor.async_accept(session_executor(), as_tuple_awaitable);
    if (ec) {
      if (stopping || ec == asio::error::operation_aborted) break;
      SHARDD_LOG(warn, "rest_accept_error", "error", ec.message());
      // Out of descriptors or similar: back off instead of spinning.
      asio::steady_timer t(acceptor.get_executor(), std::chrono::milliseconds(50));
      co_await t.async_wait(as_tuple_awaitable);
      continue;
    }
    boost::system::error_code opt_ec;
    (void)sock.set_option(tcp::no_delay(true), opt_ec);
    std::size_t open = 0;
    {
      std::lock_guard lock(mutex);
      open = sessions.size();
    }
    if (open >= opts.max_connections) {
      // Over the limit: a short 503 for the first few at once, a plain close beyond that (a
      // flood must not make us do a TLS handshake each).
      if (refusing >= 16) {
        (void)sock.close(opt_ec);
        continue;
      }
      auto s = std::make_shared<session>(std::move(sock), ctx);
      ++refusing;
      asio::co_spawn(s->stream.get_executor(), refuse(s), [self](std::exception_ptr) { --self->refusing; });
      continue;
    }
    auto s = std::make_shared<session>(std::move(sock), ctx);
    {
      std::lock_guard lock(mutex);
      sessions.emplace(s.get(), s);
    }
    auto ex = s->stream.get_executor();
    asio::co_spawn(ex, run(s), [self, key = s.get()](std::exception_ptr e) {
      if (e) {
        try {
          std::rethrow_exception(e);
        } catch (const std::exception& ex) {
          SHARDD_LOG(err, "rest_session_failed", "error", ex.what());
        }
      }
      std::lock_guard lock(self->mutex);
      self->sessions.erase(key);
    });
  }
}

namespace {

bool field_safe(std::string_view v) { return v.find_first_of("\r\n") == std::string_view::npos; }

/// Statuses whose answer carries no body and no Content-Length (RFC 9110 §6.4.1).
bool bodiless(unsigned status) { return status < 200 || status == 204 || status == 304; }

/// The answer's status line and header fields in one buffer, as Beast's serializer would
/// write them (Server, Content-Type, the handler's fields, Connection, Content-Length), without
/// a field container that allocates per field. A field the handler sets twice keeps its last
/// value; one with a line break in it is dropped.
std::string response_head(const http_response& res, unsigned version, bool keep_alive) {
  std::string h;
  h.reserve(160 + res.content_type.size() + res.headers.size() * 48);
  h += version == 10 ? "HTTP/1.0 " : "HTTP/1.1 ";
  h += std::to_string(res.status);
  h += ' ';
  const auto reason = http::obsolete_reason(static_cast<http::status>(res.status));
  h.append(reason.data(), reason.size());
  h += "\r\n";
  auto field = [&h](std::string_view name, std::string_view value) {
    h.append(name);
    h += ": ";
    h.append(value);
    h += "\r\n";
  };
  auto overridden = [&res](std::string_view name, std::size_t from) {
    for (std::size_t j = from; j < res.headers.size(); ++j)
      if (beast::iequals(res.headers[j].first, name)) return true;
    return false;
  };
  if (!overridden("Server", 0)) field("Server", "shardd");
  if (!overridden("Content-Type", 0)) field("Content-Type", res.content_type);
  for (std::size_t i = 0; i < res.headers.size(); ++i) {
    const auto& [name, value] = res.headers[i];
    if (overridden(name, i + 1) || !field_safe(name) || !field_safe(value) || beast::iequals(name, "Content-Length") ||
        beast::iequals(name, "Connection"))
      continue;
    field(name, value);
  }
  if (version >= 11 && !keep_alive) field("Connection", "close");
  if (version == 10 && keep_alive) field("Connection", "keep-alive");
  if (!bodiless(res.status)) field("Content-Length", std::to_string(res.body.size()));
  h += "\r\n";
  return h;
}

}  // namespace

awaitable<bool> http_server::impl::write(session& s, http_response res, unsigned version, bool keep_alive, bool head) {
  const std::string out = response_head(res, version, keep_alive);
  beast::get_lowest_layer(s.stream).expires_after(opts.io_timeout);
  // HEAD: the headers a GET would get, Content-Length included, and no body. Head and body go
  // in one write (Beast's ssl_stream joins buffers up to 16 KiB into one TLS record). Not a
  // std::array of two buffers: Asio's special case for it hands the stream an empty first
  // buffer once the head is out, the ssl_stream then writes 0 bytes and async_write stops there
  // with the body unsent. buffers_cat's sequence skips what is consumed.
  const std::string_view body = head || bodiless(res.status) ? std::string_view() : std::string_view(res.body);
  auto [ec, n] = co_await asio::async_write(
      s.stream, beast::buffers_cat(asio::buffer(out), asio::buffer(body.data(), body.size())), as_tuple_awaitable);
  co_return !ec;
}

awaitable<void> http_server::impl::linger(session& s) {
  // After refusing a request whose body is still arriving, read and drop what the client
  // sends for a short while before closing. Closing with unread data makes the kernel send a
  // reset, which can destroy the answer before the client reads it.
  auto& lowest = beast::get_lowest_layer(s.stream);
  lowest.expires_after(std::chrono::seconds(2));
  std::vector<char> scratch(64 * 1024);
  std::uint64_t dropped = 0;
  while (dropped < 2 * opts.max_body_bytes + (1u << 20)) {
    auto [ec, n] = co_await s.stream.async_read_some(asio::buffer(scratch), as_tuple_awaitable);
    if (ec) break;
    dropped += n;
  }
}

awaitable<void> http_server::impl::refuse(std::shared_ptr<session> s) {
  auto& lowest = beast::get_lowest_layer(s->stream);
  lowest.expires_after(std::chrono::seconds(2));
  if (auto [ec] = co_await s->stream.async_handshake(ssl::stream_base::server, as_tuple_awaitable); ec) co_return;
  SHARDD_LOG(warn, "rest_connection_refused", "reason", "max_connections", "limit", opts.max_connections);
  auto res = problem(503, "unavailable",
                     "the node holds its maximum of " + std::to_string(opts.max_connections) + " connections; retry");
  res.set_header("Retry-After", "1");
  co_await write(*s, std::move(res), 11, false);
  lowest.expires_after(std::chrono::milliseconds(500));
  co_await s->stream.async_shutdown(as_tuple_awaitable);
}

awaitable<void> http_server::impl::run(std::shared_ptr<session> s) {
  auto self = shared_from_this();
  auto& lowest = beast::get_lowest_layer(s->stream);
  std::string remote;
  {
    boost::system::error_code ec;
    auto ep = lowest.socket().remote_endpoint(ec);
    if (!ec) remote = ep.address().to_string() + ":" + std::to_string(ep.port());
  }
  lowest.expires_after(opts.handshake_timeout);
  if (auto [ec] = co_await s->stream.async_handshake(ssl::stream_base::server, as_tuple_awaitable); ec) {
    SHARDD_LOG(debug, "rest_handshake_failed", "remote", remote, "error", ec.message());
    co_return;
  }

  beast::flat_buffer buffer;
  for (;;) {
    if (stopping) break;
    http::request_parser<http::string_body> parser;
    parser.header_limit(opts.header_limit);
    parser.body_limit(opts.max_body_bytes);
    s->idle = true;
    if (buffer.size() == 0) {
      // Between requests the connection may idle; once a request starts, its header must be
      // complete within header_timeout (a client sending a byte a second is cut then).
      lowest.expires_after(opts.idle_timeout);
      auto [iec, in] = co_await s->stream.async_read_some(buffer.prepare(4096), as_tuple_awaitable);
      if (iec) break;
      buffer.commit(in);
    }
    lowest.expires_after(opts.header_timeout);
    auto [ec, n] = co_await http::async_read_header(s->stream, buffer, parser, as_tuple_awaitable);
    s->idle = false;
    const auto started = std::chrono::steady_clock::now();
    // The request's id, for its answer, its log lines and the nodes it is forwarded to.
    std::string request_id;
    if (!ec) {
      const auto given = parser.get()["X-Request-Id"];
      request_id = log::usable_request_id(given) ? std::string(given) : log::new_request_id();
    } else {
      request_id = log::new_request_id();
    }
    // Every answer from here on: finished (X-Request-Id, Retry-After, problem bodies), written,
    // and logged.
    auto answer = [&](http_response res, unsigned ver, bool keep, bool head = false) -> awaitable<bool> {
      finish_response(res, request_id);
      const auto status = res.status;
      const auto bytes = res.body.size();
      std::string forwarded_to;
      for (const auto& [hn, hv] : res.headers)
        if (hn == "X-Shardd-Node" && hv != opts.node_id) forwarded_to = hv;
      const bool ok = co_await write(*s, std::move(res), ver, keep, head);
      if (opts.access_log) {
        const auto& h = parser.get();
        log::access_entry e;
        e.method = h.method_string();
        e.target = h.target();
        e.remote = remote;
        e.request_id = request_id;
        e.forwarded_to = forwarded_to;
        e.status = status;
        e.bytes = bytes;
        e.ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
        log::access(e, opts.access_log_sample);
      }
      co_return ok;
    };
    // Error answers are built as named locals before co_await: GCC 12 destroys temporaries
    // inside a co_await operand twice.
    if (ec == http::error::body_limit) {
      // Content-Length over the limit is caught while parsing the header: refuse before
      // reading the body, and close since the body stays unread.
      // The header is not complete here, so neither its length nor its version can be read.
      auto res = problem(413, "payload-too-large",
                         "request body (Content-Length) exceeds the limit of " + std::to_string(opts.max_body_bytes) +
                             " bytes");
      if (co_await answer(std::move(res), 11, false)) co_await linger(*s);
      break;
    }
    if (ec) {
      if (is_disconnect(ec) || ec.category() != http::make_error_code(http::error::header_limit).category()) break;
      const bool too_big = ec == http::error::header_limit;
      auto res = problem(too_big ? 431 : 400, "malformed-request", "malformed HTTP request: " + ec.message());
      co_await answer(std::move(res), 11, false);
      break;
    }
    const unsigned version = parser.get().version();
    if (opts.check) {
      // What the header alone decides (the token): before a byte of the body is read.
      http_request head;
      head.method = to_method(parser.get().method());
      head.method_text = std::string(parser.get().method_string());
      head.target = std::string(parser.get().target());
      head.authorization = std::string(parser.get()[http::field::authorization]);
      head.remote = remote;
      if (auto refused = opts.check(head)) {
        const bool body_pending = !parser.is_done();
        if (co_await answer(std::move(*refused), version, false) && body_pending) co_await linger(*s);
        break;
      }
    }
    if (beast::iequals(parser.get()[http::field::expect], "100-continue")) {
      // Answer at once so curl does not wait a second before sending the body.
      http::response<http::empty_body> cont{http::status::continue_, version};
      lowest.expires_after(opts.io_timeout);
      if (auto [wec, wn] = co_await http::async_write(s->stream, cont, as_tuple_awaitable); wec) break;
    }
    if (!parser.is_done()) {
      lowest.expires_after(opts.io_timeout);
      auto [bec, bn] = co_await http::async_read(s->stream, buffer, parser, as_tuple_awaitable);
      if (bec == http::error::body_limit) {
        auto res = problem(413, "payload-too-large",
                           "request body exceeds the limit of " + std::to_string(opts.max_body_bytes) + " bytes");
        if (co_await answer(std::move(res), version, false)) co_await linger(*s);
        break;
      }
      if (bec) {
        if (!is_disconnect(bec)) {
          auto res = problem(400, "malformed-request", "malformed HTTP request body: " + bec.message());
          co_await answer(std::move(res), version, false);
        }
        break;
      }
    }

    auto& req = parser.get();
    http_request hr;
    hr.method = to_method(req.method());
    hr.method_text = std::string(req.method_string());
    hr.target = std::string(req.target());
    hr.authorization = std::string(req[http::field::authorization]);
    hr.content_type = std::string(req[http::field::content_type]);
    hr.if_none_match = std::string(req[http::field::if_none_match]);
    hr.if_match = std::string(req[http::field::if_match]);
    hr.body = std::move(req.body());
    hr.remote = remote;
    hr.request_id = request_id;
    const bool head = hr.method == http_method::head;
    bool keep_alive = req.keep_alive();

    http_response res;
    try {
      res = co_await handler(std::move(hr));
    } catch (const std::exception& e) {
      SHARDD_LOG(err, "rest_handler_failed", "remote", remote, "request_id", request_id, "error", e.what());
      res = problem(500, "internal", std::string("internal error: ") + e.what());
    }
    keep_alive = keep_alive && !stopping;
    if (!co_await answer(std::move(res), version, keep_alive, head) || !keep_alive) break;
  }
  // Polite TLS close; a peer that is gone already makes this fail fast.
  lowest.expires_after(std::chrono::seconds(1));
  co_await s->stream.async_shutdown(as_tuple_awaitable);
}

awaitable<void> http_server::shutdown(std::chrono::milliseconds deadline) {
  auto self = impl_;
  self->stopping = true;
  asio::post(self->acceptor.get_executor(), [self] {
    boost::system::error_code ec;
    (void)self->acceptor.close(ec);
  });
  // Idle connections are closed now; busy ones finish their request and then close.
  self->for_each_session([](session& s) {
    if (s.idle) beast::get_lowest_layer(s.stream).cancel();
  });
  auto ex = co_await asio::this_coro::executor;
  asio::steady_timer timer(ex);
  const auto until = std::chrono::steady_clock::now() + deadline;
  while (open_connections() > 0 && std::chrono::steady_clock::now() < until) {
    timer.expires_after(std::chrono::milliseconds(10));
    co_await timer.async_wait(as_tuple_awaitable);
    // A connection that was between requests when we looked may be idle now.
    self->for_each_session([](session& s) {
      if (s.idle) beast::get_lowest_layer(s.stream).cancel();
    });
  }
  if (open_connections() > 0) {
    SHARDD_LOG(warn, "rest_shutdown_deadline", "open_connections", open_connections());
    self->for_each_session([](session& s) { beast::get_lowest_layer(s.stream).close(); });
    timer.expires_after(std::chrono::milliseconds(100));
    co_await timer.async_wait(as_tuple_awaitable);
  }
}

std::size_t http_server::open_connections() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->sessions.size();
}

}  // namespace shardd::net
