// Checks shrink's GGUF files against independent readers: @huggingface/gguf (a GGUF parser) and
// llama.cpp itself (the prebuilt CPU build inside the node-llama-cpp npm package). Driven by
// scripts/check_llamacpp.sh, which installs the packages into a temporary folder; see
// docs/llamacpp-check.md for what each step means and the figures it gave.
//
//   node check_llamacpp.mjs info
//   node check_llamacpp.mjs gguf  REF.gguf FILE[@same]...   structure, keys/types vs REF; @same: tensors must equal REF's
//                                                           (F32 bit-exact, F16/BF16 = REF rounded to nearest even)
//   node check_llamacpp.mjs gen   OUTDIR FILE...            llama.cpp greedy 20 ids from "Once upon a time" and
//                                                           logits at 8 positions -> OUTDIR/NAME[.f32kv].logits.f32
//   node check_llamacpp.mjs cmp   A.f32 B.f32|B.npy VOCAB   max |logit diff|, KL(A||B), top-1 agreement per position
//   node check_llamacpp.mjs ppl   FILE TEXT CTX CHUNKS      llama-perplexity's protocol on llama.cpp's logits
//   node check_llamacpp.mjs win   FILE TEXT CTX W OUT.f32   the logits at every position of ppl's window W
//                                                           (raw f32 [CTX x vocab]; its token ids in OUT.f32.ids)
//   node check_llamacpp.mjs bench FILE PP TG THREADS REPS   llama.cpp prompt/generation tokens/s
//
// Environment: LLAMACHECK_F32KV=1 runs llama.cpp with an F32 KV cache and without flash attention
// (its defaults, F16 KV cache and CPU flash attention, round q/k/v to F16: ~1e-3 on the logits);
// LLAMACHECK_BATCH=B sets the batch size of ppl and win (default: the whole window).
import fs from "node:fs";
import path from "node:path";

const [cmd, ...args] = process.argv.slice(2);

// ---------------------------------------------------------------- llama.cpp through node-llama-cpp
let llama = null;
const logs = [];
async function getLlamaCpp() {
  if (llama) return llama;
  const {getLlama, LlamaLogLevel} = await import("node-llama-cpp");
  // build: "never": use the prebuilt binary shipped in @node-llama-cpp/linux-x64, never compile or download.
  llama = await getLlama({gpu: false, build: "never", maxThreads: 0, logLevel: LlamaLogLevel.info,
    logger: (level, message) => logs.push([level, message.trimEnd()])});
  return llama;
}
function drainLogs() { // warnings and errors llama.cpp printed since the last call
  const out = logs.filter(([l]) => l === "warn" || l === "error").map(([l, m]) => `   llama.cpp ${l}: ${m}`);
  logs.length = 0;
  console.log(out.length ? out.join("\n") : "   llama.cpp printed no warning or error");
}
async function open(file, ctxSize, threads, batch, extra = {}) {
  const l = await getLlamaCpp();
  const model = await l.loadModel({modelPath: file, gpuLayers: 0});
  const exact = process.env.LLAMACHECK_F32KV === "1";
  const context = await model.createContext({contextSize: ctxSize, threads, batchSize: batch ?? ctxSize, sequences: 1,
    ...(exact ? {flashAttention: false, experimentalKvCacheKeyType: "F32", experimentalKvCacheValueType: "F32"} : {}),
    ...extra});
  return {model, context, seq: context.getSequence()};
}

async function info() {
  const l = await getLlamaCpp();
  const pkg = p => JSON.parse(fs.readFileSync(path.join("node_modules", p, "package.json"), "utf8")).version;
  console.log(JSON.stringify({"node-llama-cpp": pkg("node-llama-cpp"), "@node-llama-cpp/linux-x64": pkg("@node-llama-cpp/linux-x64"),
    "@huggingface/gguf": pkg("@huggingface/gguf"), llamaCppRelease: l.llamaCppRelease, buildType: l.buildType,
    systemInfo: l.systemInfo.trim()}));
}

