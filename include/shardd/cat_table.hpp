#pragma once
// Text tables with Elasticsearch's _cat conventions: `?v` (header), `?h=` (columns, in order),
// `?s=` (sort), `?help` (what each column means) and `?bytes=` (unit of byte columns). One
// implementation for every `?format=text` answer of the REST API.

#include "shardd/error.hpp"

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace shardd {

/// How a column's cells sort and print: text sorts as text; numbers and bytes sort by value
/// (cells that are not numbers, such as "-", first); byte cells hold a byte count in decimal
/// and print in the unit `?bytes=` asks for.
enum class column_kind { text, number, bytes };

struct table_column {
  std::string name;
  column_kind kind = column_kind::text;
  std::string help;  ///< one line for `?help`
};

struct cat_table {
  std::vector<table_column> columns;
  std::vector<std::vector<std::string>> rows;  ///< one cell per column, in column order
};

/// The unit of byte columns: `human` (the default) picks b, kb, mb, gb or tb per cell with one
/// decimal at most ("1.5mb"); the others print whole units, rounded down ("1536kb").
enum class byte_unit { human, b, kb, mb, gb, tb };

/// The _cat query parameters of one request, as given (null: absent).
struct cat_query {
  const std::string* v = nullptr;
  const std::string* h = nullptr;
  const std::string* s = nullptr;
  const std::string* help = nullptr;
  const std::string* bytes = nullptr;
  bool any() const { return v || h || s || help || bytes; }
};

struct cat_sort_key {
  std::string column;
  bool descending = false;
};

struct cat_options {
  bool header = true;
  bool help = false;
  std::vector<std::string> columns;  ///< empty: every column, in the table's order
  std::vector<cat_sort_key> sort;    ///< in priority order
  byte_unit bytes = byte_unit::human;
};

/// Reads the parameters: `v` and `help` take no value, `true` or `false`; `h` a comma-separated
/// list of columns; `s` a comma-separated list of `column`, `column:asc` or `column:desc`;
/// `bytes` one of b, kb, mb, gb, tb, human. The error names the parameter and what it takes.
result<cat_options> parse_cat_options(const cat_query& q);

/// The table as text: the `?help` listing, or the chosen columns of the sorted rows with the
/// header unless turned off. An unknown column in `h` or `s` is an error that lists the valid
/// ones.
result<std::string> render_cat(const cat_table& t, const cat_options& o);

/// `bytes` in `unit` as the table prints it ("1.5mb", "1536kb", "12b").
std::string format_bytes(std::uint64_t bytes, byte_unit unit);

}  // namespace shardd
