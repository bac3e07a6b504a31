// Whether PostgreSQL takes values for their columns' types, asked of the server itself (its
// input functions are the last word: "abc" is text to the mapper and an error to numeric), for
// `rmq2pg suggest`. Nothing is written: each value is one SELECT of a cast.
#pragma once

#include <string>
#include <vector>

#include "pg_writer.h"

namespace rmq2pg {

struct ValueProbe {
    std::string type_name;  // as format_type() prints it (ColumnInfo::type_name)
    std::string text;       // the value as the row mapper renders it, COPY escaping undone
};

// For each probe, "" when `text::type_name` succeeds, else PostgreSQL's error (first line, with
// its SQLSTATE). Throws WriteError when the server cannot be reached.
std::vector<std::string> probe_values(const PgConnectionSettings& settings,
                                      const std::vector<ValueProbe>& probes);

}  // namespace rmq2pg