async function gen(outDir, files) {
  for (const file of files) {
    console.log(`== ${file}`);
    const {model, context, seq} = await open(file, 256, 1);
    const prompt = [model.tokens.bos, ...model.tokenize("Once upon a time")];
    const ids = [];
    for await (const t of seq.evaluate(prompt, {temperature: 0})) { ids.push(t); if (ids.length >= 20) break; }
    console.log(`   prompt ids ${JSON.stringify(prompt)}\n   greedy ids ${JSON.stringify(ids)}\n   text ${JSON.stringify(model.detokenize(ids))}`);
    // Logits at positions 0..7 of BOS + prompt + greedy continuation (the PyTorch reference's positions), one pass.
    await seq.clearHistory();
    const toks = [...prompt, ...ids].slice(0, 8);
    const res = await seq.controlledEvaluate(toks.map(t => [t, {generateNext: {logits: true}}]));
    const V = res[0].next.logits.size;
    const buf = Buffer.alloc(toks.length * V * 4);
    res.forEach((r, i) => { for (const [tok, lg] of r.next.logits) buf.writeFloatLE(lg, (i * V + tok) * 4); });
    const out = path.join(outDir, path.basename(file) + (process.env.LLAMACHECK_F32KV === "1" ? ".f32kv" : "") + ".logits.f32");
    fs.writeFileSync(out, buf);
    console.log(`   logits ${toks.length} x ${V} at ids ${toks.join(",")} -> ${out}`);
    drainLogs();
    await context.dispose(); await model.dispose();
  }
}

// One window of ppl's protocol, every position's logits written out (to compare with
// scripts/check_llamacpp_logits.cpp on the same ids, position by position).
async function win(file, textFile, n, w, out) {
  const batch = process.env.LLAMACHECK_BATCH ? +process.env.LLAMACHECK_BATCH : undefined;
  const {model, context, seq} = await open(file, n, 1, batch);
  const toks = [model.tokens.bos, ...model.tokenize(fs.readFileSync(textFile, "utf8"))];
  const win = toks.slice(w * n, (w + 1) * n); win[0] = model.tokens.bos;
  const res = await seq.controlledEvaluate(win.map(t => [t, {generateNext: {logits: true}}]));
  const V = res[0].next.logits.size;
  const buf = Buffer.alloc(n * V * 4);
  res.forEach((r, i) => { for (const [tok, lg] of r.next.logits) buf.writeFloatLE(lg, (i * V + tok) * 4); });
  fs.writeFileSync(out, buf);
  fs.writeFileSync(out + ".ids", win.join(","));
  await context.dispose(); await model.dispose();
}

async function ppl(file, textFile, n, K) {
  // llama-perplexity: the whole text tokenized once with BOS, back-to-back windows of n tokens, first token of
  // each window set to BOS, logits at n/2 .. n-2 scored against the next token; PPL = exp(mean NLL), ± its s.e.
  // LLAMACHECK_BATCH=B evaluates each window B tokens at a time (llama-perplexity's -b/-ub): small
  // batches take ggml's vec_dot path, large ones its GEMM paths (llamafile sgemm, AMX, repacked tiles).
  const batch = process.env.LLAMACHECK_BATCH ? +process.env.LLAMACHECK_BATCH : undefined;
  const {model, context, seq} = await open(file, n, 2, batch);
  const t0 = Date.now();
  const toks = [model.tokens.bos, ...model.tokenize(fs.readFileSync(textFile, "utf8"))];
  const windows = Math.min(K, Math.floor(toks.length / n));
  let nll = 0, nll2 = 0, cnt = 0;
  for (let w = 0; w < windows; w++) {
    const win = toks.slice(w * n, (w + 1) * n); win[0] = model.tokens.bos;
    await seq.clearHistory();
    const res = await seq.controlledEvaluate(win.map((t, i) => i >= n / 2 && i <= n - 2 ? [t, {generateNext: {logits: true}}] : t));
    for (let i = n / 2; i <= n - 2; i++) {
      const lg = res[i].next.logits;
      let mx = -Infinity; for (const v of lg.values()) mx = Math.max(mx, v);
      let s = 0; for (const v of lg.values()) s += Math.exp(v - mx);
      const v = -(lg.get(win[i + 1]) - mx - Math.log(s)); nll += v; nll2 += v * v; cnt++;
    }
  }
  const mean = nll / cnt, ppl = Math.exp(mean), err = ppl * Math.sqrt((nll2 / cnt - mean * mean) / (cnt - 1));
  console.log(JSON.stringify({file: path.basename(file), text: path.basename(textFile), tokens: toks.length, ctx: n, windows,
    scored: cnt, ppl: +ppl.toFixed(4), pm: +err.toFixed(5), seconds: (Date.now() - t0) / 1000}));
  drainLogs();
  await context.dispose(); await model.dispose();
}

