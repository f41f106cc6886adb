// Bulk load benchmark: sends NDJSON bulks of 100-byte documents over HTTPS keep-alive from
// several connections and prints records/s. Not a test: it prints figures.
//   bulk_bench PORT CA_FILE INDEX [RECORDS] [BATCH] [CONNECTIONS]
// The token comes from SHARDD_TOKEN. Optional: BENCH_DOC_BYTES (document size, default 100),
// BENCH_ROUTING (a routing value for every record), BENCH_PREFIX (key prefix, default b).

#include "net/https_client.hpp"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s PORT CA_FILE INDEX [RECORDS] [BATCH] [CONNECTIONS]\n", argv[0]);
    return 2;
  }
  const auto port = static_cast<std::uint16_t>(std::atoi(argv[1]));
  const std::string ca = argv[2], index = argv[3];
  const long records = argc > 4 ? std::atol(argv[4]) : 1000000;
  const long batch = argc > 5 ? std::atol(argv[5]) : 10000;
  const int conns = argc > 6 ? std::atoi(argv[6]) : 2;
  const char* token = std::getenv("SHARDD_TOKEN");
  if (!token) {
    std::fprintf(stderr, "SHARDD_TOKEN is not set\n");
    return 2;
  }
  // A 100-byte document (as stored, compact JSON), or one padded to BENCH_DOC_BYTES.
  std::string doc = R"({"name":"benchmark record","value":12345,"tags":["a","b","c"],"pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxx"})";
  if (const char* size = std::getenv("BENCH_DOC_BYTES")) {
    const auto want = std::strtoul(size, nullptr, 10);
    if (want > 20) doc = R"({"pad":")" + std::string(want - 10, 'x') + "\"}";
  }
  const std::string routing = std::getenv("BENCH_ROUTING") ? std::getenv("BENCH_ROUTING") : "";
  const std::string prefix = std::getenv("BENCH_PREFIX") ? std::getenv("BENCH_PREFIX") : "b";
  std::atomic<long> next{0}, sent{0}, errors{0};
  const auto build = [&](long first, long n) {
    std::string body;
    body.reserve(static_cast<std::size_t>(n) * (doc.size() + 48));
    for (long i = first; i < first + n; ++i) {
      body.append(R"({"op":"put","key":")").append(prefix).append(std::to_string(i)).append("\"");
      if (!routing.empty()) body.append(R"(,"routing":")").append(routing).append("\"");
      body.append(R"(,"doc":)").append(doc).append("}\n");
    }
    return body;
  };
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  for (int c = 0; c < conns; ++c)
    threads.emplace_back([&] {
      shardd::net::https_client http("127.0.0.1", port, ca, token);
      for (;;) {
        long first = next.fetch_add(batch);
        if (first >= records) break;
        long n = std::min(batch, records - first);
        auto body = build(first, n);
        auto r = http.post("/v1/indexes/" + index + "/bulk", body);
        if (r.status != 200 || r.body.find("\"error_count\":0") == std::string::npos) {
          ++errors;
          std::fprintf(stderr, "bulk failed: %u %s\n", r.status, r.body.substr(0, 300).c_str());
        } else {
          sent += n;
        }
      }
    });
  for (auto& t : threads) t.join();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("RESULT records=%ld seconds=%.2f records_per_s=%.0f batch=%ld connections=%d doc_bytes=%zu errors=%ld\n",
              sent.load(), secs, static_cast<double>(sent.load()) / secs, batch, conns, doc.size(), errors.load());
  return errors ? 1 : 0;
}
