// The Rust `tokenizers` library (npm package `tokenizers`, its Node.js binding) answering the bpe_shim's
// AutoTokenizer, one JSON request per line on stdin, one JSON reply per line on stdout:
//   {"op": "load", "file", "additions": [{content, special, normalized, lstrip, rstrip, single_word}],
//    "template": null | {"bos": name | null, "eos": name | null}}
//   {"op": "vocab"} | {"op": "added"} | {"op": "encode", "text", "add_special_tokens"} |
//   {"op": "decode", "ids", "skip_special_tokens"}
// Needs NODE_PATH (or a node_modules beside this file) holding the `tokenizers` package.
import { createRequire } from 'node:module';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';

const require = createRequire(import.meta.url);
const { Tokenizer, AddedToken, templateProcessing } = require('tokenizers');

let tokenizer = null;
let added = null;

function load(request) {
  tokenizer = Tokenizer.fromFile(request.file);
  for (const a of request.additions) {
    tokenizer.addAddedTokens([new AddedToken(a.content, a.special, {
      normalized: a.normalized, leftStrip: a.lstrip, rightStrip: a.rstrip, singleWord: a.single_word,
    })]);
  }
  if (request.template) {
    // LlamaTokenizerFast.update_post_processor
    const { bos, eos } = request.template;
    const single = `${bos !== null ? bos + ':0 ' : ''}$A:0${eos !== null ? ' ' + eos + ':0' : ''}`;
    const pair = `${single}${bos !== null ? ' ' + bos + ':1' : ''} $B:1${eos !== null ? ' ' + eos + ':1' : ''}`;
    const special = [];
    if (bos !== null) special.push([bos, tokenizer.tokenToId(bos)]);
    if (eos !== null) special.push([eos, tokenizer.tokenToId(eos)]);
    tokenizer.setPostProcessor(templateProcessing(single, pair, special));
  }
  // The added vocabulary as the library itself serializes it (ids and flags).
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'hf-tokenizers-')), 'tokenizer.json');
  tokenizer.save(file);
  added = {};
  for (const t of JSON.parse(fs.readFileSync(file, 'utf8')).added_tokens) {
    added[t.id] = { content: t.content, special: t.special, normalized: t.normalized };
  }
  fs.rmSync(path.dirname(file), { recursive: true });
  return null;
}

async function handle(request) {
  switch (request.op) {
    case 'load': return load(request);
    case 'vocab': return tokenizer.getVocab(true);
    case 'model_size': return tokenizer.getVocabSize(false);
    case 'added': return added;
    case 'encode': {
      const encoding = await tokenizer.encode(request.text, null, { addSpecialTokens: request.add_special_tokens });
      return encoding.getIds();
    }
    case 'decode': return await tokenizer.decode(request.ids, request.skip_special_tokens);
    default: throw new Error(`unknown op ${request.op}`);
  }
}

const lines = readline.createInterface({ input: process.stdin });
for await (const line of lines) {
  let reply;
  try {
    reply = { result: await handle(JSON.parse(line)) };
  } catch (e) {
    reply = { error: String(e && e.stack ? e.stack : e) };
  }
  process.stdout.write(JSON.stringify(reply) + '\n');
}
