// bench/lib/rows.hpp — what every benchmark returns for printing: rows of one
// common shape, grouped in sections, and the one renderer that prints them as
// a text table or as JSON lines (render.cpp).
//
// A row: the benchmark, its case columns (size, object, threads, ...: each
// with its JSON name and value and its text header and cell), the peer and
// the peer's configuration in words, median and p99 (ns; null in JSON when
// skipped), the ratio, the target and whether it was met, and a note.
//
// JSON lines: {"bench":..., <case columns>, "median_ns"|"median_ms", "p99_..",
// "ratio", <extra columns>, "skipped", "reason" (when skipped), "config",
// "target" and "met" (rows with a target)}; which of skipped/config a
// benchmark prints is part of its contract (docs/bench.md), so the row says.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace numacma::bench {

using Json = nlohmann::ordered_json;

/** One column of a row: `key`/`value` in JSON (no key: text only), `header`/
 *  `text` in the text table (no header: JSON only). */
struct Column {
  std::string key;
  Json value;
  std::string header;
  std::string text;
};
/** A column printed the same way in JSON and text (the key is the header). */
Column col(const std::string& key, const Json& value, const std::string& text);
/** A JSON-only column. */
Column json_col(const std::string& key, const Json& value);
/** A text-only column. */
Column text_col(const std::string& header, const std::string& text);

/** When a row's JSON has "skipped": always, only when true, or never. */
enum class SkippedField { always, when_skipped, never };

struct Row {
  std::string bench;             ///< JSON "bench"
  std::vector<Column> cases;     ///< the case, before the timings (peer, size, ...)
  std::string peer;              ///< who is measured (the key of the configurations list)
  std::string config;            ///< the peer's configuration, in words
  bool skipped = false;
  std::string reason;            ///< why skipped
  double median_ns = 0, p99_ns = 0;
  std::optional<double> ratio;   ///< none: the row has no ratio (null in JSON when skipped)
  std::vector<Column> extra;     ///< after the timings
  std::string target;            ///< e.g. "<= 1.5x", "< 1 ms"; empty: none for this row
  bool met = false;              ///< the target was met (when there is one)
  std::string note;              ///< text only: the note column
  SkippedField skipped_field = SkippedField::always;
  bool json_config = true;       ///< JSON has "config"
};

/** A row's peer, configuration, skip and timings from a benchmark's result
 *  `x` (any type with those members: peer, config, skipped, reason,
 *  median_ns, p99_ns, ratio). */
template <class Result>
void take_timings(Row& w, const std::string& peer, const Result& x) {
  w.peer = peer;
  w.config = x.config;
  w.skipped = x.skipped;
  w.reason = x.reason;
  w.median_ns = x.median_ns;
  w.p99_ns = x.p99_ns;
  w.ratio = x.ratio;
}

/** How a section prints its timings. */
enum class Unit { ns, us, ms };

/** A table of rows of one shape, with the text around it. */
struct Section {
  std::vector<std::string> intro;   ///< text lines before the table (each ends in '\n' when printed)
  /** Text: "<configurations_title>:" then each peer's configuration (its last
   *  row's) above the table; empty title: no list. */
  std::string configurations_title;
  std::vector<Row> rows;
  std::vector<std::string> outro;   ///< text lines after the table
  bool json = true;                 ///< the rows are JSON lines (false: a text-only summary)
  bool table = true;                ///< the rows are a text table (false: JSON only; intro/outro still print)
  bool timings = true;              ///< median/p99 columns (false: a summary of ratios)
  Unit text_unit = Unit::ns;        ///< "median ns" | "median us" | "median ms"
  Unit json_unit = Unit::ns;        ///< "median_ns" | "median_ms"
  double json_quantum = 0.1;        ///< JSON timings rounded to this (in json_unit)
  const char* ratio_header = "ratio";
};

/** A benchmark's output: its sections in order (text: separated by a blank line). */
struct Output {
  std::vector<Section> sections;
};

/** The text: each section's intro, configurations, table and outro. */
std::string render_text(const Output& out);
/** One JSON object a line, the rows of every section with json set. */
std::string render_json(const Output& out);
/** One row's JSON object. */
Json row_json(const Row& r, const Section& s);

// Text helpers shared by the benchmarks' row builders.
/** printf(f, v). */
std::string num(double v, const char* f = "%.1f");
/** "4 KiB", "64 MiB", "1.5 GiB" (as the CLI's tables say sizes). */
std::string size_text(std::uint64_t bytes);
/** v rounded to a multiple of q (q = 0.1: one decimal). */
double round_to(double v, double q);
/** "<= 1.5x" / ">= 1.8x" of a ratio target. */
std::string ratio_target(const char* op, double ratio);

}  // namespace numacma::bench