async function bench(file, pp, tg, threadList, reps) {
  // Like llama-bench: pp = one batch of PP random tokens into an empty context; tg = TG single-token decodes
  // from an empty context. Speeds from llama.cpp's own timers (llama_perf_context_print), and wall-clock in JS.
  const perf = () => {
    const text = logs.map(([, m]) => m).join("\n"); logs.length = 0;
    const p = /prompt eval time =\s*([\d.]+) ms \/\s*(\d+) tokens/.exec(text), e = /\beval time =\s*([\d.]+) ms \/\s*(\d+) runs/.exec(text.replace(/prompt eval time/g, ""));
    return {p: p ? +p[2] / (+p[1] / 1000) : NaN, e: e ? +e[2] / (+e[1] / 1000) : NaN};
  };
  for (const th of threadList) {
    const {model, context, seq} = await open(file, Math.max(512, pp + tg), th, Math.max(512, pp), {performanceTracking: true});
    const md = model.fileInfo.metadata;
    const V = Number(md?.[md?.general?.architecture]?.vocab_size ?? md?.tokenizer?.ggml?.tokens?.length ?? 32000);
    let s = 12345; const rnd = () => (s = (s * 1103515245 + 12345) % 2147483648) % V;
    const run = async () => {
      await seq.clearHistory(); await context.printTimings(); perf();
      let t = process.hrtime.bigint();
      await seq.evaluateWithoutGeneratingNewTokens(Array.from({length: pp}, rnd));
      const ppWall = pp / (Number(process.hrtime.bigint() - t) / 1e9);
      await context.printTimings(); const ppPerf = perf().p;
      await seq.clearHistory();
      let tok = rnd(); t = process.hrtime.bigint();
      for (let i = 0; i < tg; i++) {
        const r = await seq.controlledEvaluate([[tok, {generateNext: {token: true, options: {temperature: 0}}}]]);
        tok = r[0].next.token;
      }
      const tgWall = tg / (Number(process.hrtime.bigint() - t) / 1e9);
      await context.printTimings(); const tgPerf = perf().e;
      return [ppPerf, tgPerf, ppWall, tgWall];
    };
    await run(); // warm-up
    const r = []; for (let i = 0; i < reps; i++) r.push(await run());
    const avg = k => r.reduce((a, x) => a + x[k], 0) / r.length;
    const sd = k => Math.sqrt(r.reduce((a, x) => a + (x[k] - avg(k)) ** 2, 0) / Math.max(1, r.length - 1));
    console.log(JSON.stringify({file: path.basename(file), threads: th, reps, [`pp${pp}`]: +avg(0).toFixed(2), pp_sd: +sd(0).toFixed(2),
      [`tg${tg}`]: +avg(1).toFixed(3), tg_sd: +sd(1).toFixed(3), pp_wall: +avg(2).toFixed(2), tg_wall: +avg(3).toFixed(3),
      load: fs.readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ")}));
    await context.dispose(); await model.dispose();
  }
}

// ---------------------------------------------------------------- GGUF structure with @huggingface/gguf
const TYPE_SIZE = {0: [4, 1], 1: [2, 1], 30: [2, 1], 2: [18, 32], 3: [20, 32], 6: [22, 32], 7: [24, 32], 8: [34, 32],
  10: [84, 256], 11: [110, 256], 12: [144, 256], 13: [176, 256], 14: [210, 256]}; // ggml type -> [block bytes, block elements]

async function parseGguf(file) {
  const {gguf, GGUFValueType, GGMLQuantizationType} = await import("@huggingface/gguf");
  const VT = Object.fromEntries(Object.entries(GGUFValueType).filter(([, v]) => typeof v === "number").map(([k, v]) => [v, k]));
  const QT = Object.fromEntries(Object.entries(GGMLQuantizationType).filter(([, v]) => typeof v === "number").map(([k, v]) => [v, k]));
  const r = await gguf(file, {allowLocalFile: true, typedMetadata: true});
  const fd = fs.openSync(file, "r"), size = fs.fstatSync(fd).size;
  const problems = [], md = r.typedMetadata;
  const align = md["general.alignment"] ? Number(md["general.alignment"].value) : 32;
  if (md["general.alignment"] && md["general.alignment"].type !== GGUFValueType.UINT32) problems.push("general.alignment is not UINT32");
  if (Number(r.tensorDataOffset) % align) problems.push(`tensor data offset ${r.tensorDataOffset} is not a multiple of ${align}`);
  const head = Buffer.alloc(8); fs.readSync(fd, head, 0, 8, 0);
  if (head.toString("latin1", 0, 4) !== "GGUF") problems.push("bad magic");
  if (head.readUInt32LE(4) !== 3) problems.push(`GGUF version ${head.readUInt32LE(4)}, not 3`);
  const sorted = [...r.tensorInfos].sort((a, b) => Number(a.offset - b.offset));
  const names = new Set();
  let prevEnd = 0n;
  const tensors = [];
  for (const t of sorted) {
    if (names.has(t.name)) problems.push(`${t.name}: duplicate name`); names.add(t.name);
    const ts = TYPE_SIZE[t.dtype];
    if (!ts) { problems.push(`${t.name}: unknown ggml type ${t.dtype}`); continue; }
    const n = t.shape.reduce((a, b) => a * b, 1n);
    if (t.shape[0] % BigInt(ts[1])) problems.push(`${t.name}: ne0 ${t.shape[0]} is not a multiple of the block size ${ts[1]}`);
    const bytes = n / BigInt(ts[1]) * BigInt(ts[0]);
    if (t.offset % BigInt(align)) problems.push(`${t.name}: offset ${t.offset} is not a multiple of ${align}`);
    if (t.offset < prevEnd) problems.push(`${t.name}: overlaps the previous tensor`);
    if (t.offset - prevEnd >= BigInt(align)) problems.push(`${t.name}: ${t.offset - prevEnd} bytes of gap before it`);
    prevEnd = t.offset + bytes;
    const abs = r.tensorDataOffset + t.offset;
    if (abs + bytes > BigInt(size)) { problems.push(`${t.name}: data runs past the end of the file`); continue; }
    const buf = Buffer.alloc(Number(bytes)); fs.readSync(fd, buf, 0, buf.length, Number(abs));
    tensors.push({name: t.name, shape: t.shape.map(Number), dtype: QT[t.dtype] ?? String(t.dtype), data: buf});
  }
  const tail = BigInt(size) - (r.tensorDataOffset + prevEnd);
  if (tail < 0n || tail >= BigInt(align)) problems.push(`${tail} bytes after the last tensor`);
  fs.closeSync(fd);
  const typeStr = e => e.subType !== undefined ? `${VT[e.type]}[${VT[e.subType]}]` : VT[e.type];
  return {file, version: head.readUInt32LE(4), size, align, dataOffset: Number(r.tensorDataOffset), md, typeStr, tensors,
    problems, infoOrder: r.tensorInfos.map(t => t.name).join() === sorted.map(t => t.name).join(), tailPad: Number(tail)};
}

function f32bits(f) { const b = new DataView(new ArrayBuffer(4)); b.setFloat32(0, f, true); return b.getUint32(0, true); }
function f32ToF16(f) { // IEEE half, round to nearest even (F16C's vcvtps2ph, which ggml uses)
  const x = f32bits(f), sign = (x >>> 16) & 0x8000, exp = (x >>> 23) & 0xff; let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000; const shift = 14 - e; let h = mant >>> shift; const rem = mant & ((1 << shift) - 1), half = 1 << (shift - 1);
    if (rem > half || (rem === half && (h & 1))) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13); const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1))) h++;
  return sign | h;
}
function f32ToBF16(f) { // ggml_compute_fp32_to_bf16: round to nearest even, NaN quieted
  const u = f32bits(f);
  if ((u & 0x7fffffff) > 0x7f800000) return (u >>> 16) | 64;
  return ((u + (0x7fff + ((u >>> 16) & 1))) >>> 16) & 0xffff;
}
function roundLike(refT, dtype) {
  const n = refT.data.length / 4, out = Buffer.alloc(n * 2), conv = dtype === "F16" ? f32ToF16 : f32ToBF16;
  for (let i = 0; i < n; i++) out.writeUInt16LE(conv(refT.data.readFloatLE(i * 4)), i * 2);
  return out;
}
function valEq(a, b) {
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => valEq(x, b[i]));
  if (typeof a === "number" && typeof b === "number") return a === b || Math.abs(a - b) <= 1e-6 * Math.max(1, Math.abs(b));
  return String(a) === String(b);
}
function short(v) {
  const s = Array.isArray(v) ? `[${v.length}] ${JSON.stringify(v.slice(0, 4))}…` : JSON.stringify(v, (k, x) => typeof x === "bigint" ? x.toString() : x);
  return s.length > 90 ? s.slice(0, 90) + "…" : s;
}

