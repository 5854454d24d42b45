#!/usr/bin/env python3
"""Writes tests/data/ggml_quant/: inputs and llama.cpp's own quantized output for
the ggml block types shrink writes, so that tests/quant_blocks_test.cpp can check
shrink's quantizers byte for byte without llama.cpp installed.

The reference is libggml-base.so from the node-llama-cpp npm package (llama.cpp
0ad4a86; see scripts/check_llamacpp.sh for how it is installed), called through
ctypes: ggml_quantize_chunk(type, src, dst, 0, nrows, n_per_row, imatrix) with and
without an importance matrix, and ggml_fp32_to_fp16_row for the f16 rounding that
every block scale goes through. Standard library only (no numpy).

Usage: scripts/make_ggml_quant_fixtures.py [LIBDIR]
  LIBDIR defaults to /tmp/llamacheck/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64

Files (all little-endian):
  input.f32        ROWS x N_PER_ROW float32, one row per test distribution
  imatrix.f32      N_PER_ROW float32 per-column importance (what llama-imatrix stores)
  <type>.bin       ggml_quantize_chunk output without imatrix (ROWS rows)
  <type>.imat.bin  the same with the imatrix
  f16_in.f32 / f16_out.u16   float32 values and ggml's f16 conversion of them
  manifest.txt     rows, n_per_row, the llama.cpp commit, the types
"""
import ctypes
import glob
import math
import os
import random
import struct
import sys

N_PER_ROW = 512
# name -> (ggml type id, values per block, bytes per block); ids from ggml.h enum ggml_type.
TYPES = {
    "q4_0": (2, 32, 18),
    "q4_1": (3, 32, 20),
    "q5_0": (6, 32, 22),
    "q5_1": (7, 32, 24),
    "q8_0": (8, 32, 34),
    "q2_k": (10, 256, 84),
    "q3_k": (11, 256, 110),
    "q4_k": (12, 256, 144),
    "q5_k": (13, 256, 176),
    "q6_k": (14, 256, 210),
    "iq4_nl": (20, 32, 18),
}


def f32(v):
    """Rounds a Python float to float32, so that inputs are exactly what is stored."""
    return struct.unpack("<f", struct.pack("<f", v))[0]


