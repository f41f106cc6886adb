#include "node/etcd_client.hpp"

#include "common/log.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace shardd {

namespace asio = boost::asio;
using asio::awaitable;

etcd_client::etcd_client(asio::any_io_executor ex, net::etcd_options o)
    : ex_(ex), user_(o.user), password_(o.password), transport_(ex, std::move(o)) {}

awaitable<result<void>> etcd_client::authenticate() {
  const auto req = etcd::authenticate(user_, password_);
  transport_.set_token({});
  auto text = co_await transport_.post(req.path, req.body);
  reachable_ = text || text.error().code != errc::unavailable;
  if (!text) {
    if (text.error().code == errc::unavailable) co_return text.error();
    co_return make_error(errc::forbidden, "etcd refused user '" + user_ + "': " + text.error().detail);
  }
  auto token = etcd::parse_token(*text);
  if (!token) co_return token.error();
  transport_.set_token(std::move(*token));
  authenticated_ = true;
  co_return result<void>{};
}

awaitable<result<std::string>> etcd_client::post(const etcd::request& req) {
  if (!user_.empty() && !authenticated_)
    if (auto a = co_await authenticate(); !a) co_return a.error();
  auto r = co_await transport_.post(req.path, req.body);
  if (!r && !user_.empty() && (r.error().code == errc::forbidden || r.error().detail.find("invalid auth token") != std::string::npos)) {
    // The token lapsed (etcd's simple tokens last minutes) or etcd restarted: once more with a new one.
    authenticated_ = false;
    if (auto a = co_await authenticate(); !a) co_return a.error();
    r = co_await transport_.post(req.path, req.body);
  }
  // A 4xx is an answer: etcd is there. Only no answer at all means it cannot be reached.
  reachable_ = r || r.error().code != errc::unavailable;
  co_return r;
}

awaitable<result<std::optional<etcd::kv>>> etcd_client::get(std::string key, std::int64_t* revision) {
  const auto req = etcd::range(key);
  auto text = co_await post(req);
  if (!text) co_return text.error();
  auto r = etcd::parse_range(*text);
  if (!r) co_return r.error();
  if (revision) *revision = r->head.revision;
  if (r->kvs.empty()) co_return std::optional<etcd::kv>{};
  co_return std::optional<etcd::kv>(std::move(r->kvs.front()));
}

awaitable<result<std::vector<etcd::kv>>> etcd_client::list(std::string prefix) {
  const auto req = etcd::range(prefix, true);
  auto text = co_await post(req);
  if (!text) co_return text.error();
  auto r = etcd::parse_range(*text);
  if (!r) co_return r.error();
  co_return std::move(r->kvs);
}

awaitable<result<std::int64_t>> etcd_client::put(std::string key, std::string value, std::int64_t lease) {
  const auto req = etcd::put(key, value, lease);
  auto text = co_await post(req);
  if (!text) co_return text.error();
  auto h = etcd::parse_header(*text);
  if (!h) co_return h.error();
  co_return h->revision;
}

awaitable<result<void>> etcd_client::remove(std::string key) {
  const auto req = etcd::remove(key);
  auto text = co_await post(req);
  if (!text) co_return text.error();
  auto h = etcd::parse_header(*text);
  if (!h) co_return h.error();
  co_return result<void>{};
}

awaitable<result<etcd_client::cas_outcome>> etcd_client::put_if(std::string key, std::string value, std::int64_t mod_revision,
                                                                std::int64_t lease) {
  const auto req = etcd::put_if(key, value, mod_revision, lease);
  auto text = co_await post(req);
  if (!text) co_return text.error();
  auto t = etcd::parse_txn(*text);
  if (!t) co_return t.error();
  cas_outcome out;
  out.done = t->succeeded;
  if (t->succeeded)
    out.revision = t->head.revision;  // the put is the txn's only write: the key's mod revision
  else if (!t->current.empty())
    out.current = std::move(t->current.front());
  co_return out;
}

