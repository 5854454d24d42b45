// The subcommands of the shrink binary, one file each; main.cpp dispatches.
#pragma once
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <string>

#include "eval/perplexity.h"
#include "io/model_file.h"
#include "model/transformer.h"

namespace shrink::cli {

void add_inspect(CLI::App& app);
void add_run(CLI::App& app);
void add_eval(CLI::App& app);
void add_bench(CLI::App& app);
void add_init(CLI::App& app);
void add_convert(CLI::App& app);
void add_quantize(CLI::App& app);
void add_imatrix(CLI::App& app);
void add_prune(CLI::App& app);
void add_factorize(CLI::App& app);
void add_train(CLI::App& app);
void add_distill(CLI::App& app);
void add_finetune(CLI::App& app);
void add_qat(CLI::App& app);

// Options every command that reads a model accepts.
struct ModelArgs {
  std::string model;
  std::string tokenizer;
  int threads = 0;  // 0 = all cores
};
void add_model_args(CLI::App* cmd, ModelArgs& a, bool model_positional = true);
// Applies --threads and loads the model (with tokenizer if `need_tokenizer`).
ModelFile open_model(const ModelArgs& a, bool need_tokenizer);
// Progress line on stderr, overwritten in place when stderr is a terminal.
void progress_line(const std::string& text, bool final = false);
std::string human_bytes(double bytes);
bool is_gguf_path(const std::string& p);
// Bytes of a file, or of every file in a directory.
int64_t path_bytes(const std::string& p);
// Perplexity, KLD and top-1 of `model` against `base` on the text file `text`
// (llama-perplexity's protocol, eval/perplexity.h), printed and as report JSON.
nlohmann::json evaluate_vs_base(Transformer& model, Transformer& base, const ModelFile& f, const std::string& text,
                                eval::PerplexityOptions po);

}  // namespace shrink::cli
