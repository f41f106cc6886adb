#include "shardd/sha256.hpp"

#include "support/catch_result.hpp"

#include <string>

using namespace shardd;

// Vectors from FIPS 180-2 appendix B and the NIST CSRC examples.
TEST_CASE("sha256 matches the published test vectors") {
  CHECK(to_hex(sha256("")) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(to_hex(sha256("abc")) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(to_hex(sha256("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")) ==
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  CHECK(to_hex(sha256("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopq"
                      "klmnopqrlmnopqrsmnopqrstnopqrstu")) ==
        "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
  CHECK(to_hex(sha256(std::string(1000000, 'a'))) ==
        "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST_CASE("the incremental builder gives the same digest as the one-shot function") {
  std::string msg = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
  for (std::size_t cut = 0; cut <= msg.size(); cut += 7) {
    sha256_builder b;
    b.update(std::string_view(msg).substr(0, cut)).update(std::string_view(msg).substr(cut));
    CHECK(b.finish() == sha256(msg));
  }
}

TEST_CASE("a token is the first eight digest bytes, big-endian") {
  CHECK(token_of("abc") == 0xba7816bf8f01cfeaULL);
  CHECK(token_of("") == 0xe3b0c44298fc1c14ULL);
}
