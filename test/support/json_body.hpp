#pragma once
// Parses a client response body as JSON, printing the body if a check fails.

#include "net/https_client.hpp"

#include <boost/json/parse.hpp>
#include <catch2/catch.hpp>

#include <string>

namespace shardd::test {

inline boost::json::value body(const net::client_response& r) {
  INFO(r.body);
  return boost::json::parse(r.body);
}

inline std::string detail(const net::client_response& r) { return std::string(body(r).at("detail").as_string()); }

}  // namespace shardd::test
