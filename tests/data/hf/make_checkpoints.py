#!/usr/bin/python3
"""Small random Hugging Face checkpoints, one per architecture and case, and llama.cpp's conversions of them.

usage: make_checkpoints.py OUT_DIR [--convert HFREF_DIR LLAMA_CPP_DIR [LLAMA_QUANTIZE]]

Writes OUT_DIR/<case>/ (config.json with every field the converter may read spelled out, model.safetensors or
shards with model.safetensors.index.json, tokenizer.model trained here with SentencePiece, tokenizer_config.json,
tokenizer.json where the case needs one, generation_config.json) from a fixed seed. With --convert it runs
llama.cpp's unchanged convert_hf_to_gguf.py through the wrapper in HFREF_DIR (see its README) for every outtype
the case lists, writing OUT_DIR/<case>.<outtype>.gguf, and llama-quantize on the f16 conversion where a case asks
for a llama-quantize type (OUT_DIR/<case>.<TYPE>.gguf).

Needs Debian's python3-numpy and python3-sentencepiece only (weights are written as raw safetensors here).
"""
import io
import json
import os
import struct
import subprocess
import sys

import numpy as np
import sentencepiece as spm

TEXT = """The quick brown fox jumps over the lazy dog. A small model reads a small text and learns nothing much.
def add(a, b):
    return a + b
class Point:
    def __init__(self, x, y):
        self.x = x
        self.y = y
Numbers: 0 1 2 3 4 5 6 7 8 9 10 100 1000. Symbols: + - * / = < > ( ) [ ] { } : ; , . ! ?
Quantization maps floating point weights to a few bits per value, block by block, with a scale per block.
"""


def train_tokenizer(vocab_size):
    model = io.BytesIO()
    lines = [line for line in TEXT.splitlines() if line.strip()] * 20
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_writer=model, vocab_size=vocab_size, model_type="bpe",
        byte_fallback=True, character_coverage=1.0, unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
        num_threads=1, minloglevel=2)
    return model.getvalue()


def bf16_bytes(values):
    bits = values.astype(np.float32).view(np.uint32).astype(np.uint64)
    rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)
    return rounded.tobytes()


def tensor_bytes(values, dtype):
    if dtype == "F32":
        return values.astype("<f4").tobytes()
    if dtype == "F16":
        return values.astype("<f2").tobytes()
    if dtype == "BF16":
        return bf16_bytes(values)
    raise ValueError(dtype)


def write_safetensors(path, tensors):
    """tensors: list of (name, dtype, shape, bytes), written in this order with no gaps."""
    header = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, dtype, shape, data in tensors:
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for _, _, _, data in tensors:
            f.write(data)