async function checkGguf(refFile, files) {
  const ref = await parseGguf(refFile);
  const refT = Object.fromEntries(ref.tensors.map(t => [t.name, t]));
  const skip = ["version", "tensor_count", "kv_count"];
  let bad = ref.problems.length;
  for (const f of files) {
    const [file, mode] = f.split("@");
    const p = await parseGguf(file);
    console.log(`== ${file}\n   GGUF v${p.version}, ${p.size} bytes, alignment ${p.align}, data offset ${p.dataOffset}, ${p.tensors.length} tensors, ` +
      `${Object.keys(p.md).length - 3} KV, ${p.tailPad} bytes after the last tensor, tensor infos in data order: ${p.infoOrder}`);
    for (const k of Object.keys(ref.md).filter(k => !skip.includes(k))) {
      if (!(k in p.md)) { console.log(`   missing (the reference has it): ${k} ${ref.typeStr(ref.md[k])} = ${short(ref.md[k].value)}`); continue; }
      if (p.typeStr(p.md[k]) !== ref.typeStr(ref.md[k])) { console.log(`   TYPE DIFFERS: ${k}: ${p.typeStr(p.md[k])}, reference ${ref.typeStr(ref.md[k])}`); bad++; }
      if (mode === "same" && !valEq(p.md[k].value, ref.md[k].value)) console.log(`   value differs: ${k} = ${short(p.md[k].value)}, reference ${short(ref.md[k].value)}`);
    }
    for (const k of Object.keys(p.md).filter(k => !skip.includes(k) && !(k in ref.md))) console.log(`   extra (not in the reference): ${k} ${p.typeStr(p.md[k])} = ${short(p.md[k].value)}`);
    const dt = {}; for (const t of p.tensors) dt[t.dtype] = (dt[t.dtype] ?? 0) + 1;
    console.log(`   tensor types: ${JSON.stringify(dt)}`);
    if (mode === "same") {
      let same = 0; const diff = [];
      for (const t of p.tensors) {
        const r = refT[t.name];
        if (!r) { diff.push(`${t.name}: not in the reference`); continue; }
        if (r.shape.join() !== t.shape.join()) { diff.push(`${t.name}: shape ${t.shape}, reference ${r.shape}`); continue; }
        const want = t.dtype === "F32" ? r.data : roundLike(r, t.dtype);
        if (Buffer.compare(want, t.data) === 0) same++;
        else { let nd = 0; for (let i = 0; i < want.length; i += 2) nd += want.readUInt16LE(i) !== t.data.readUInt16LE(i); diff.push(`${t.name} (${t.dtype}): ${nd} 16-bit words differ`); }
      }
      for (const r of ref.tensors) if (!p.tensors.find(t => t.name === r.name)) diff.push(`${r.name}: missing`);
      console.log(`   tensors equal to the reference's (F32 bit-exact; F16/BF16 = reference rounded to nearest even): ${same}/${ref.tensors.length}`);
      for (const d of diff.slice(0, 10)) console.log(`   DIFF ${d}`);
      bad += diff.length;
    }
    for (const pr of p.problems) console.log(`   PROBLEM ${pr}`);
    bad += p.problems.length;
  }
  console.log(`gguf: ${bad} problem(s)`);
  return bad;
}

