#!/usr/bin/env python3
"""One markdown table row from a `shrink prune` JSON report and the `shrink eval --json`
results of the pruned model (scripts/prune_table.sh): method, target and achieved sparsity of
the block Linears, mean relative output error per layer on the calibration inputs, then
PPL / KLD / top-1 for every evaluation text, and the pruning time."""
import json, sys

j = json.load(open(sys.argv[1]))
label = j["method"] + (" (global)" if j.get("global") else "")
err = f'{j["mean_output_rel_err"]:.4f}' if "mean_output_rel_err" in j else "-"
row = f'| {label} | {j["sparsity"]} | {100 * j["achieved_sparsity"]:.2f}% | {err} |'
for path in sys.argv[2:]:
    e = json.load(open(path))
    row += f' {e["ppl"]:.4f} ± {e["ppl_err"]:.4f} | {e["kld"]:.5f} ± {e["kld_err"]:.5f} | {100 * e["top1_agreement"]:.2f}% |'
print(row + f' {j["seconds"]:.1f} s |')
