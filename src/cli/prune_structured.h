// `shrink prune --structured heads|channels|layers`: the options and the run,
// kept apart from the unstructured prune command (prune.cpp) that parses them.
#pragma once
#include <cstdint>
#include <string>

#include <CLI/CLI.hpp>

#include "cli/commands.h"

namespace shrink::cli {

struct StructuredArgs {
  std::string structure, importance, calib_file, out, report;
  double ratio = -1;
  int remove_layers = -1;
  int multiple_of = 1;
  bool global = false;
  int64_t calib_tokens = 32768;
  int seq_len = 512;
};

void add_structured_options(CLI::App* cmd, StructuredArgs& a);
void run_structured_prune(const ModelArgs& m, const StructuredArgs& a);

}  // namespace shrink::cli
