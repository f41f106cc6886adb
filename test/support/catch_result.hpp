#pragma once
// Lets Catch2 print shardd::result values: Boost's operator<< for result is unconstrained,
// so Catch2 would pick it for value types that have no operator<< and fail to compile.

#include "shardd/error.hpp"

#include <catch2/catch.hpp>

namespace Catch {

template <class T>
struct StringMaker<boost::system::result<T, shardd::error>> {
  static std::string convert(const boost::system::result<T, shardd::error>& r) {
    return r ? std::string("ok") : "error(" + std::string(shardd::to_string(r.error().code)) + "): " + r.error().detail;
  }
};

}  // namespace Catch
