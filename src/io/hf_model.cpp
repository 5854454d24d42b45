// Hugging Face directory <-> ModelFile (placeholder).
#include "core/error.h"
#include "io/model_file.h"

namespace shrink {
ModelFile load_hf(const std::string& dir) { fail(dir, ": Hugging Face directories are not supported yet"); }
void save_hf(const ModelFile&, const std::string& dir, DType) { fail(dir, ": HF writing is not supported yet"); }
}  // namespace shrink
