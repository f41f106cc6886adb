#pragma once
// The node's configuration: parsed once from JSON and flags into typed structs, validated at
// start. A bad value stops start-up with a message naming the field.

#include "shardd/error.hpp"
#include "shardd/host_port.hpp"
#include "shardd/rebalance_settings.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace shardd {

/// storage.durability: `fsync` (the WAL is fsynced before a write is acknowledged) or `async`.
enum class durability_mode { fsync, async };

struct tls_config {
  std::string cert;  ///< PEM certificate chain of this node (server and client use)
  std::string key;   ///< PEM private key
  std::string ca;    ///< PEM cluster CA: verifies peers
};

/// Where the control plane keeps the map and elects the controller: the embedded plane (the
/// bootstrap node's store) or etcd.
struct etcd_config {
  std::vector<host_port> endpoints;  ///< empty: the embedded plane
  std::string ca;                    ///< PEM CA of etcd's certificates: https when set
  std::string cert, key;             ///< PEM client certificate and key (etcd --client-cert-auth)
  std::string user, password;        ///< etcd's auth: a user and its password (or SHARDD_ETCD_PASSWORD)
  std::string prefix = "/shardd/";   ///< keys are prefix + cluster_id + "/..."
  std::uint32_t election_ttl_s = 2;  ///< the controller's lease: a dead controller is replaced this soon
  std::uint32_t timeout_ms = 2000;   ///< per etcd request and member
  bool enabled() const noexcept { return !endpoints.empty(); }
};

/// Parses `meta`: "embedded" (or empty), or "etcd://HOST:PORT[,HOST:PORT...]".
[[nodiscard]] result<std::vector<host_port>> parse_meta(std::string_view meta);

/// Bounds of the monitor's settings (the config file and the API check the same ones).
constexpr std::uint32_t monitor_min_interval_ms = 100;  ///< or 0: off
constexpr std::uint32_t monitor_max_interval_ms = 3600 * 1000;
constexpr std::uint64_t monitor_min_history_ms = 1000;
constexpr std::uint64_t monitor_max_history_ms = 7 * 24 * 3600 * 1000ull;

struct node_config {
  std::string node_id;
  std::string cluster_id = "shardd";
  std::string data_dir;
  std::string log_level = "info";
  std::uint32_t weight = 1;
  std::uint32_t threads = 2;               ///< network threads running the io_context
  std::uint32_t shutdown_timeout_ms = 10000;

  // rest
  host_port rest_listen{"127.0.0.1", 8443};
  std::string token;
  std::uint64_t max_body_bytes = 8u << 20;
  std::uint32_t idle_timeout_ms = 60000;
  std::uint32_t request_timeout_ms = 10000;
  std::uint32_t header_timeout_ms = 10000;  ///< from a request's first byte to the end of its header
  std::uint32_t max_connections = 4096;     ///< open REST connections; beyond: 503 and close
  bool access_log = true;                   ///< one log line per REST request
  double access_log_sample = 1.0;           ///< the share of requests logged (5xx answers always are)

  // peer
  host_port peer_listen{"127.0.0.1", 9443};
  std::uint32_t peer_max_in_flight = 64;        ///< requests handled at once per peer connection
  std::uint32_t peer_write_timeout_ms = 30000;  ///< a reply write that takes longer closes the connection
  std::uint32_t peer_idle_timeout_ms = 600000;  ///< a peer connection with no frame this long is closed

  tls_config tls;

  // meta: where the map lives (config "meta" and "etcd", flags --meta and --etcd-*)
  etcd_config etcd;

  // cluster
  bool bootstrap = false;
  std::optional<host_port> join;
  std::uint32_t vnodes_per_weight = 128;
  double placement_epsilon = 0.0;  ///< 0: a new index's shards spread as evenly as the weights allow
  std::uint32_t default_shards = 32;
  std::uint32_t heartbeat_interval_ms = 1000;
  std::uint32_t heartbeat_miss_limit = 3;

