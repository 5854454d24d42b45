// shrink init — placeholder.
#include "cli/commands.h"
#include "core/error.h"
namespace shrink::cli {
void add_init(CLI::App& app) {
  auto* cmd = app.add_subcommand("init", "Create a random-weight model");
  cmd->callback([] { fail("init is not implemented yet"); });
}
}  // namespace shrink::cli
