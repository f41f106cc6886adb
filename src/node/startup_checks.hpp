#pragma once
// What `shardd --check-config` checks beyond the config's own validation: the TLS files (also
// checked at every start, before anything is opened), the data directory, the listen addresses.

#include "common/config.hpp"

#include <string>
#include <vector>

namespace shardd {

/// The TLS files: each parses, the key matches the certificate, the certificate's common name
/// is the node id, the CA signed it, and it is valid now. One line per problem, naming the
/// field (`tls.cert: ...`).
std::vector<std::string> check_tls(const node_config& cfg);

/// The data directory: when it holds a store, the store's map is of this cluster and names
/// this node; when it holds none, the node has `--bootstrap` or `--join`. Read-only: a store a
/// running node holds open can be checked.
std::vector<std::string> check_data_dir(const node_config& cfg);

/// The REST and peer listen addresses can be bound now (each is bound and let go).
std::vector<std::string> check_listen(const node_config& cfg);

}  // namespace shardd
