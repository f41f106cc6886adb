#include "node/startup_checks.hpp"

#include "shardd/partition_map.hpp"
#include "storage/store.hpp"

#include <netdb.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>

namespace shardd {

namespace {

struct bio_free {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct x509_free {
  void operator()(X509* x) const { X509_free(x); }
};
struct pkey_free {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct store_free {
  void operator()(X509_STORE* s) const { X509_STORE_free(s); }
};
struct store_ctx_free {
  void operator()(X509_STORE_CTX* c) const { X509_STORE_CTX_free(c); }
};
struct stack_free {
  void operator()(STACK_OF(X509) * s) const { sk_X509_pop_free(s, X509_free); }
};
using bio_ptr = std::unique_ptr<BIO, bio_free>;
using x509_ptr = std::unique_ptr<X509, x509_free>;
using pkey_ptr = std::unique_ptr<EVP_PKEY, pkey_free>;

/// The last OpenSSL error as text (and the queue emptied).
std::string ssl_error() {
  unsigned long e = ERR_get_error();
  unsigned long last = e;
  while (e != 0) {
    last = e;
    e = ERR_get_error();
  }
  if (last == 0) return "no PEM data found";
  char buf[256];
  ERR_error_string_n(last, buf, sizeof buf);
  return buf;
}

bio_ptr open_file(const std::string& path, const std::string& field, std::vector<std::string>& problems) {
  bio_ptr b(BIO_new_file(path.c_str(), "r"));
  if (!b) {
    ERR_clear_error();
    problems.push_back(field + ": cannot read " + path + ": " + std::strerror(errno));
  }
  return b;
}

/// Every certificate in a PEM file, in order.
std::vector<x509_ptr> read_certs(const std::string& path, const std::string& field, std::vector<std::string>& problems) {
  std::vector<x509_ptr> out;
  auto b = open_file(path, field, problems);
  if (!b) return out;
  while (X509* x = PEM_read_bio_X509(b.get(), nullptr, nullptr, nullptr)) out.emplace_back(x);
  ERR_clear_error();  // the end of the file reads as an error
  if (out.empty()) problems.push_back(field + ": " + path + " holds no PEM certificate");
  return out;
}

std::string common_name(X509* x) {
  char buf[256];
  const int n = X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, buf, sizeof buf);
  return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
}

}  // namespace

namespace {

/// etcd's TLS files, when set: a CA, and a client certificate that its key belongs to.
void check_etcd_tls(const node_config& cfg, std::vector<std::string>& problems) {
  if (!cfg.etcd.ca.empty()) (void)read_certs(cfg.etcd.ca, "etcd.ca", problems);
  if (cfg.etcd.cert.empty()) return;
  auto chain = read_certs(cfg.etcd.cert, "etcd.cert", problems);
  pkey_ptr key;
  if (auto b = open_file(cfg.etcd.key, "etcd.key", problems)) {
    key.reset(PEM_read_bio_PrivateKey(b.get(), nullptr, nullptr, nullptr));
    if (!key) problems.push_back("etcd.key: " + cfg.etcd.key + " holds no PEM private key (" + ssl_error() + ")");
  }
  if (!chain.empty() && key && X509_check_private_key(chain.front().get(), key.get()) != 1) {
    ERR_clear_error();
    problems.push_back("etcd.key: " + cfg.etcd.key + " is not the private key of the certificate in " + cfg.etcd.cert);
  }
}

}  // namespace

std::vector<std::string> check_tls(const node_config& cfg) {
  std::vector<std::string> problems;
  check_etcd_tls(cfg, problems);
  auto chain = read_certs(cfg.tls.cert, "tls.cert", problems);
  auto cas = read_certs(cfg.tls.ca, "tls.ca", problems);
  pkey_ptr key;
  if (auto b = open_file(cfg.tls.key, "tls.key", problems)) {
    key.reset(PEM_read_bio_PrivateKey(b.get(), nullptr, nullptr, nullptr));
    if (!key) problems.push_back("tls.key: " + cfg.tls.key + " holds no PEM private key (" + ssl_error() + ")");
  }
  if (chain.empty()) return problems;
  X509* leaf = chain.front().get();
  if (key && X509_check_private_key(leaf, key.get()) != 1) {
    ERR_clear_error();
    problems.push_back("tls.key: " + cfg.tls.key + " is not the private key of the certificate in " + cfg.tls.cert);
  }
  const auto cn = common_name(leaf);
  if (cn != cfg.node_id)
    problems.push_back("tls.cert: its common name is '" + cn + "', not the node id '" + cfg.node_id +
                       "' (peers identify a node by its certificate's CN)");
  if (X509_cmp_current_time(X509_get0_notAfter(leaf)) < 0) problems.push_back("tls.cert: " + cfg.tls.cert + " has expired");
  if (X509_cmp_current_time(X509_get0_notBefore(leaf)) > 0) problems.push_back("tls.cert: " + cfg.tls.cert + " is not valid yet");
  if (cas.empty()) return problems;
  // The CA must have signed the certificate (through the intermediates in the cert file, if
  // any): peers verify it against that CA.
  std::unique_ptr<X509_STORE, store_free> store(X509_STORE_new());
  for (auto& ca : cas) X509_STORE_add_cert(store.get(), ca.get());
  std::unique_ptr<STACK_OF(X509), stack_free> rest(sk_X509_new_null());
  for (std::size_t i = 1; i < chain.size(); ++i) {
    X509_up_ref(chain[i].get());
    sk_X509_push(rest.get(), chain[i].get());
  }
  std::unique_ptr<X509_STORE_CTX, store_ctx_free> ctx(X509_STORE_CTX_new());
  if (X509_STORE_CTX_init(ctx.get(), store.get(), leaf, rest.get()) == 1) {
    if (X509_verify_cert(ctx.get()) != 1)
      problems.push_back("tls.ca: " + cfg.tls.ca + " does not verify the certificate in " + cfg.tls.cert + ": " +
                         X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx.get())));
  }
  ERR_clear_error();
  return problems;
}

