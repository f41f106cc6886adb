#pragma once
// Internal to the migrator's source side (migrator.cpp, migrator_cutover.cpp): one outgoing
// migration's state and the helpers its steps share.

#include "node/migrator.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/experimental/channel.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <deque>
#include <optional>

namespace shardd::migrator_detail {

namespace asio = boost::asio;
using asio::awaitable;
using clock_type = std::chrono::steady_clock;
using A = migration_fsm::action_kind;
using E = migration_fsm::event_kind;

// A copy batch becomes one SST file on the target, and each ingest has a fixed cost (a file,
// an fsync, a manifest write), so uncapped copies send large batches (1 MiB -> 4 MiB took a
// 400 MiB copy from 1.6 s to 1.0 s). Under a bandwidth cap a batch is an eighth of a second
// of the cap, so progress and the cap stay smooth. Tail batches stay at 1 MiB.
constexpr std::size_t batch_records = 65536;
constexpr std::size_t batch_bytes = 1u << 20;
constexpr std::size_t copy_batch_max = 4u << 20;
constexpr std::size_t copy_batch_min = 64u << 10;
// While a move's batches go compressed (the last one read did), uncapped batches are twice as
// large: on the wire they are a fraction of that, and the target's ingests, a fixed cost each
// and taken one at a time, halve (1 KiB moves 482 -> 531 MiB/s, 100-byte 241 -> 255-276).
// Not for batches that go as they are: 8 MiB of words took the foreground p99 during the move
// from 12-17 ms to 32 ms.
constexpr std::size_t copy_batch_compressed_max = 8u << 20;
// Copy batches in flight at once. They hold disjoint keys of one snapshot, so they may apply
// in any order and be applied twice after a retry. (Tail batches go one at a time, in order.)
// The target writes the files of all of them at once and ingests them in turn: four kept its
// two pool threads busy only part of the time (1 KiB moves 284 MiB/s with four, 323 with eight).
constexpr std::size_t copy_window = 8;
// Under a bandwidth cap a batch is an eighth of a second of it, and four batches (half a
// second) keep the copy going: more would only wait in the throttle, and a cap that falls (the
// adaptive throttle) would hold the next acknowledgment for as long as they all take at the
// new rate.
constexpr std::size_t copy_window_capped = 4;
constexpr auto peer_timeout = std::chrono::seconds(10);
constexpr auto report_every = std::chrono::milliseconds(500);
inline const std::string out_prefix = "migration/out/";

inline std::uint64_t wall_ms() {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count());
}

inline awaitable<void> sleep_for(std::chrono::nanoseconds d) {
  if (d <= std::chrono::nanoseconds(0)) co_return;
  asio::steady_timer t(co_await asio::this_coro::executor);
  t.expires_after(d);
  co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
}

inline migration_fsm::event make_event(E kind) {
  migration_fsm::event e;
  e.kind = kind;
  return e;
}

inline migration_fsm::event failed(E kind, std::string reason) {
  auto e = make_event(kind);
  e.reason = std::move(reason);
  return e;
}

inline migration_fsm::event from_send_error(const error& e) {
  if (e.code == errc::corrupt) return failed(E::checksum_failed, e.detail);
  return failed(E::peer_failed, e.detail);
}

}  // namespace shardd::migrator_detail

namespace shardd {

using send_channel = boost::asio::experimental::channel<void(boost::system::error_code, result<peer::frame>)>;

/// One outgoing migration: its record, state machine and copy state, touched on `strand` only.
struct migrator::outgoing : std::enable_shared_from_this<migrator::outgoing> {
  explicit outgoing(asio::any_io_executor ex) : strand(asio::make_strand(ex)) {}
  struct flight {
    std::shared_ptr<send_channel> done;
    std::string cursor;
    std::uint64_t bytes = 0, records = 0;
  };
  asio::strand<asio::any_io_executor> strand;
  migration_record rec;
  migration_fsm fsm;
  key_range range;
  std::optional<storage::snapshot> snap;  // the copy's snapshot
  std::string read_cursor;                // last key read for sending (ahead of the acknowledged one)
  bool read_done = false;
  bool compressing = false;  ///< the last copy batch read went compressed
  std::deque<flight> inflight;            // copy batches sent, oldest first
  token_bucket bucket;                    // the migration's own cap
  std::string control;                    // a command waiting for the next step: pause, resume, cancel
  bool driving = false;
  /// Bound to the drive coroutine: stop() emits a terminal cancellation, which aborts the
  /// timer, channel or peer call it waits on and unwinds it at its next step.
  asio::cancellation_signal cancel;
  migrator_detail::clock_type::time_point last_report{};
  migration_phase reported_phase = migration_phase::queued;
  /// The phase of the controller's record in its answer to the last report; empty when that
  /// report got no answer.
  std::optional<migration_phase> controller_phase;
  migrator_detail::clock_type::time_point rate_since = migrator_detail::clock_type::now();
  std::uint64_t rate_bytes = 0;
  migrator_detail::clock_type::time_point fence_started{};
  /// Set as the fence goes up when the controller took the report that entered cutover; the
  /// commit then does not report again (one round trip less inside the fence).
  bool cutover_reported = false;
};

}  // namespace shardd
