// Dead-letter reasons grouped: the x-rmq2pg-error text with its values, line numbers and lengths
// folded, so that one cause is one group whatever the message (`rmq2pg dead-letters list`, the
// status page's top reasons). Pure code.
#pragma once

#include <string>
#include <string_view>

namespace rmq2pg {

// `reason` with every quoted value replaced by "…" (redact_values), every stand-alone number
// ("line 12", "(64)") by "N" and the "(… bytes in all)" suffix dropped. Numbers inside words
// stay: SQLSTATEs (22P02) and table names (t_7) tell groups apart.
std::string reason_group(std::string_view reason);

// Whether `filter` (an operator's --reason) selects `reason`: a case-insensitive substring of
// the reason as written or of its group. An empty filter selects every reason.
bool reason_matches(std::string_view filter, std::string_view reason);

}  // namespace rmq2pg
