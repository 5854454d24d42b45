// The Hugging Face safetensors format, low level: reading files (by mmap,
// tensors are views into the mapping), sharded sets (model.safetensors.index.json)
// and writing them atomically; plus the two HF weight-layout conventions that
// the HF model reader/writer (hf_model.cpp) needs and the tests check directly.
//
// File layout: u64 little-endian header length N, N bytes of JSON
//   {name: {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {str: str}}
// then the data; offsets are relative to the end of the header.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace shrink {

// Tensors read from one file or a sharded set. Tensors keep their mapping alive.
struct SafetensorsData {
  std::map<std::string, Tensor> tensors;
  std::map<std::string, std::string> metadata;  // "__metadata__" (of the first shard)
  std::vector<std::string> files;               // the files that were read
};

// One .safetensors file. Every size and offset is checked; a malformed file
// throws shrink::Error naming the file and the problem.
SafetensorsData read_safetensors(const std::string& path);
// A sharded set described by an index json {"weight_map": {name: file}}; shard
// files are resolved relative to the index's directory.
SafetensorsData read_safetensors_index(const std::string& index_path);
// The weights of a HF model directory: model.safetensors, else
// model.safetensors.index.json, else the directory's only *.safetensors file.
SafetensorsData read_safetensors_dir(const std::string& dir);

// safetensors dtype names ("F32", "BF16", ...) <-> DType; throws on unsupported names.
DType safetensors_dtype(const std::string& name, const std::string& source);
std::string safetensors_dtype_name(DType t);

// A tensor to be written, produced on demand so that a writer never needs all
// converted tensors in memory at once. get() must return dtype and shape as declared.
struct TensorSource {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  std::function<Tensor()> get;
};
TensorSource source_of(const std::string& name, const Tensor& t);  // an existing tensor as is

// Writes one file atomically. Tensors are laid out by element size (largest
// first) so every tensor is aligned to its element size, as the reference writer does.
void write_safetensors(const std::string& path, const std::vector<TensorSource>& tensors,
                       const std::map<std::string, std::string>& metadata = {});
void write_safetensors(const std::string& path, const std::map<std::string, Tensor>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

constexpr uint64_t kDefaultShardBytes = uint64_t(4) << 30;
// Writes dir/<stem>.safetensors, or, when the data exceed max_shard_bytes,
// dir/<stem>-00001-of-0000N.safetensors ... plus dir/<stem>.safetensors.index.json.
// A stale single file or index from an earlier write is removed so a reader
// never picks up the old weights. Returns the file names written (index last).
std::vector<std::string> write_safetensors_model(const std::string& dir, const std::vector<TensorSource>& tensors,
                                                 const std::map<std::string, std::string>& metadata = {},
                                                 uint64_t max_shard_bytes = kDefaultShardBytes,
                                                 const std::string& stem = "model");

// HF Llama checkpoints store q_proj/k_proj rows permuted for rotate-half RoPE;
// Meta, llama2.c and GGUF use interleaved pairs. Within each head of head_dim
// rows (half = head_dim/2): hf[j*half + i] = interleaved[2*i + j], j in {0,1}.
// Both return a new tensor of the same dtype and shape; the first dimension must
// be n_heads * head_dim (a weight {rows, cols} or a bias {rows}). Defined in hf_model.cpp.
Tensor hf_permute_qk(const Tensor& interleaved, int n_heads);  // what HF's conversion script does
Tensor hf_unpermute_qk(const Tensor& hf, int n_heads);         // its inverse
// A 2-D transpose (GPT-2's Conv1D weights are stored {in, out}). Defined in hf_model.cpp.
Tensor transpose_2d(const Tensor& t);

}  // namespace shrink