// ---------------------------------------------------------------- logits comparison
function loadF32(f) {
  let b = fs.readFileSync(f);
  if (f.endsWith(".npy")) b = b.subarray(10 + b.readUInt16LE(8)); // numpy v1 header, <f4, C order
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.length));
}
function cmpLogits(fa, fb, V) {
  const a = loadF32(fa), b = loadF32(fb), n = Math.min(a.length, b.length) / V;
  let maxd = 0, maxkl = 0, top = 0;
  const lse = (x, o) => { let m = -Infinity; for (let i = 0; i < V; i++) m = Math.max(m, x[o + i]); let s = 0; for (let i = 0; i < V; i++) s += Math.exp(x[o + i] - m); return m + Math.log(s); };
  for (let p = 0; p < n; p++) {
    const o = p * V, la = lse(a, o), lb = lse(b, o);
    let kl = 0, ia = 0, ib = 0;
    for (let i = 0; i < V; i++) {
      const pa = a[o + i] - la, pb = b[o + i] - lb; kl += Math.exp(pa) * (pa - pb);
      maxd = Math.max(maxd, Math.abs(a[o + i] - b[o + i]));
      if (a[o + i] > a[o + ia]) ia = i; if (b[o + i] > b[o + ib]) ib = i;
    }
    maxkl = Math.max(maxkl, kl); top += ia === ib;
  }
  console.log(JSON.stringify({a: path.basename(fa), b: path.basename(fb), positions: n, max_abs_logit_diff: +maxd.toExponential(3),
    max_kl: +maxkl.toExponential(3), top1_agree: `${top}/${n}`}));
}

if (cmd === "info") await info();
else if (cmd === "gguf") process.exitCode = (await checkGguf(args[0], args.slice(1))) ? 1 : 0;
else if (cmd === "gen") await gen(args[0], args.slice(1));
else if (cmd === "cmp") cmpLogits(args[0], args[1], +args[2]);
else if (cmd === "win") await win(args[0], args[1], +args[2], +args[3], args[4]);
else if (cmd === "ppl") await ppl(args[0], args[1], +args[2], +args[3]);
else if (cmd === "bench") await bench(args[0], +args[1], +args[2], args[3].split(",").map(Number), +args[4]);
else { console.error("usage: see the header of check_llamacpp.mjs"); process.exitCode = 2; }
