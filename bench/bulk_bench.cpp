// Bulk load benchmark: sends NDJSON bulks of 100-byte documents over HTTPS keep-alive from
// several connections and prints records/s. Not a test: it prints figures.
//   bulk_bench PORT CA_FILE INDEX [RECORDS] [BATCH] [CONNECTIONS]
// The token comes from SHARDD_TOKEN. Optional: BENCH_DOC_BYTES (document size, default 100),
// BENCH_DOC_STYLE (`pad`: one document padded with 'x', the default; `words`: 4,096 different
// documents of words and numbers, which compress about as ordinary JSON does, 1.8x with LZ4),
// BENCH_ROUTING (a routing value for every record), BENCH_PREFIX (key prefix, default b).

#include "net/https_client.hpp"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
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
  std::vector<std::string> docs{R"({"name":"benchmark record","value":12345,"tags":["a","b","c"],"pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxx"})"};
  std::size_t want = docs[0].size();
  if (const char* size = std::getenv("BENCH_DOC_BYTES")) {
    want = std::strtoul(size, nullptr, 10);
    if (want > 20) docs[0] = R"({"pad":")" + std::string(want - 10, 'x') + "\"}";
  }
  const char* style = std::getenv("BENCH_DOC_STYLE");
  if (style && std::string(style) == "words") {
    // Different documents of the same size, from a fixed seed: every run loads the same data.
    static const char* const words[] = {"alpha",  "bravo",   "charlie", "delta",    "echo",     "foxtrot", "golf",
                                        "hotel",  "india",   "juliet",  "kilo",     "lima",     "mike",    "november",
                                        "oscar",  "papa",    "quebec",  "romeo",    "sierra",   "tango",   "uniform",
                                        "victor", "whiskey", "xray",    "yankee",   "zulu",     "order",   "customer",
                                        "shipped", "pending", "berlin", "paris",    "tokyo",    "invoice", "total",
                                        "price",  "quantity", "warehouse"};
    constexpr std::size_t word_count = sizeof(words) / sizeof(words[0]);
    std::mt19937_64 rng(20261205);
    docs.assign(4096, std::string());
    for (auto& d : docs) {
      d = R"({"id":)" + std::to_string(rng() % 1000000000) + R"(,"text":")";
      const std::size_t body = want > 40 ? want - 2 : 38;
      while (d.size() < body) {
        d += words[rng() % word_count];
        d += rng() % 4 == 0 ? " " + std::to_string(rng() % 100000) + " " : " ";
      }
      d.resize(body);
      d += "\"}";
    }
  } else if (style && std::string(style) != "pad") {
    std::fprintf(stderr, "BENCH_DOC_STYLE must be pad or words\n");
    return 2;
  }
  const std::string routing = std::getenv("BENCH_ROUTING") ? std::getenv("BENCH_ROUTING") : "";
  const std::string prefix = std::getenv("BENCH_PREFIX") ? std::getenv("BENCH_PREFIX") : "b";
  std::atomic<long> next{0}, sent{0}, errors{0};
  const auto build = [&](long first, long n) {
    std::string body;
    body.reserve(static_cast<std::size_t>(n) * (docs[0].size() + 48));
    for (long i = first; i < first + n; ++i) {
      body.append(R"({"op":"put","key":")").append(prefix).append(std::to_string(i)).append("\"");
      if (!routing.empty()) body.append(R"(,"routing":")").append(routing).append("\"");
      body.append(R"(,"doc":)").append(docs[static_cast<std::size_t>(i) % docs.size()]).append("}\n");
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
              sent.load(), secs, static_cast<double>(sent.load()) / secs, batch, conns, docs[0].size(), errors.load());
  return errors ? 1 : 0;
}