awaitable<result<etcd_client::txn_outcome>> etcd_client::txn(std::vector<etcd::compare> when, std::vector<etcd::write> then,
                                                              std::vector<std::string> read_back) {
  const auto req = etcd::txn(when, then, read_back);
  auto text = co_await post(req);
  if (!text) co_return text.error();
  auto t = etcd::parse_txn(*text);
  if (!t) co_return t.error();
  txn_outcome out;
  out.done = t->succeeded;
  if (t->succeeded)
    out.revision = t->head.revision;
  else
    out.current = std::move(t->current);
  co_return out;
}

awaitable<result<bool>> etcd_client::remove_if(std::string key, std::int64_t mod_revision) {
  const auto req = etcd::remove_if(key, mod_revision);
  auto text = co_await post(req);
  if (!text) co_return text.error();
  auto t = etcd::parse_txn(*text);
  if (!t) co_return t.error();
  co_return t->succeeded;
}

awaitable<result<etcd::lease_reply>> etcd_client::grant(std::chrono::seconds ttl) {
  const auto req = etcd::lease_grant(ttl.count());
  auto text = co_await post(req);
  if (!text) co_return text.error();
  co_return etcd::parse_lease(*text);
}

awaitable<result<std::int64_t>> etcd_client::keepalive(std::int64_t lease) {
  const auto req = etcd::lease_keepalive(lease);
  auto text = co_await post(req);
  if (!text) co_return text.error();
  auto l = etcd::parse_lease(*text);
  if (!l) co_return l.error();
  co_return std::max<std::int64_t>(l->ttl, 0);
}

awaitable<result<void>> etcd_client::revoke(std::int64_t lease) {
  const auto req = etcd::lease_revoke(lease);
  auto text = co_await post(req);
  if (!text) co_return text.error();
  auto h = etcd::parse_header(*text);
  if (!h) co_return h.error();
  co_return result<void>{};
}

awaitable<result<void>> etcd_client::watch(std::string key, bool prefix, std::int64_t from,
                                           std::function<bool(const etcd::watch_event&)> on_event,
                                           std::chrono::milliseconds give_up) {
  std::int64_t next = from;  // the first revision not yet handed over
  bool stopped = false;
  std::optional<error> fatal;
  auto failing_since = std::chrono::steady_clock::now();
  asio::steady_timer pause(ex_);
  while (!stopped) {
    const auto req = etcd::watch(key, next, prefix);
    auto on_line = [&](std::string_view line) {
      auto w = etcd::parse_watch(line);
      if (!w) {
        fatal = w.error();
        return false;
      }
      failing_since = std::chrono::steady_clock::now();  // a member answers
      if (w->canceled) {
        fatal = w->compact_revision > 0
                    ? make_error(errc::conflict, "etcd watch from revision " + std::to_string(next) +
                                                     ": compacted up to " + std::to_string(w->compact_revision))
                    : make_error(errc::unavailable, "etcd watch cancelled: " + w->cancel_reason);
        return false;
      }
      for (const auto& ev : w->events) {
        if (ev.item.mod_revision < next) continue;  // seen before the stream broke
        next = ev.item.mod_revision + 1;
        if (!on_event(ev)) {
          stopped = true;
          return false;
        }
      }
      return true;
    };
    if (!user_.empty() && !authenticated_) (void)co_await authenticate();
    auto r = co_await transport_.stream(req.path, req.body, on_line);
    if (!r && r.error().code == errc::forbidden) authenticated_ = false;  // a new token at the next open
    if (stopped || closing_) co_return result<void>{};
    if (fatal) co_return *fatal;
    // The stream ended or could not be opened: open it again from `next`, on whichever
    // member answers, until `give_up` passes without one.
    if (std::chrono::steady_clock::now() - failing_since > give_up)
      co_return make_error(errc::unavailable, "etcd watch: no member for " + std::to_string(give_up.count()) + " ms" +
                                                  (r ? std::string() : ": " + r.error().detail));
    SHARDD_LOG(debug, "etcd_watch_reopen", "from_revision", next, "error", r ? std::string("stream ended") : r.error().detail);
    pause.expires_after(std::chrono::milliseconds(100));
    co_await pause.async_wait(asio::as_tuple(asio::use_awaitable));
  }
  co_return result<void>{};
}

}  // namespace shardd
