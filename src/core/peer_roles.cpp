#include "shardd/peer_roles.hpp"

#include <string>

namespace shardd {

peer_rule rule_of(peer::frame_type t) noexcept {
  using F = peer::frame_type;
  using R = peer_role;
  switch (t) {
    case F::join: return {R::any_node, true, false};
    case F::heartbeat: return {R::any_node, true, false};  // a node the controller forgot hears not_found and joins again
    case F::map_push: return {R::controller, false, false};
    case F::map_get:
    case F::ping: return {R::member, false, false};
    case F::forward:
    case F::write_ops:
    case F::scan_shard:
    case F::node_stats: return {R::member, false, false};
    case F::shard_median: return {R::controller, false, false};
    case F::migrate_start:
    case F::migrate_control: return {R::controller, false, false};
    case F::migrate_report: return {R::source, true, false};
    case F::migrate_commit: return {R::source, true, true};
    case F::data_batch:
    case F::import_digest:
    case F::import_reset: return {R::source, false, false};
    default: return {R::nobody, false, false};
  }
}

result<void> check_sender(peer::frame_type t, const partition_map& m, std::string_view self, std::string_view from) {
  const auto rule = rule_of(t);
  const auto what = std::string(peer::to_string(t));
  if (rule.sender == peer_role::nobody) return make_error(errc::invalid_argument, "unexpected " + what + " frame");
  if (rule.at_controller && m.controller != self)
    return make_error(errc::conflict, "node '" + std::string(self) + "' is not the controller");
  switch (rule.sender) {
    case peer_role::nobody:
    case peer_role::any_node: return {};
    case peer_role::controller:
      if (m.controller.empty() || from != m.controller)
        return make_error(errc::forbidden, what + " is taken only from the controller" +
                                               (m.controller.empty() ? std::string() : " ('" + m.controller + "')") +
                                               ", not from '" + std::string(from) + "'");
      return {};
    case peer_role::member:
    case peer_role::source: {
      const auto* n = m.find_node(from);
      if (!n || n->state == node_state::left)
        return make_error(errc::forbidden, what + " is taken only from a member; '" + std::string(from) + "' is not one");
      return {};
    }
  }
  return {};
}

}  // namespace shardd