  // migration
  std::uint32_t migration_undo_window_ms = 30000;  ///< how long a source keeps a moved shard's data
  std::uint64_t migration_bytes_per_sec = 0;       ///< the cluster's initial per-node cap (bootstrap)
  bool migration_adaptive = false;                 ///< the cluster's initial adaptive throttle (bootstrap)
  double migration_adaptive_p99_ms = 50;
  std::uint64_t migration_adaptive_min_bytes_per_sec = 1 << 20;
  // The cluster's initial migration settings (a bootstrapping node puts them into the first
  // map; afterwards PUT /v1/migrations/settings changes them).
  std::uint32_t migration_max_outgoing = 2;
  std::uint32_t migration_max_incoming = 2;
  // Finished migration records (done, failed, cancelled, rolled back) are deleted once older
  // than keep_finished_ms, or beyond the newest keep_finished of them.
  std::uint64_t migration_keep_finished_ms = 24ull * 3600 * 1000;
  std::uint32_t migration_keep_finished = 1000;
  std::uint32_t migration_threads = 2;             ///< scans, digests and imports: never the read pool's
  /// How far below the network threads the migration threads run (nice increment, 0-19).
  std::uint32_t migration_nice = 19;
  /// The same for the threads that do the work of moves of priority `high` (a disk evacuation):
  /// they must finish on a node saturated with requests, where nice 19 gets little of a core.
  std::uint32_t migration_high_nice = 0;
  /// A copy batch goes compressed (LZ4) when it compresses at least this many times; 0: never.
  /// Below ~4x, on a node whose cores are busy, compressing costs more CPU than the bytes it
  /// saves cost TLS and the sockets; over a slow link a lower bar pays.
  double migration_compress_min_ratio = 4.0;

  // rebalance: the cluster's initial rebalancer settings (bootstrap; afterwards
  // PUT /v1/rebalance/settings changes them)
  rebalance_settings rebalance;

  // monitor
  std::uint32_t monitor_interval_ms = 5000;      ///< sampling period; 0: off
  std::uint64_t monitor_history_ms = 3600 * 1000;  ///< samples kept in memory
  std::uint64_t monitor_shard_bytes_limit = 50ull << 30;  ///< forecasts: a shard's size limit (0: none)
  std::uint32_t monitor_disk_watermark_percent = 85;       ///< forecasts: the disk's limit
  std::uint64_t monitor_forecast_horizon_ms = 24 * 3600 * 1000ull;  ///< a limit forecast within this is an event

  // storage
  durability_mode durability = durability_mode::fsync;
  std::uint64_t block_cache_mb = 256;
  std::uint32_t read_threads = 2;
  /// The data disk's size for the disk watermarks: 0 measures the data directory's file system;
  /// above 0 the node counts the data directory's bytes against this many (a quota on a
  /// shared disk).
  std::uint64_t capacity_bytes = 0;

  // limits
  std::uint64_t max_doc_bytes = 1u << 20;
  std::uint64_t max_scan_page_bytes = 16u << 20;  ///< records of one scan page across shards (then a cursor)
};

/// Parses the JSON text of a config file. Relative paths (data_dir, tls files) are resolved
/// against `base_dir`, the folder of the config file. Every field is optional except where
/// `validate` says otherwise; unknown fields are errors.
[[nodiscard]] result<node_config> parse_config(std::string_view json_text, const std::string& base_dir);

/// Flag values that override the file. Empty optionals leave the file's value.
struct config_overrides {
  std::optional<std::string> node_id, data_dir, rest_listen, peer_listen, join, log_level, token;
  std::optional<std::string> tls_cert, tls_key, tls_ca;
  std::optional<std::string> meta, etcd_ca, etcd_cert, etcd_key, etcd_user, etcd_password;
  bool bootstrap = false;
};
[[nodiscard]] result<void> apply_overrides(node_config& c, const config_overrides& o);

/// Checks the finished config: required fields present, values in range.
[[nodiscard]] result<void> validate(const node_config& c);

}  // namespace shardd
