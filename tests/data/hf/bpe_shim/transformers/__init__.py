"""Stand-in for the `transformers` package, for llama.cpp's convert_hf_to_gguf.py (34af94c) on checkpoints whose
only tokenizer is tokenizer.json (the converter's _set_vocab_gpt2 path). Used by make_bpe_checkpoints.py to make
reference files; not by the tests.

AutoConfig: config.json as json.load reads it, as the shared stand-in (reference/convert_hf_to_gguf/shim) does.

AutoTokenizer: what get_vocab_base and get_vocab_base_pre call on transformers 4.57.6's fast tokenizer -- vocab,
get_added_vocab(), added_tokens_decoder, encode(text), decode(ids) -- answered by the Rust `tokenizers` library
itself, through its Node.js binding (npm package `tokenizers`, run by hf_tokenizers.mjs beside this folder):
loading tokenizer.json, added-token ids, normalizer, pre-tokenizer, BPE, post-processor and decoder are the
library's. What transformers' Python layer adds on top is modelled here from its source, for the classes the
project supports: the class's default special tokens, tokenizer_config.json's added_tokens_decoder and special
tokens added when tokenizer.json lacks them, LlamaTokenizerFast's post-processor rebuilt from add_bos_token /
add_eos_token, clean_up_tokenization_spaces. A class outside that list raises, so nothing is silently different.
"""
import json
import os
import subprocess
from pathlib import Path

__version__ = "4.57.6-hfref-bpe-shim"

HELPER = Path(__file__).resolve().parent.parent / "hf_tokenizers.mjs"


class PretrainedConfig:
    def __init__(self, d):
        self._d = d

    def to_dict(self):
        return json.loads(json.dumps(self._d))


class AutoConfig:
    @classmethod
    def from_pretrained(cls, path, trust_remote_code=False, **kwargs):
        with open(Path(path) / "config.json", encoding="utf-8") as f:
            return PretrainedConfig(json.load(f))


# class (without "Fast") -> (defaults for unk, bos, eos, pad; rebuilds the post-processor from add_*_token;
# clean_up_tokenization_spaces default)
CLASSES = {
    "PreTrainedTokenizer": ((None, None, None, None), False, True),
    "LlamaTokenizer": (("<unk>", "<s>", "</s>", None), True, False),
    "Qwen2Tokenizer": (("<|endoftext|>", None, "<|endoftext|>", "<|endoftext|>"), False, False),
    "GPT2Tokenizer": (("<|endoftext|>", "<|endoftext|>", "<|endoftext|>", None), False, False),
}
MODEL_TYPES = {"llama": "LlamaTokenizer", "mistral": "LlamaTokenizer", "phi3": "LlamaTokenizer",
               "qwen2": "Qwen2Tokenizer", "qwen3": "Qwen2Tokenizer"}


class _AddedToken:
    def __init__(self, d):
        self.content = d["content"]
        self.special = d["special"]
        self.normalized = d["normalized"]


def _content(value):
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return value["content"]


class _Tokenizer:
    def __init__(self, path):
        path = Path(path)
        tc = {}
        if (path / "tokenizer_config.json").is_file():
            tc = json.loads((path / "tokenizer_config.json").read_text(encoding="utf-8"))
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
        tj = json.loads((path / "tokenizer.json").read_text(encoding="utf-8"))
        name = tc.get("tokenizer_class") or config.get("tokenizer_class") or MODEL_TYPES.get(config.get("model_type"))
        if name and name.endswith("Fast"):
            name = name[:-4]
        if name not in CLASSES:
            raise ValueError(f"tokenizer class {name} is not modelled by this stand-in")
        defaults, rebuild, cleanup_default = CLASSES[name]
        if rebuild and tc.get("add_prefix_space") is not None:
            raise ValueError("LlamaTokenizerFast with add_prefix_space needs the slow tokenizer")
        specials = {}
        for i, key in enumerate(["unk_token", "bos_token", "eos_token", "pad_token", "sep_token", "cls_token",
                                 "mask_token"]):
            specials[key] = _content(tc[key]) if key in tc else (defaults[i] if i < 4 else None)
        special_texts = [specials[k] for k in ["bos_token", "eos_token", "unk_token", "sep_token", "pad_token",
                                                "cls_token", "mask_token"] if specials[k] is not None]
        special_texts += [_content(t) for t in tc.get("additional_special_tokens", []) or []]
        known = {t["content"] for t in tj.get("added_tokens") or []}
        additions = []
        for key, entry in sorted(((int(k), v) for k, v in (tc.get("added_tokens_decoder") or {}).items())):
            if entry["content"] in known:
                continue
            special = bool(entry.get("special", False)) or entry["content"] in special_texts
            additions.append({"content": entry["content"], "special": special,
                              "normalized": entry.get("normalized", not special),
                              "lstrip": entry.get("lstrip", False), "rstrip": entry.get("rstrip", False),
                              "single_word": entry.get("single_word", False)})
            known.add(entry["content"])
        for text in special_texts:
            if text not in known:
                additions.append({"content": text, "special": True, "normalized": False, "lstrip": False,
                                  "rstrip": False, "single_word": False})
                known.add(text)
        template = None
        if rebuild:
            bos = specials["bos_token"] if tc.get("add_bos_token", True) else None
            eos = specials["eos_token"] if tc.get("add_eos_token", False) else None
            template = {"bos": bos, "eos": eos}
        self._cleanup = tc.get("clean_up_tokenization_spaces", cleanup_default)
        self._special_texts = list(dict.fromkeys(special_texts))  # all_special_tokens: unique, in order
        self._node = subprocess.Popen(["node", str(HELPER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      text=True, encoding="utf-8")
        self._call({"op": "load", "file": str(path / "tokenizer.json"), "additions": additions, "template": template})

    def _call(self, request):
        self._node.stdin.write(json.dumps(request) + "\n")
        self._node.stdin.flush()
        reply = json.loads(self._node.stdout.readline())
        if "error" in reply:
            raise ValueError(f"tokenizers: {reply['error']}")
        return reply["result"]

    is_fast = True

    @property
    def vocab_size(self):
        return self._call({"op": "model_size"})

    @property
    def all_special_tokens(self):
        return list(self._special_texts)

    @property
    def all_special_ids(self):
        vocab = self.vocab  # every special token was added at load, so each has an id
        return [vocab[t] for t in self._special_texts]

    @property
    def vocab(self):
        return self._call({"op": "vocab"})

    def get_vocab(self):
        return self.vocab

    @property
    def added_tokens_decoder(self):
        return {int(k): _AddedToken(v) for k, v in self._call({"op": "added"}).items()}

    def get_added_vocab(self):
        return {t.content: i for i, t in sorted(self.added_tokens_decoder.items())}

    def encode(self, text, add_special_tokens=True):
        return self._call({"op": "encode", "text": text, "add_special_tokens": add_special_tokens})

    def decode(self, ids, skip_special_tokens=False):
        text = self._call({"op": "decode", "ids": ids, "skip_special_tokens": skip_special_tokens})
        if self._cleanup:
            # PreTrainedTokenizerBase.clean_up_tokenization
            for a, b in ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"),
                         (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")):
                text = text.replace(a, b)
        return text


class AutoTokenizer:
    @classmethod
    def from_pretrained(cls, path, **kwargs):
        if not (Path(path) / "tokenizer.json").is_file():
            raise OSError(f"no tokenizer.json in {path}")
        return _Tokenizer(path)
