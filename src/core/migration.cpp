#include "shardd/migration.hpp"

#include <algorithm>

#include "shardd/json_fields.hpp"
#include "shardd/text.hpp"

#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

namespace shardd {

namespace json = boost::json;

std::string_view to_string(migration_phase p) noexcept {
  switch (p) {
    case migration_phase::queued: return "queued";
    case migration_phase::copying: return "copying";
    case migration_phase::catching_up: return "catching_up";
    case migration_phase::verifying: return "verifying";
    case migration_phase::cutover: return "cutover";
    case migration_phase::retiring: return "retiring";
    case migration_phase::done: return "done";
    case migration_phase::failed: return "failed";
    case migration_phase::cancelled: return "cancelled";
    case migration_phase::rolled_back: return "rolled_back";
  }
  return "?";
}

std::optional<migration_phase> parse_phase(std::string_view s) noexcept {
  for (int i = 0; i <= static_cast<int>(migration_phase::rolled_back); ++i)
    if (to_string(static_cast<migration_phase>(i)) == s) return static_cast<migration_phase>(i);
  return std::nullopt;
}

bool is_final(migration_phase p) noexcept {
  return p == migration_phase::done || p == migration_phase::failed || p == migration_phase::cancelled ||
         p == migration_phase::rolled_back;
}

bool before_commit(migration_phase p) noexcept {
  return p == migration_phase::queued || p == migration_phase::copying || p == migration_phase::catching_up ||
         p == migration_phase::verifying || p == migration_phase::cutover;
}

std::string_view to_string(migration_fsm::event_kind k) noexcept {
  using E = migration_fsm::event_kind;
  switch (k) {
    case E::start: return "start";
    case E::batch_acked: return "batch_acked";
    case E::copy_finished: return "copy_finished";
    case E::tail_round: return "tail_round";
    case E::verified: return "verified";
    case E::fence_ready: return "fence_ready";
    case E::committed: return "committed";
    case E::commit_refused: return "commit_refused";
    case E::retired: return "retired";
    case E::peer_failed: return "peer_failed";
    case E::checksum_failed: return "checksum_failed";
    case E::cancel: return "cancel";
    case E::pause: return "pause";
    case E::resume: return "resume";
    case E::recovered: return "recovered";
  }
  return "?";
}

std::string_view to_string(migration_fsm::action_kind k) noexcept {
  using A = migration_fsm::action_kind;
  switch (k) {
    case A::copy_from_cursor: return "copy_from_cursor";
    case A::copy_from_start: return "copy_from_start";
    case A::send_next: return "send_next";
    case A::tail: return "tail";
    case A::verify: return "verify";
    case A::fence: return "fence";
    case A::commit: return "commit";
    case A::unfence: return "unfence";
    case A::rollback: return "rollback";
    case A::retire: return "retire";
    case A::stop_sending: return "stop_sending";
    case A::persist: return "persist";
  }
  return "?";
}

namespace {
using A = migration_fsm::action_kind;
using E = migration_fsm::event_kind;
using P = migration_phase;
}  // namespace

std::vector<migration_fsm::action> migration_fsm::fail(migration_phase to, std::string why) {
  std::vector<action> out;
  if (s_.phase == P::cutover) out.push_back({A::unfence});
  s_.phase = to;
  s_.error = std::move(why);
  s_.paused = false;
  out.push_back({A::rollback});
  out.push_back({A::persist});
  return out;
}

// The action that carries on with the current phase after an interruption.
static migration_fsm::action continue_action(const migration_fsm::state& s) {
  switch (s.phase) {
    case P::copying: return {A::copy_from_cursor, s.cursor};
    case P::catching_up: return {A::tail, {}, s.tail_seq};
    case P::verifying: return {A::verify, {}, s.tail_seq};
    case P::cutover: return {A::fence};
    case P::retiring: return {A::retire};
    default: return {A::persist};
  }
}

std::vector<migration_fsm::action> migration_fsm::retry_or_fail(const std::string& why) {
  if (++s_.peer_failures > limits_.max_peer_failures)
    return fail(P::rolled_back, why + " (gave up after " + std::to_string(limits_.max_peer_failures) + " tries)");
  return {continue_action(s_)};
}

std::vector<migration_fsm::action> migration_fsm::on(const event& e) {
  if (is_final(s_.phase)) return {};
  switch (e.kind) {
    case E::start:
      if (s_.phase != P::queued) return {};
      s_.phase = P::copying;
      s_.cursor.clear();
      // From the start: the target first clears whatever of the range it may hold.
      return {{A::persist}, {A::copy_from_start}};

    case E::batch_acked:
      s_.bytes_done += e.bytes;
      s_.records_done += e.records;
      s_.peer_failures = 0;
      if (s_.phase == P::copying) {
        s_.cursor = e.cursor;
      } else if (s_.phase == P::catching_up || s_.phase == P::verifying || s_.phase == P::cutover) {
        if (e.seq > s_.tail_seq) s_.tail_seq = e.seq;
      } else {
        return {};
      }
      if (s_.paused) return {{A::persist}, {A::stop_sending}};
      // Checkpoint the copy and tail positions, so that a restart continues from here.
      if (s_.phase == P::copying || s_.phase == P::catching_up) return {{A::persist}, {A::send_next}};
      return {{A::send_next}};

    case E::copy_finished:
      if (s_.phase != P::copying) return {};
      s_.phase = P::catching_up;
      s_.catchup_rounds = 0;
      return {{A::persist}, {A::tail, {}, s_.tail_seq}};

    case E::tail_round:
      if (s_.phase != P::catching_up) return {};
      ++s_.catchup_rounds;
      if (e.ops <= limits_.small_tail_ops || s_.catchup_rounds >= limits_.max_catchup_rounds) {
        s_.phase = P::verifying;
        return {{A::persist}, {A::verify, {}, s_.tail_seq}};
      }
      if (s_.paused) return {{A::stop_sending}};
      return {{A::tail, {}, s_.tail_seq}};

    case E::verified:
      if (s_.phase != P::verifying) return {};
      if (e.match) {
        s_.phase = P::cutover;
        return {{A::persist}, {A::fence}};
      }
      if (++s_.recopies > limits_.max_recopies)
        return fail(P::rolled_back, "digests differed " + std::to_string(s_.recopies) + " times");
      s_.phase = P::copying;
      s_.cursor.clear();
      s_.bytes_done = s_.records_done = 0;
      return {{A::persist}, {A::copy_from_start}};

    case E::fence_ready:
      if (s_.phase != P::cutover) return {};
      return {{A::commit}};

    case E::committed:
      if (s_.phase != P::cutover) return {};
      s_.phase = P::retiring;
      return {{A::persist}, {A::retire}};

    case E::commit_refused:
      if (s_.phase != P::cutover) return {};
      return fail(e.reason.find("cancel") != std::string::npos ? P::cancelled : P::rolled_back,
                  "commit refused: " + e.reason);

    case E::retired:
      if (s_.phase != P::retiring) return {};
      s_.phase = P::done;
      return {{A::persist}};

    case E::peer_failed:
      return retry_or_fail(e.reason.empty() ? "peer failed" : e.reason);

    case E::checksum_failed:
      // The batch was refused, nothing of it applied: send it again from the last ack.
      return retry_or_fail("checksum mismatch: " + e.reason);

    case E::cancel:
      if (!before_commit(s_.phase)) return {};  // committed already: too late to cancel
      return fail(P::cancelled, e.reason.empty() ? "cancelled" : e.reason);

    case E::pause:
      if (s_.paused || s_.phase == P::cutover || s_.phase == P::retiring) return {};
      s_.paused = true;
      return {{A::stop_sending}, {A::persist}};

    case E::resume:
      if (!s_.paused) return {};
      s_.paused = false;
      return {{A::persist}, continue_action(s_)};

    case E::recovered:
      ++s_.resumes;
      s_.peer_failures = 0;
      if (s_.phase == P::queued) return {{A::persist}};
      if (s_.phase == P::cutover) {
        // The fence died with the process. If the controller committed meanwhile (`match`),
        // the move is done; otherwise writes may have landed since the last tail: catch up
        // and verify again before fencing.
        if (e.match) {
          s_.phase = P::retiring;
          return {{A::persist}, {A::retire}};
        }
        s_.phase = P::catching_up;
        s_.catchup_rounds = 0;
      }
      if (s_.paused) return {{A::persist}};
      return {{A::persist}, continue_action(s_)};
  }
  return {};
}

// --- JSON -------------------------------------------------------------------------------------

namespace {

result<migration_phase> read_phase(json_fields& f) {
  auto text = f.req_string("phase");
  if (!text) return text.error();
  auto phase = parse_phase(*text);
  if (!phase) return f.fail("phase", "unknown phase");
  return *phase;
}

}  // namespace

std::string to_json(const migration_record& m) {
  json::object o;
  o["id"] = m.id;
  o["index"] = m.index;
  o["index_id"] = m.index_id;
  o["shard"] = m.shard;
  o["source"] = m.source;
  o["target"] = m.target;
  o["priority"] = to_string(m.priority);
  o["max_bytes_per_sec"] = m.max_bytes_per_sec;
  o["phase"] = to_string(m.phase);
  o["paused"] = m.paused;
  o["bytes_done"] = m.bytes_done;
  o["records_done"] = m.records_done;
  o["bytes_total"] = m.bytes_total;
  o["records_total"] = m.records_total;
  o["rate_bytes_per_sec"] = m.rate_bytes_per_sec;
  o["rate_limited_by"] = m.rate_limited_by;
  o["fence_ms"] = m.fence_ms;
  o["recopies"] = m.recopies;
  o["resumes"] = m.resumes;
  o["reason"] = m.reason;
  if (!m.plan.empty()) o["plan"] = m.plan;
  o["error"] = m.error;
  o["created_ms"] = m.created_ms;
  o["updated_ms"] = m.updated_ms;
  return to_json_text(o);
}

result<migration_record> migration_from_json(std::string_view text) {
  auto parsed = parse_json(text, "migration");
  if (!parsed) return parsed.error();
  if (!parsed->is_object()) return make_error(errc::invalid_argument, "migration: expected an object");
  json_fields f(parsed->get_object(), "");
  migration_record m;
  SHARDD_READ(m.id, f.req_string("id"));
  SHARDD_READ(m.index, f.req_string("index"));
  SHARDD_READ(m.index_id, f.opt_u64("index_id", 0, 0, UINT32_MAX));
  SHARDD_READ(m.shard, f.opt_u64("shard", 0, 0, UINT32_MAX));
  SHARDD_READ(m.source, f.req_string("source"));
  SHARDD_READ(m.target, f.req_string("target"));
  auto pr = f.req_string("priority");
  if (!pr) return pr.error();
  auto p = parse_priority(*pr);
  if (!p) return f.fail("priority", "unknown priority");
  m.priority = *p;
  SHARDD_READ(m.max_bytes_per_sec, f.opt_u64("max_bytes_per_sec", 0));
  SHARDD_READ(m.phase, read_phase(f));
  SHARDD_READ(m.paused, f.opt_bool("paused", false));
  SHARDD_READ(m.bytes_done, f.opt_u64("bytes_done", 0));
  SHARDD_READ(m.records_done, f.opt_u64("records_done", 0));
  SHARDD_READ(m.bytes_total, f.opt_u64("bytes_total", 0));
  SHARDD_READ(m.records_total, f.opt_u64("records_total", 0));
  SHARDD_READ(m.rate_bytes_per_sec, f.opt_u64("rate_bytes_per_sec", 0));
  SHARDD_READ_OPT_STRING(m.rate_limited_by, f, "rate_limited_by");
  SHARDD_READ(m.fence_ms, f.opt_u64("fence_ms", 0));
  SHARDD_READ(m.recopies, f.opt_u64("recopies", 0, 0, UINT32_MAX));
  SHARDD_READ(m.resumes, f.opt_u64("resumes", 0, 0, UINT32_MAX));
  SHARDD_READ_OPT_STRING(m.reason, f, "reason");
  SHARDD_READ_OPT_STRING(m.plan, f, "plan");
  SHARDD_READ_OPT_STRING(m.error, f, "error");
  SHARDD_READ(m.created_ms, f.opt_u64("created_ms", 0));
  SHARDD_READ(m.updated_ms, f.opt_u64("updated_ms", 0));
  if (auto fin = f.finish(); !fin) return fin.error();
  return m;
}

std::string to_json(const migration_fsm::state& s) {
  json::object o;
  o["phase"] = to_string(s.phase);
  o["paused"] = s.paused;
  o["cursor"] = base64url_encode(s.cursor);
  o["snapshot_seq"] = s.snapshot_seq;
  o["tail_seq"] = s.tail_seq;
  o["bytes_done"] = s.bytes_done;
  o["records_done"] = s.records_done;
  o["recopies"] = s.recopies;
  o["resumes"] = s.resumes;
  o["peer_failures"] = s.peer_failures;
  o["catchup_rounds"] = s.catchup_rounds;
  o["error"] = s.error;
  return to_json_text(o);
}

result<migration_fsm::state> fsm_state_from_json(std::string_view text) {
  auto parsed = parse_json(text, "migration state");
  if (!parsed) return parsed.error();
  if (!parsed->is_object()) return make_error(errc::invalid_argument, "migration state: expected an object");
  json_fields f(parsed->get_object(), "");
  migration_fsm::state s;
  SHARDD_READ(s.phase, read_phase(f));
  SHARDD_READ(s.paused, f.opt_bool("paused", false));
  auto cursor = f.req_string("cursor");
  if (!cursor) return cursor.error();
  auto decoded = base64url_decode(*cursor);
  if (!decoded) return f.fail("cursor", "not base64url");
  s.cursor = std::move(*decoded);
  SHARDD_READ(s.snapshot_seq, f.opt_u64("snapshot_seq", 0));
  SHARDD_READ(s.tail_seq, f.opt_u64("tail_seq", 0));
  SHARDD_READ(s.bytes_done, f.opt_u64("bytes_done", 0));
  SHARDD_READ(s.records_done, f.opt_u64("records_done", 0));
  SHARDD_READ(s.recopies, f.opt_u64("recopies", 0, 0, UINT32_MAX));
  SHARDD_READ(s.resumes, f.opt_u64("resumes", 0, 0, UINT32_MAX));
  SHARDD_READ(s.peer_failures, f.opt_u64("peer_failures", 0, 0, UINT32_MAX));
  SHARDD_READ(s.catchup_rounds, f.opt_u64("catchup_rounds", 0, 0, UINT32_MAX));
  SHARDD_READ_OPT_STRING(s.error, f, "error");
  if (auto fin = f.finish(); !fin) return fin.error();
  return s;
}

std::string to_json(const outgoing_state& s) {
  return "{\"record\":" + to_json(s.record) + ",\"fsm\":" + to_json(s.fsm) + "}";
}

result<outgoing_state> outgoing_state_from_json(std::string_view text) {
  auto parsed = parse_json(text, "migration source state");
  if (!parsed) return parsed.error();
  const auto* o = parsed->if_object();
  if (!o) return make_error(errc::invalid_argument, "migration source state: expected an object");
  const auto* rec = o->if_contains("record");
  const auto* fsm = o->if_contains("fsm");
  if (!rec || !rec->is_object()) return make_error(errc::invalid_argument, "migration source state: record: expected an object");
  if (!fsm || !fsm->is_object()) return make_error(errc::invalid_argument, "migration source state: fsm: expected an object");
  if (o->size() != 2) return make_error(errc::invalid_argument, "migration source state: unknown field");
  auto r = migration_from_json(boost::json::serialize(*rec));
  if (!r) return make_error(r.error().code, "migration source state: record: " + r.error().detail);
  auto st = fsm_state_from_json(boost::json::serialize(*fsm));
  if (!st) return make_error(st.error().code, "migration source state: fsm: " + st.error().detail);
  return outgoing_state{std::move(*r), std::move(*st)};
}

double migration_progress(const migration_record& m) noexcept {
  switch (m.phase) {
    case migration_phase::verifying:
    case migration_phase::cutover:
    case migration_phase::retiring:
    case migration_phase::done:
      return 1.0;
    default:
      break;
  }
  if (m.bytes_total == 0) return 0.0;
  return std::min(1.0, static_cast<double>(m.bytes_done) / static_cast<double>(m.bytes_total));
}

}  // namespace shardd
