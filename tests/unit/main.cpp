#define CATCH_CONFIG_MAIN
// GCC 12 with -fsanitize=address reports a false -Wmaybe-uninitialized inside libstdc++'s
// <regex>, which only the Catch implementation (this file) instantiates. Not popped: the
// warning is issued for code instantiated at the end of the file.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <catch2/catch.hpp>
