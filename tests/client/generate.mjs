// Loads GGUF files in llama.cpp (the prebuilt binaries of node-llama-cpp, CPU only) and checks that each one
// loads and generates, that a reference pair agrees on its greedy continuation, and that two models given as
// --same-score A B (a file and a split model named by its first shard, say) score a fixed text identically: the
// same negative log-likelihood of every token, to the last bit, and the same greedy continuation.
//
// usage: node generate.mjs [--reference F16.gguf --same-as-reference Q8_0.gguf] [--same-score A.gguf B.gguf]...
//                          [--tokens 16] [A.gguf ...] [--runs B.gguf ...]
//        (A: must load and generate text; B: must load and complete, possibly with no text, as a model with random
//        weights may stop at once)
// Prints one JSON line per model or pair and "N passed, N failed" at the end; exits 1 on any failure.
import { getLlama, LlamaCompletion } from "node-llama-cpp";

const args = process.argv.slice(2);
let reference = null;
let tokens = 16;
const sameAsReference = [];
const sameScore = [];
const loadsOnly = [];
const runsOnly = [];
for (let i = 0; i < args.length; ++i) {
  if (args[i] === "--reference") reference = args[++i];
  else if (args[i] === "--runs") runsOnly.push(args[++i]);
  else if (args[i] === "--tokens") tokens = Number(args[++i]);
  else if (args[i] === "--same-as-reference") sameAsReference.push(args[++i]);
  else if (args[i] === "--same-score") { sameScore.push([args[i + 1], args[i + 2]]); i += 2; }
  else loadsOnly.push(args[i]);
}

// A code prompt: tiny-llama-code was trained on code and docs.
const prompt = "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n";
const llama = await getLlama({ gpu: false, build: "never", logLevel: "error" });

async function greedyTokens(path) {
  const model = await llama.loadModel({ modelPath: path });
  const context = await model.createContext({ contextSize: 256, threads: 2 });
  try {
    const completion = new LlamaCompletion({ contextSequence: context.getSequence() });
    const text = await completion.generateCompletion(prompt, {
      maxTokens: tokens,
      temperature: 0, // greedy
    });
    return { text, tokens: Array.from(model.tokenize(text)) };
  } finally {
    await context.dispose();
    await model.dispose();
  }
}

// Code the model never saw, scored token by token: the sum of -log p(token | the tokens before it).
const scoredText = "def merge_sorted(left, right):\n    result = []\n    i = j = 0\n" +
  "    while i < len(left) and j < len(right):\n        if left[i] <= right[j]:\n" +
  "            result.append(left[i])\n            i += 1\n        else:\n" +
  "            result.append(right[j])\n            j += 1\n    return result + left[i:] + right[j:]\n";

async function negativeLogLikelihood(path) {
  const model = await llama.loadModel({ modelPath: path });
  const context = await model.createContext({ contextSize: 256, threads: 2 });
  try {
    const tokens = Array.from(model.tokenize(scoredText));
    const input = tokens.map((t, i) => (i + 1 < tokens.length ? [t, { generateNext: { probabilities: true } }] : t));
    const outputs = await context.getSequence().controlledEvaluate(input);
    let nll = 0;
    for (let i = 0; i + 1 < tokens.length; ++i) nll -= Math.log(outputs[i].next.probabilities.get(tokens[i + 1]));
    return { nll, tokens: tokens.length - 1 };
  } finally {
    await context.dispose();
    await model.dispose();
  }
}

let passed = 0;
let failed = 0;
function record(entry, ok) {
  console.log(JSON.stringify({ ...entry, ok }));
  if (ok) ++passed; else ++failed;
}

let referenceTokens = null;
if (reference) {
  try {
    const out = await greedyTokens(reference);
    referenceTokens = out.tokens;
    record({ model: reference, role: "reference", text: out.text }, out.tokens.length > 0);
  } catch (e) {
    record({ model: reference, role: "reference", error: String(e) }, false);
  }
}
for (const path of sameAsReference) {
  try {
    const out = await greedyTokens(path);
    const same = referenceTokens !== null && out.tokens.length >= tokens &&
      out.tokens.slice(0, tokens).every((t, i) => t === referenceTokens[i]);
    record({ model: path, role: "same-as-reference", text: out.text }, same);
  } catch (e) {
    record({ model: path, role: "same-as-reference", error: String(e) }, false);
  }
}
for (const [a, b] of sameScore) {
  try {
    const [scoreA, scoreB] = [await negativeLogLikelihood(a), await negativeLogLikelihood(b)];
    const [textA, textB] = [await greedyTokens(a), await greedyTokens(b)];
    const same = scoreA.tokens > 0 && scoreA.nll === scoreB.nll && scoreA.tokens === scoreB.tokens &&
      textA.text === textB.text;
    record({ models: [a, b], role: "same-score", nll: [scoreA.nll, scoreB.nll], scored_tokens: scoreA.tokens,
             perplexity: Math.exp(scoreA.nll / scoreA.tokens), text: textB.text }, same);
  } catch (e) {
    record({ models: [a, b], role: "same-score", error: String(e) }, false);
  }
}
for (const path of loadsOnly) {
  try {
    const out = await greedyTokens(path);
    record({ model: path, role: "loads", text: out.text }, out.text.length > 0);
  } catch (e) {
    record({ model: path, role: "loads", error: String(e) }, false);
  }
}
for (const path of runsOnly) {
  try {
    const out = await greedyTokens(path);
    record({ model: path, role: "runs", text: out.text }, true);
  } catch (e) {
    record({ model: path, role: "runs", error: String(e) }, false);
  }
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