def weights(case, rng):
    """The case's tensors as (name, numpy float32 array) in transformers' naming."""
    h, ff, layers, vocab = case["hidden"], case["ffn"], case["layers"], case["vocab_size"]
    heads, kv_heads, head_dim = case["heads"], case["kv_heads"], case["head_dim"]
    arch = case["arch"]
    out = [("model.embed_tokens.weight", rng.normal(0, 0.02, (vocab, h)))]
    for b in range(layers):
        p = f"model.layers.{b}."
        if arch == "Phi3ForCausalLM":
            out.append((p + "self_attn.qkv_proj.weight", rng.normal(0, 0.05, ((heads + 2 * kv_heads) * head_dim, h))))
            out.append((p + "mlp.gate_up_proj.weight", rng.normal(0, 0.05, (2 * ff, h))))
        else:
            out.append((p + "self_attn.q_proj.weight", rng.normal(0, 0.05, (heads * head_dim, h))))
            out.append((p + "self_attn.k_proj.weight", rng.normal(0, 0.05, (kv_heads * head_dim, h))))
            out.append((p + "self_attn.v_proj.weight", rng.normal(0, 0.05, (kv_heads * head_dim, h))))
            out.append((p + "mlp.gate_proj.weight", rng.normal(0, 0.05, (ff, h))))
            out.append((p + "mlp.up_proj.weight", rng.normal(0, 0.05, (ff, h))))
        out.append((p + "self_attn.o_proj.weight", rng.normal(0, 0.05, (h, heads * head_dim))))
        out.append((p + "mlp.down_proj.weight", rng.normal(0, 0.05, (h, ff))))
        # Norm weights near 1 (near 0 for Gemma, which stores w - 1).
        center = 0.0 if arch.startswith("Gemma") else 1.0
        out.append((p + "input_layernorm.weight", center + rng.normal(0, 0.1, (h,))))
        out.append((p + "post_attention_layernorm.weight", center + rng.normal(0, 0.1, (h,))))
        if arch == "Gemma2ForCausalLM":
            out.append((p + "pre_feedforward_layernorm.weight", center + rng.normal(0, 0.1, (h,))))
            out.append((p + "post_feedforward_layernorm.weight", center + rng.normal(0, 0.1, (h,))))
        if arch == "Qwen2ForCausalLM":
            out.append((p + "self_attn.q_proj.bias", rng.normal(0, 0.05, (heads * head_dim,))))
            out.append((p + "self_attn.k_proj.bias", rng.normal(0, 0.05, (kv_heads * head_dim,))))
            out.append((p + "self_attn.v_proj.bias", rng.normal(0, 0.05, (kv_heads * head_dim,))))
        if arch == "Qwen3ForCausalLM":
            out.append((p + "self_attn.q_norm.weight", 1.0 + rng.normal(0, 0.1, (head_dim,))))
            out.append((p + "self_attn.k_norm.weight", 1.0 + rng.normal(0, 0.1, (head_dim,))))
    out.append(("model.norm.weight", (0.0 if arch.startswith("Gemma") else 1.0) + rng.normal(0, 0.1, (h,))))
    if not case.get("tied", False):
        out.append(("lm_head.weight", rng.normal(0, 0.02, (vocab, h))))
    return [(name, np.asarray(v, dtype=np.float32)) for name, v in out]


def config_for(case):
    arch = case["arch"]
    h, heads, kv_heads = case["hidden"], case["heads"], case["kv_heads"]
    cfg = {
        "architectures": [arch],
        "attention_dropout": 0.0,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "hidden_act": "silu",
        "hidden_size": h,
        "initializer_range": 0.02,
        "intermediate_size": case["ffn"],
        "max_position_embeddings": case.get("context", 256),
        "model_type": case["model_type"],
        "num_attention_heads": heads,
        "num_hidden_layers": case["layers"],
        "num_key_value_heads": kv_heads,
        "rms_norm_eps": case.get("rms_norm_eps", 1e-6),
        "tie_word_embeddings": case.get("tied", False),
        "torch_dtype": {"F32": "float32", "F16": "float16", "BF16": "bfloat16"}[case["dtype"]],
        "transformers_version": "4.46.0",
        "use_cache": True,
        "vocab_size": case["vocab_size"],
    }
    if arch in ("LlamaForCausalLM", "MistralForCausalLM"):
        cfg.update({"attention_bias": False, "mlp_bias": False, "pretraining_tp": 1, "head_dim": case["head_dim"],
                    "rope_theta": case.get("rope_theta", 10000.0), "rope_scaling": case.get("rope_scaling")})
        if arch == "MistralForCausalLM":
            cfg["sliding_window"] = None
            del cfg["attention_bias"], cfg["mlp_bias"], cfg["pretraining_tp"]
    if arch in ("Qwen2ForCausalLM", "Qwen3ForCausalLM"):
        cfg.update({"rope_theta": 1000000.0, "rope_scaling": None, "sliding_window": None, "use_sliding_window": False,
                    "max_window_layers": case["layers"]})
        if arch == "Qwen3ForCausalLM":
            cfg.update({"head_dim": case["head_dim"], "attention_bias": False})
    if arch in ("GemmaForCausalLM", "Gemma2ForCausalLM"):
        cfg.update({"head_dim": case["head_dim"], "hidden_activation": "gelu_pytorch_tanh", "rope_theta": 10000.0,
                    "attention_bias": False, "pad_token_id": 0})
        if arch == "Gemma2ForCausalLM":
            cfg.update({"attn_logit_softcapping": 50.0, "final_logit_softcapping": 30.0, "sliding_window": 128,
                        "query_pre_attn_scalar": case["head_dim"], "cache_implementation": "hybrid"})
    if arch == "Phi3ForCausalLM":
        cfg.update({"rope_theta": 10000.0, "original_max_position_embeddings": case.get("original_context", 256),
                    "rope_scaling": case.get("rope_scaling"), "sliding_window": case.get("sliding_window", 2047),
                    "partial_rotary_factor": 1.0, "resid_pdrop": 0.0, "embd_pdrop": 0.0, "pad_token_id": 32000,
                    "attention_bias": False})
    return cfg


