#!/usr/bin/env python3
"""One markdown table row from a `shrink quantize` JSON report (scripts/quant_table.sh,
scripts/actquant_table.sh): method, target, bits per weight, file size, then PPL / KLD / top-1
for every --ppl text, time and peak RSS. An optional second argument replaces the method label."""
import json, sys

j = json.load(open(sys.argv[1]))
label = sys.argv[2] if len(sys.argv) > 2 else j["method"]
size = f'{j["file_bytes"] / 2**20:.2f} MiB' if "file_bytes" in j else "-"
row = f'| {label} | {j["target"]} | {j["linear_bits_per_weight"]:.2f} | {size} |'
for e in j.get("evals", []):
    row += f' {e["ppl"]:.4f} ± {e["ppl_err"]:.4f} | {e["kld"]:.5f} ± {e["kld_err"]:.5f} | {100 * e["top1"]:.2f}% |'
print(row + f' {j["seconds"]:.1f} s | {j["peak_rss_bytes"] / 2**20:.0f} MiB |')