def make_rows(rng):
    """One row per distribution that stresses a different branch of the searches."""
    n = N_PER_ROW
    g = lambda s=1.0, m=0.0: [rng.gauss(m, s) for _ in range(n)]
    rows = []
    rows.append(g())  # plain gaussian
    r = g()
    for i in rng.sample(range(n), 8):
        r[i] *= 20  # outliers, as in real LLM weights
    rows.append(r)
    rows.append([0.02 * rng.expovariate(1.0) * rng.choice((-1, 1)) for _ in range(n)])  # laplace, weight-sized
    rows.append([rng.uniform(-1, 1) for _ in range(n)])
    rows.append([abs(v) + 0.1 for v in g()])  # all positive: min > 0 branches
    rows.append([-abs(v) - 0.1 for v in g()])  # all negative
    rows.append([0.0] * 256 + g()[:256])  # all-zero super-block and sub-blocks
    rows.append([(0.5 if (i // 32) % 2 == 0 else -0.25) for i in range(n)])  # constant blocks
    rows.append(g(1e-6))  # tiny: f16 subnormal scales
    rows.append(g(100.0))  # large
    rows.append([rng.gauss(0, 1) if rng.random() < 0.05 else 0.0 for _ in range(n)])  # sparse
    rows.append([0.125 * rng.randint(-3, 3) for _ in range(n)])  # on a grid: rounding ties
    rows.append([rng.gauss(0, 10 ** rng.uniform(-3, 1)) for _ in range(n)])  # mixed magnitudes
    scales = [10 ** rng.uniform(-3, 1) for _ in range(n // 16)]
    rows.append([rng.gauss(0.3, 1) * scales[i // 16] for i in range(n)])  # per-sub-block scale, shifted mean
    return [[f32(v) for v in row] for row in rows]


def make_imatrix(rng):
    # Per-column mean squared activations: log-normal, with a few dead columns.
    w = [math.exp(rng.gauss(0, 1.5)) for _ in range(N_PER_ROW)]
    for i in (5, 77, 300):
        w[i] = 0.0
    return [f32(v) for v in w]


def f16_probe_values(rng):
    """Values around every f16 rounding hazard: halfway points, subnormals, overflow."""
    vals = [0.0, -0.0, 1.0, -1.0, 65504.0, 65519.0, 65520.0, 1e9, -1e9, 5.960464477539063e-08,
            2.98023223876953125e-08, 2.98023223876953126e-08, 6.103515625e-05, 6.0975552e-05]
    for e in range(-26, 17):
        for m in range(0, 2048, 97):
            base = (1 + m / 2048.0) * 2.0 ** e
            vals += [base, -base, base * (1 + 2 ** -11), base * (1 + 2 ** -12), base * (1 - 2 ** -12)]
    while len(vals) < 2048:
        vals.append(rng.gauss(0, 1) * 10 ** rng.uniform(-8, 5))
    return [f32(v) for v in vals[:2048]]


def load_ggml(libdir):
    for n in ["libggml-base.so"] + glob.glob(os.path.join(libdir, "libggml.v*.so")):
        ctypes.CDLL(os.path.join(libdir, os.path.basename(n)), mode=ctypes.RTLD_GLOBAL)
    base = ctypes.CDLL(os.path.join(libdir, "libggml-base.so"), mode=ctypes.RTLD_GLOBAL)
    base.ggml_quantize_chunk.restype = ctypes.c_size_t
    base.ggml_quantize_chunk.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64,
                                         ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p]
    base.ggml_quantize_requires_imatrix.restype = ctypes.c_bool
    base.ggml_fp32_to_fp16_row.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
    commit = "unknown"
    try:
        f = ctypes.CDLL(os.path.join(libdir, "libllama-common.so"))._Z12llama_commitv
        f.restype = ctypes.c_char_p
        commit = f().decode()
    except (OSError, AttributeError):
        pass
    return base, commit


def main():
    libdir = sys.argv[1] if len(sys.argv) > 1 else \
        "/tmp/llamacheck/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64"
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "ggml_quant")
    os.makedirs(out, exist_ok=True)
    base, commit = load_ggml(libdir)
    rng = random.Random(20240613)
    rows = make_rows(rng)
    imat = make_imatrix(rng)
    nrows = len(rows)
    src = (ctypes.c_float * (nrows * N_PER_ROW))(*[v for r in rows for v in r])
    qw = (ctypes.c_float * N_PER_ROW)(*imat)
    with open(os.path.join(out, "input.f32"), "wb") as fh:
        fh.write(bytes(src))
    with open(os.path.join(out, "imatrix.f32"), "wb") as fh:
        fh.write(bytes(qw))
    for name, (tid, be, bb) in TYPES.items():
        assert not base.ggml_quantize_requires_imatrix(tid), name
        size = nrows * N_PER_ROW // be * bb
        for suffix, w in ((".bin", None), (".imat.bin", qw)):
            dst = (ctypes.c_uint8 * size)()
            got = base.ggml_quantize_chunk(tid, src, dst, 0, nrows, N_PER_ROW, w)
            assert got == size, (name, got, size)
            with open(os.path.join(out, name + suffix), "wb") as fh:
                fh.write(bytes(dst))
    probe = f16_probe_values(rng)
    pin = (ctypes.c_float * len(probe))(*probe)
    pout = (ctypes.c_uint16 * len(probe))()
    base.ggml_fp32_to_fp16_row(pin, pout, len(probe))
    with open(os.path.join(out, "f16_in.f32"), "wb") as fh:
        fh.write(bytes(pin))
    with open(os.path.join(out, "f16_out.u16"), "wb") as fh:
        fh.write(bytes(pout))
    with open(os.path.join(out, "manifest.txt"), "w") as fh:
        fh.write("# written by scripts/make_ggml_quant_fixtures.py from llama.cpp's libggml-base.so\n")
        fh.write(f"llama.cpp commit: {commit}\nrows: {nrows}\nn_per_row: {N_PER_ROW}\n")
        fh.write("types: " + " ".join(TYPES) + "\n")
    print(f"wrote {out} (llama.cpp {commit}, {nrows} rows of {N_PER_ROW})")


if __name__ == "__main__":
    main()
