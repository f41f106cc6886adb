#pragma once
// Faults a test injects through the environment: SHARDD_TEST_FAULTS=name=value,... Unset in
// production, where every fault reads 0.
//
//   corrupt_batch=N      flip a byte of the N-th data batch this node sends, after its checksum
//   digest_mismatch=N    the first N migration digest comparisons differ
//   map_delay_ms=N       maps the controller pushes or hands out with a heartbeat are installed
//                        N ms late (a node that lags behind the cluster's map); a map this node
//                        asks for itself is not delayed
//   median_delay_ms=N    this node takes N ms longer to find a range shard's median key (a
//                        large shard), so a split waits that long for it
//   verify_delay_ms=N    this node's full check of a shard (POST .../verify) takes N ms longer
//   lose_commit_answer=N the first N answers to this node's migrate_commit are dropped, as if
//                        lost on the way (the controller did commit)
//   kill_after_commit=N  this node SIGKILLs itself right after the answer to its N-th
//                        migrate_commit, before it has the map that shows the new owner
//   partition_after_commit=N  as this node sends its migrate_commit, the network between it and
//                        the controller is cut for N ms: the commit and its answer get
//                        through, every other call and frame either way fails (the new map
//                        the controller pushes meanwhile is refused)
//   kill_after_begin=1   the controller SIGKILLs itself right after it has begun a move in
//                        the map, before the record says so
//   kill_in_phase=P      SIGKILL this node when a move it takes part in reaches phase P
//                        (copying, catching_up, verifying, cutover, retiring): the source as
//                        it records the phase, the target on the first request of the phase
//                        (a copy batch, a tail batch, the digest, a tail batch after the
//                        digest, the map that makes it the owner), the controller as it
//                        records the phase a report brings (retiring: the commit)

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

namespace shardd {

/// The value of fault `name` in SHARDD_TEST_FAULTS, or 0.
std::uint32_t test_fault(std::string_view name);
/// The text of fault `name` (for `kill_in_phase=catching_up`), or "".
std::string test_fault_text(std::string_view name);
/// Logs the fault and SIGKILLs this process.
[[noreturn]] void kill_for_fault(std::string_view fault, std::string_view where);
/// The fault partition_after_commit: peer traffic with `peer` is dropped for `length` from
/// now, except the next `let_through` calls to it.
void partition_from(std::string peer, std::chrono::milliseconds length, int let_through = 0);
/// True while partition_from() cuts this node off from `peer` (one atomic load otherwise).
/// `outgoing`: a call this node makes (which may be one let through).
bool partitioned_from(std::string_view peer, bool outgoing = false);

}  // namespace shardd
