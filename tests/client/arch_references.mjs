// llama.cpp's logits for the random-weight architecture models (tests/model/arch_models.h), from node-llama-cpp's
// prebuilt CPU build: each model evaluates the first tokens of code-calib.txt (tiny-llama's ids) in one sequence,
// flash attention on, and the raw logits of the last 4 positions are recorded.
//
// usage: node arch_references.mjs MODELS_DIR IDS_FILE OUT.json   (tests/model/make_arch_references.sh runs it)
import { readFileSync, writeFileSync } from "node:fs";
import { getLlama } from "node-llama-cpp";

const [modelsDir, idsPath, outPath] = process.argv.slice(2);
const ids = JSON.parse(readFileSync(idsPath, "utf8"));
const llama = await getLlama({ gpu: false, build: "never", logLevel: "error" });
// 100 tokens: ggml's tiled flash-attention kernel (64+ query rows); 40: its one-row kernel.
const cases = { long: 100, short: 40 };
const rowsPerCase = 4;
const out = { made_by: "tests/model/make_arch_references.sh", node_llama_cpp: "3.22.1", cases: {} };
for (const name of ["llama3", "qwen2", "qwen3"]) {
  const model = await llama.loadModel({ modelPath: `${modelsDir}/${name}.gguf` });
  out.cases[name] = {};
  for (const [label, length] of Object.entries(cases)) {
    const context = await model.createContext({ contextSize: 256, batchSize: 256, flashAttention: true, threads: 2 });
    try {
      const tokens = ids.slice(0, length);
      const first = length - rowsPerCase;
      const items = tokens.map((t, i) => (i >= first ? [t, { generateNext: { logits: true } }] : t));
      const results = await context.getSequence().controlledEvaluate(items);
      const rows = [];
      for (let i = first; i < length; ++i) {
        const logits = results[i].next.logits;
        const row = new Array(logits.size);
        for (const [token, value] of logits) row[token] = Number(value.toPrecision(8));
        rows.push(row);
      }
      out.cases[name][label] = { tokens: length, first_position: first, logits: rows };
    } finally {
      await context.dispose();
    }
  }
  await model.dispose();
}
writeFileSync(outPath, JSON.stringify(out));
console.log(`wrote ${outPath}`);
