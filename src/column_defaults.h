// Columns by name: a field absent from a message (not null: absent) leaves its column's DEFAULT.
// COPY text cannot say DEFAULT (PostgreSQL 16's COPY … DEFAULT is not in 15), so the mappers
// end such a target's rows with one more field: \N when no defaulted column lacked its field,
// else one '0' or '1' per column with a DEFAULT, in the mapping's order; write_plan.cpp writes
// the DEFAULT expression where it finds a '1'. Pure.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "config.h"

namespace rmq2pg {

class AbsentFields {
  public:
    AbsentFields() = default;
    explicit AbsentFields(const std::vector<ColumnMapping>& columns) {
        for (const auto& c : columns)
            slot_.push_back(c.column_default.empty() ? -1 : static_cast<int>(count_++));
    }
    // Whether the rows carry the field at all: some mapped column has a DEFAULT.
    bool used() const { return count_ > 0; }
    void start_row() {
        if (count_ == 0)
            return;
        bits_.assign(count_, '0');
        any_ = false;
    }
    // Column `i` (of the mapping) had no field: true when its DEFAULT takes it (the row then
    // holds \N there and the marker says so).
    bool mark(std::size_t i) {
        if (i >= slot_.size() || slot_[i] < 0)
            return false;
        bits_[static_cast<std::size_t>(slot_[i])] = '1';
        any_ = true;
        return true;
    }
    void append(std::string& out) const {
        if (count_ == 0)
            return;
        out += '\t';
        out += any_ ? bits_ : std::string("\\N");
    }

  private:
    std::vector<int> slot_;  // per mapped column: its place among those with a DEFAULT, or -1
    std::size_t count_ = 0;
    std::string bits_;
    bool any_ = false;
};

}  // namespace rmq2pg
