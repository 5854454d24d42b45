// shrink: compress trained neural networks and measure what it bought and cost.
// main() only dispatches to the subcommands in src/cli/*.cpp.
#include <cstdio>
#include <exception>

#include "cli/commands.h"
#include "core/error.h"

int main(int argc, char** argv) {
  CLI::App app{"shrink — compress LLMs (quantize, prune, distill, factorize) and measure the result.\n"
               "MODEL is a Hugging Face directory, a GGUF file or a llama2.c .bin."};
  app.require_subcommand(1);
  app.set_version_flag("--version", "shrink 0.1.0");
  shrink::cli::add_inspect(app);
  shrink::cli::add_run(app);
  shrink::cli::add_eval(app);
  shrink::cli::add_bench(app);
  shrink::cli::add_init(app);
  shrink::cli::add_convert(app);
  shrink::cli::add_quantize(app);
  shrink::cli::add_imatrix(app);
  shrink::cli::add_prune(app);
  shrink::cli::add_factorize(app);
  shrink::cli::add_train(app);
  shrink::cli::add_distill(app);
  shrink::cli::add_finetune(app);
  shrink::cli::add_qat(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const shrink::Error& e) {
    std::fprintf(stderr, "shrink: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "shrink: internal error: %s\n", e.what());
    return 2;
  }
  return 0;
}