def tokenizer_config(case):
    tc = {
        "add_bos_token": True,
        "add_eos_token": False,
        "added_tokens_decoder": {
            "0": {"content": "<unk>", "lstrip": False, "normalized": False, "rstrip": False, "single_word": False, "special": True},
            "1": {"content": "<s>", "lstrip": False, "normalized": False, "rstrip": False, "single_word": False, "special": True},
            "2": {"content": "</s>", "lstrip": False, "normalized": False, "rstrip": False, "single_word": False, "special": True},
        },
        "bos_token": "<s>",
        "clean_up_tokenization_spaces": False,
        "eos_token": "</s>",
        "legacy": False,
        "model_max_length": 256,
        "pad_token": None,
        "sp_model_kwargs": {},
        "tokenizer_class": "LlamaTokenizer",
        "unk_token": "<unk>",
    }
    for token_id, content in case.get("added_tokens", {}).items():
        tc["added_tokens_decoder"][str(token_id)] = {"content": content, "lstrip": False, "normalized": False,
                                                      "rstrip": False, "single_word": False, "special": True}
    if "chat_template" in case:
        tc["chat_template"] = case["chat_template"]
    return tc


def tokenizer_json(case):
    """Enough of a tokenizer.json for what the converter reads on SentencePiece paths: added tokens and the
    post-processor (SpecialVocab), never the vocabulary itself."""
    added = [{"id": 0, "content": "<unk>", "special": True}, {"id": 1, "content": "<s>", "special": True},
             {"id": 2, "content": "</s>", "special": True}]
    for token_id, content in case.get("added_tokens", {}).items():
        added.append({"id": token_id, "content": content, "special": True})
    for item in added:
        item.update({"single_word": False, "lstrip": False, "rstrip": False, "normalized": False})
    return {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first", "split": False},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": "<s>", "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}},
        },
        "decoder": {"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
                                                     {"type": "ByteFallback"}, {"type": "Fuse"}]},
        "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>", "byte_fallback": True, "vocab": {}, "merges": []},
    }


LLAMA3_ROPE = {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
               "original_max_position_embeddings": 64, "rope_type": "llama3"}

