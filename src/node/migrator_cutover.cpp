// The migrator's cutover on the source side: the fence, the commit and what settles it when
// its answer is lost, the wait for the map that shows the new owner, and retirement.
#include "common/log.hpp"
#include "node/faults.hpp"
#include "node/migrator.hpp"
#include "node/migrator_outgoing.hpp"
#include "shardd/peer_messages.hpp"

namespace shardd {

using namespace migrator_detail;

awaitable<migration_fsm::event> migrator::fence(outgoing& m) {
  // From here writes to the range are refused (and retried by their senders with the next
  // map); the writer applied every write queued before the fence, so one last tail is all
  // the target lacks.
  m.fence_started = clock_type::now();
  // The report that entered cutover went out just before (the persist step): if the
  // controller took it, the commit need not ask again inside the fence.
  m.cutover_reported = m.reported_phase == migration_phase::cutover && m.controller_phase == migration_phase::cutover;
  storage::layout_change f;
  f.fence.push_back(m.range);
  if (auto r = co_await layout(std::move(f)); !r) co_return failed(E::peer_failed, "fence: " + r.error().detail);
  auto shipped = co_await ship_tail(m, store_.latest_sequence());
  if (!shipped) co_return from_send_error(shipped.error());
  co_return make_event(E::fence_ready);
}

namespace {

bool committed_phase(std::optional<migration_phase> p) {
  return p && (*p == migration_phase::retiring || *p == migration_phase::done);
}

}  // namespace

awaitable<migrator::outcome> migrator::ask_outcome(outgoing& m) {
  // A report's answer carries the controller's record: committed (retiring or done) or not.
  // The controller handles messages one at a time, so once it has answered, a commit that is
  // still on its way can no longer change what it said about the commit — unless the record is
  // still in cutover, which the caller treats as "not committed yet" and asks again.
  for (int i = 0; !stopping_; ++i) {
    co_await report(m, true);
    if (m.controller_phase) co_return committed_phase(m.controller_phase) ? outcome::committed : outcome::not_committed;
    if (i == 0 || i % 30 == 0)
      SHARDD_LOG(warn, "migration_outcome_unknown", "migration", m.rec.id, "waiting", "the controller's answer");
    co_await sleep_for(std::chrono::seconds(1));
  }
  co_return outcome::stopping;
}

awaitable<bool> migrator::await_new_owner(outgoing& m) {
  // The fence holds until this node has a map in which it no longer owns the shard: a write
  // it took after lifting the fence with the old map would be deleted by retire().
  for (int i = 1; !stopping_; ++i) {
    const auto snap = ring_.snapshot();
    const auto* ix = snap->map->find_index(m.rec.index);
    const auto* s = ix ? ix->find_shard(m.rec.shard) : nullptr;
    if (!s || s->owner != cfg_.node_id) co_return true;
    if (i % 100 == 0) {
      // The push did not come within a second: fetch the map from the controller.
      if (i == 100) SHARDD_LOG(warn, "migration_map_late", "migration", m.rec.id, "fetching", snap->map->controller);
      auto f = make_frame(peer::frame_type::map_get, {}, snap->map->version);
      if (auto r = co_await peers_.call(snap->map->controller, std::move(f), peer_timeout); r) {
        if (auto fetched = from_json(r->payload); fetched && fetched->controller == r->sender)
          (void)co_await ring_.install(std::move(*fetched));  // asked for: never delayed by the map_delay_ms fault
      }
    }
    co_await sleep_for(std::chrono::milliseconds(10));
  }
  co_return false;
}

awaitable<migration_fsm::event> migrator::commit(outgoing& m) {
  // The controller commits only a record in cutover: tell it first, unless the report made as
  // the fence went up was taken (a commit the controller refuses after all, say because an
  // operator cancelled meanwhile, fails as commit_refused below). No answer, no commit.
  m.rec.phase = m.fsm.current().phase;
  if (!std::exchange(m.cutover_reported, false) || m.controller_phase != migration_phase::cutover) co_await report(m, true);
  if (m.reported_phase != migration_phase::cutover || !m.controller_phase)
    co_return failed(E::peer_failed, "commit: the controller did not take the cutover report");
  if (committed_phase(m.controller_phase)) co_return co_await committed(m);  // an earlier commit's answer was lost
  const auto snap = ring_.snapshot();
  peer::migrate_control c{m.rec.id, "commit"};
  auto f = make_frame(peer::frame_type::migrate_commit, peer::encode(c), snap->map->version);
  if (faults_.partition_after_commit > 0)  // the commit and its answer get through; nothing after them
    partition_from(snap->map->controller, std::chrono::milliseconds(faults_.partition_after_commit), 1);
  auto r = co_await peers_.call(snap->map->controller, std::move(f), peer_timeout);
  if (r && faults_.lose_commit_answer > 0 && commits_lost_++ < faults_.lose_commit_answer) {
    SHARDD_LOG(warn, "fault_injected", "migration", m.rec.id, "fault", "lose_commit_answer");
    r = make_error(errc::unavailable, "the commit's answer was lost (injected)");
  }
  if (r && faults_.kill_after_commit > 0 && ++commits_answered_ == faults_.kill_after_commit) {
    kill_for_fault("kill_after_commit", "source");
  }
  if (!r) {
    if (r.error().code == errc::conflict || r.error().code == errc::forbidden)
      co_return failed(E::commit_refused, r.error().detail);
    // No answer: the controller may have committed or not. Ask it; never guess.
    switch (co_await ask_outcome(m)) {
      case outcome::committed: break;
      case outcome::not_committed: co_return failed(E::peer_failed, "commit: " + r.error().detail);
      case outcome::stopping: co_return failed(E::peer_failed, "stopping");
    }
  }
  co_return co_await committed(m);
}

awaitable<migration_fsm::event> migrator::committed(outgoing& m) {
  if (!co_await await_new_owner(m)) co_return failed(E::peer_failed, "stopping");  // the fence goes with the process
  storage::layout_change u;
  u.unfence.push_back(m.range);
  (void)co_await layout(std::move(u));
  m.rec.fence_ms = static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now() - m.fence_started).count());
  SHARDD_LOG(info, "migration_committed", "migration", m.rec.id, "index", m.rec.index, "shard", m.rec.shard, "owner",
             m.rec.target, "fence_ms", m.rec.fence_ms);
  co_return make_event(E::committed);
}

awaitable<migration_fsm::event> migrator::retire(outgoing& m) {
  // The source keeps its copy for the undo window, then deletes the range once — unless the
  // shard came back here meanwhile.
  const auto until = clock_type::now() + std::chrono::milliseconds(cfg_.migration_undo_window_ms);
  while (clock_type::now() < until && !stopping_) co_await sleep_for(std::min<clock_type::duration>(until - clock_type::now(), std::chrono::milliseconds(200)));
  if (stopping_) co_return failed(E::peer_failed, "stopping");
  const auto snap = ring_.snapshot();
  const auto* ix = snap->map->find_index(m.rec.index);
  const auto* s = ix ? ix->find_shard(m.rec.shard) : nullptr;
  if (s && s->owner != cfg_.node_id && !(s->state == shard_state::migrating && s->target == cfg_.node_id)) {
    storage::layout_change d;
    d.drop_ranges.push_back(m.range);
    if (auto r = co_await layout(std::move(d)); !r) co_return failed(E::peer_failed, "retire: " + r.error().detail);
  }
  co_return make_event(E::retired);
}

}  // namespace shardd