std::vector<std::string> check_data_dir(const node_config& cfg) {
  std::vector<std::string> problems;
  std::error_code ec;
  const std::filesystem::path dir(cfg.data_dir);
  if (std::filesystem::exists(dir, ec) && !std::filesystem::is_directory(dir, ec)) {
    problems.push_back("data_dir: " + cfg.data_dir + " is not a directory");
    return problems;
  }
  auto stored = storage::store::peek_meta((dir / "db").string(), storage::meta_partition_map);
  if (!stored) {
    problems.push_back("data_dir: " + stored.error().detail);
    return problems;
  }
  if (!*stored) {
    if (!cfg.bootstrap && !cfg.join && !cfg.etcd.enabled())
      problems.push_back("cluster.bootstrap: the data dir " + cfg.data_dir +
                         " holds no cluster; start with --bootstrap to found a new one, or with --join HOST:PORT to join one");
    return problems;
  }
  auto m = from_json(**stored);
  if (!m) {
    problems.push_back("data_dir: the stored partition map is unreadable: " + m.error().detail);
    return problems;
  }
  if (m->cluster_id != cfg.cluster_id)
    problems.push_back("cluster_id: the data dir belongs to cluster '" + m->cluster_id + "', not '" + cfg.cluster_id + "'");
  else if (!m->find_node(cfg.node_id))
    problems.push_back("node_id: the data dir's map has no node '" + cfg.node_id + "'; was it started with another id?");
  return problems;
}

std::vector<std::string> check_listen(const node_config& cfg) {
  std::vector<std::string> problems;
  auto try_bind = [&](const host_port& hp, const std::string& field) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    addrinfo* res = nullptr;
    const auto port = std::to_string(hp.port);
    if (int rc = ::getaddrinfo(hp.host.c_str(), port.c_str(), &hints, &res); rc != 0) {
      problems.push_back(field + ": cannot resolve " + hp.host + ": " + ::gai_strerror(rc));
      return;
    }
    std::string why;
    bool bound = false;
    for (auto* a = res; a && !bound; a = a->ai_next) {
      const int fd = ::socket(a->ai_family, a->ai_socktype, a->ai_protocol);
      if (fd < 0) {
        why = std::strerror(errno);
        continue;
      }
      int one = 1;
      ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
      if (::bind(fd, a->ai_addr, a->ai_addrlen) == 0)
        bound = true;
      else
        why = std::strerror(errno);
      ::close(fd);
    }
    ::freeaddrinfo(res);
    if (!bound) problems.push_back(field + ": cannot bind " + hp.to_string() + ": " + why);
  };
  try_bind(cfg.rest_listen, "rest.listen");
  try_bind(cfg.peer_listen, "peer.listen");
  return problems;
}

}  // namespace shardd