# Every case: architecture, shapes, dtype, and the conversions made from it ("auto" is --outtype auto; upper-case
# names are llama-quantize types applied to the f16 conversion).
CASES = {
    "llama-tied-rope3": dict(arch="LlamaForCausalLM", model_type="llama", hidden=64, ffn=96, layers=2, heads=4,
                             kv_heads=2, head_dim=16, vocab_size=384, dtype="F32", tied=True,
                             rope_scaling=LLAMA3_ROPE, rope_theta=500000.0, context=512,
                             outtypes=["f16", "q8_0", "Q4_K_M"]),
    "llama-bf16-shards": dict(arch="LlamaForCausalLM", model_type="llama", hidden=64, ffn=128, layers=2, heads=4,
                              kv_heads=4, head_dim=16, vocab_size=400, dtype="BF16", shards=2,
                              rope_scaling={"type": "linear", "factor": 2.0},
                              added_tokens={384: "<|im_start|>", 385: "<|im_end|>"},
                              chat_template="{% for m in messages %}<|im_start|>{{ m['content'] }}<|im_end|>{% endfor %}",
                              outtypes=["auto", "f32", "q8_0"]),
    "mistral-f16": dict(arch="MistralForCausalLM", model_type="mistral", hidden=256, ffn=256, layers=1, heads=8,
                        kv_heads=2, head_dim=32, vocab_size=384, dtype="F16", tied=True,
                        outtypes=["tq1_0", "tq2_0"]),
    "qwen2-bias": dict(arch="Qwen2ForCausalLM", model_type="qwen2", hidden=64, ffn=96, layers=2, heads=4, kv_heads=2,
                       head_dim=16, vocab_size=384, dtype="F32", tokenizer_json=True, outtypes=["f16", "bf16"]),
    "qwen3-bf16": dict(arch="Qwen3ForCausalLM", model_type="qwen3", hidden=64, ffn=96, layers=2, heads=4, kv_heads=2,
                       head_dim=32, vocab_size=384, dtype="BF16", tied=True, outtypes=["auto", "q8_0"]),
    "gemma-f16": dict(arch="GemmaForCausalLM", model_type="gemma", hidden=64, ffn=96, layers=2, heads=4, kv_heads=1,
                      head_dim=16, vocab_size=384, dtype="F16", tied=True, outtypes=["auto"]),
    "gemma2-f32": dict(arch="Gemma2ForCausalLM", model_type="gemma2", hidden=64, ffn=96, layers=2, heads=4,
                       kv_heads=2, head_dim=16, vocab_size=384, dtype="F32", tied=True, outtypes=["f16", "q8_0"]),
    "phi3-longrope": dict(arch="Phi3ForCausalLM", model_type="phi3", hidden=64, ffn=96, layers=2, heads=4, kv_heads=4,
                          head_dim=16, vocab_size=400, dtype="F32", context=1024, original_context=256,
                          tokenizer_json=True, added_tokens={384: "<|endoftext|>", 385: "<|end|>"},
                          rope_scaling={"type": "longrope", "long_factor": [1.0 + i / 8 for i in range(8)],
                                        "short_factor": [1.0 + i / 16 for i in range(8)]},
                          outtypes=["f16"]),
    # A hub-style folder name, no head_dim (rope dimension from hidden / heads), yarn rope scaling, _name_or_path,
    # chat_template.jinja.
    "Llama-3.2-1B-Instruct": dict(arch="LlamaForCausalLM", model_type="llama", hidden=64, ffn=96, layers=2, heads=4,
                                  kv_heads=2, head_dim=16, vocab_size=384, dtype="F16",
                                  rope_scaling={"rope_type": "yarn", "factor": 4.0,
                                                "original_max_position_embeddings": 128, "beta_fast": 32.0,
                                                "beta_slow": 1.0},
                                  config_remove=["head_dim"],
                                  config_update={"_name_or_path": "meta-llama/Llama-3.2-1B-Instruct"},
                                  files={"chat_template.jinja": "{% for m in messages %}{{ m.content }}{% endfor %}"},
                                  outtypes=["auto"]),
    # Gemma from bf16: the norm offset is added in float32.
    "gemma-bf16": dict(arch="GemmaForCausalLM", model_type="gemma", hidden=64, ffn=96, layers=2, heads=4, kv_heads=4,
                       head_dim=16, vocab_size=384, dtype="BF16", tied=True, outtypes=["auto", "q8_0"]),
    # Vocabulary padded past the SentencePiece model, added_tokens.json (one id past vocab_size, ignored), added
    # tokens (one with SentencePiece spaces), a list of eos ids (not an int: skipped), a sliding window.
    "mistral-padvocab": dict(arch="MistralForCausalLM", model_type="mistral", hidden=64, ffn=96, layers=1, heads=4,
                             kv_heads=1, head_dim=16, vocab_size=512, dtype="F32", tokenizer_json=True,
                             added_tokens={384: "[INST]", 400: "\u2581hello\u2581world"}, chat_template="{{ messages }}",
                             config_update={"sliding_window": 4096, "eos_token_id": [2, 384]},
                             files={"added_tokens.json": '{"<extra_0>": 383, "<far>": 900}'},
                             outtypes=["f16"]),
}


