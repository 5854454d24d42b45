// shrink bench MODEL — placeholder until the bench command lands.
#include "cli/commands.h"
#include "core/error.h"
namespace shrink::cli {
void add_bench(CLI::App& app) {
  auto* cmd = app.add_subcommand("bench", "Prefill/decode speed, latency, peak memory");
  cmd->callback([] { fail("bench is not implemented yet"); });
}
}  // namespace shrink::cli
