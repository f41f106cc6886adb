#pragma once
// Who may send which peer frame: one table, checked by the receiver before it acts.

#include "shardd/error.hpp"
#include "shardd/frame.hpp"
#include "shardd/partition_map.hpp"

#include <string_view>

namespace shardd {

/// The sender a request frame needs. The CN of the sender's certificate is its node id
/// (checked at hello); the roles below are read from the receiver's map.
enum class peer_role : std::uint8_t {
  nobody,      ///< not a request (replies, and hello, which the transport answers)
  any_node,    ///< any node with a certificate of the cluster: `join` (the node is not a member yet)
  member,      ///< a current member: in the receiver's map and not `left`
  controller,  ///< the controller of the receiver's map
  source,      ///< a current member that is the source of the migration the frame names; the
               ///< migrator (imports) and the controller (reports, commits) check it against the map or the record
};

/// What the receiver requires of a request frame.
struct peer_rule {
  peer_role sender = peer_role::nobody;
  bool at_controller = false;  ///< only the controller answers it
  /// For `migrate_commit`: the controller's record of the migration must be in `cutover`
  /// (every earlier phase, a paused or a final one is refused; `retiring` is a repeat).
  bool needs_cutover = false;
};

/// The rule for each frame type (a reply type or an unknown one: `nobody`).
[[nodiscard]] peer_rule rule_of(peer::frame_type t) noexcept;

/// Checks what the map decides of a rule: `from` is a member (or the controller) of `m`, and
/// `self` is the controller when the rule says so. Errors: `forbidden` (the sender may not send
/// it), `conflict` (this node is not the controller). The migration parts of `source` and
/// `needs_cutover` are the caller's.
[[nodiscard]] result<void> check_sender(peer::frame_type t, const partition_map& m, std::string_view self,
                                        std::string_view from);

}  // namespace shardd