def make_case(out_dir, name, case, sp_model):
    rng = np.random.default_rng(sum(map(ord, name)))
    folder = os.path.join(out_dir, name)
    os.makedirs(folder, exist_ok=True)
    tensors = [(n, case["dtype"], v.shape, tensor_bytes(v, case["dtype"])) for n, v in weights(case, rng)]
    shards = case.get("shards", 1)
    if shards == 1:
        write_safetensors(os.path.join(folder, "model.safetensors"), tensors)
    else:
        weight_map = {}
        per = (len(tensors) + shards - 1) // shards
        for s in range(shards):
            file = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
            part = tensors[s * per:(s + 1) * per]
            write_safetensors(os.path.join(folder, file), part)
            for n, _, _, _ in part:
                weight_map[n] = file
        total = sum(len(t[3]) for t in tensors)
        with open(os.path.join(folder, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
    config = config_for(case)
    config.update(case.get("config_update", {}))
    for key in case.get("config_remove", []):
        del config[key]
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    for file_name, text in case.get("files", {}).items():
        with open(os.path.join(folder, file_name), "w") as f:
            f.write(text)
    with open(os.path.join(folder, "generation_config.json"), "w") as f:
        json.dump({"_from_model_config": True, "bos_token_id": 1, "eos_token_id": 2, "temperature": 0.7,
                   "top_p": 0.9, "top_k": 40, "transformers_version": "4.46.0"}, f, indent=2)
    with open(os.path.join(folder, "tokenizer.model"), "wb") as f:
        f.write(sp_model)
    with open(os.path.join(folder, "tokenizer_config.json"), "w") as f:
        json.dump(tokenizer_config(case), f, indent=2)
    if case.get("tokenizer_json"):
        with open(os.path.join(folder, "tokenizer.json"), "w") as f:
            json.dump(tokenizer_json(case), f, indent=2)


def convert(out_dir, name, case, hfref, llama_cpp, llama_quantize):
    env = dict(os.environ, PYTHONPATH=os.path.join(hfref, "shim"))
    for outtype in case["outtypes"]:
        if outtype.isupper():
            f16 = os.path.join(out_dir, f"{name}.tmp-f16.gguf")
            subprocess.run(["/usr/bin/python3", os.path.join(hfref, "convert.py"), llama_cpp, os.path.join(out_dir, name),
                            "--outtype", "f16", "--outfile", f16], env=env, check=True, capture_output=True)
            subprocess.run([llama_quantize, f16, os.path.join(out_dir, f"{name}.{outtype}.gguf"), outtype], check=True,
                           capture_output=True)
            os.remove(f16)
            continue
        subprocess.run(["/usr/bin/python3", os.path.join(hfref, "convert.py"), llama_cpp, os.path.join(out_dir, name),
                        "--outtype", outtype, "--outfile", os.path.join(out_dir, f"{name}.{outtype}.gguf")],
                       env=env, check=True, capture_output=True)


def main():
    out_dir = sys.argv[1]
    sp_model = train_tokenizer(384)
    for name, case in CASES.items():
        make_case(out_dir, name, case, sp_model)
    if len(sys.argv) > 2 and sys.argv[2] == "--convert":
        hfref, llama_cpp = sys.argv[3], sys.argv[4]
        llama_quantize = sys.argv[5] if len(sys.argv) > 5 else os.path.join(llama_cpp, "build/bin/llama-quantize")
        for name, case in CASES.items():
            convert(out_dir, name, case, hfref, llama_cpp, llama_quantize)


if __name__ == "__main__":
    main()
