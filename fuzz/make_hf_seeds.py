#!/usr/bin/env python3
"""Seeds for the hf fuzz target: every checkpoint config in tests/data/hf, shrunk to a few values per tensor,
with a consistent safetensors file (and an index for the sharded case), packed as hf_fuzzer.cpp reads them:
u16 config length | u16 index length | config.json | index | safetensors. Python standard library only.

usage: make_hf_seeds.py TESTS_DATA_HF_DIR OUT_DIR
"""
import json
import os
import struct
import sys

DTYPE_BYTES = {"F32": 4, "F16": 2, "BF16": 2}


def tensors_for(cfg):
    arch = cfg["architectures"][0]
    h, ff, heads, kv, hd, vocab = 8, 8, 2, 1, 4, 16
    cfg.update(hidden_size=h, intermediate_size=ff, num_attention_heads=heads, num_key_value_heads=kv,
               num_hidden_layers=1, vocab_size=vocab)
    if "head_dim" in cfg:
        cfg["head_dim"] = hd
    if isinstance(cfg.get("rope_scaling"), dict) and "long_factor" in cfg["rope_scaling"]:
        cfg["rope_scaling"]["long_factor"] = [1.0, 1.5]
        cfg["rope_scaling"]["short_factor"] = [1.0, 1.25]
    out = [("model.embed_tokens.weight", [vocab, h])]
    p = "model.layers.0."
    if arch == "Phi3ForCausalLM":
        out += [(p + "self_attn.qkv_proj.weight", [(heads + 2 * kv) * hd, h]), (p + "mlp.gate_up_proj.weight", [2 * ff, h])]
    else:
        out += [(p + "self_attn.q_proj.weight", [heads * hd, h]), (p + "self_attn.k_proj.weight", [kv * hd, h]),
                (p + "self_attn.v_proj.weight", [kv * hd, h]), (p + "mlp.gate_proj.weight", [ff, h]),
                (p + "mlp.up_proj.weight", [ff, h])]
    out += [(p + "self_attn.o_proj.weight", [h, heads * hd]), (p + "mlp.down_proj.weight", [h, ff]),
            (p + "input_layernorm.weight", [h]), (p + "post_attention_layernorm.weight", [h]), ("model.norm.weight", [h])]
    if arch == "Gemma2ForCausalLM":
        out += [(p + "pre_feedforward_layernorm.weight", [h]), (p + "post_feedforward_layernorm.weight", [h])]
    if arch == "Qwen2ForCausalLM":
        out += [(p + "self_attn.q_proj.bias", [heads * hd])]
    if arch == "Qwen3ForCausalLM":
        out += [(p + "self_attn.q_norm.weight", [hd]), (p + "self_attn.k_norm.weight", [hd])]
    if not cfg.get("tie_word_embeddings"):
        out.append(("lm_head.weight", [vocab, h]))
    return out


def safetensors(tensors, dtype):
    header, offset, data = {}, 0, b""
    for i, (name, shape) in enumerate(tensors):
        n = 1
        for d in shape:
            n *= d
        size = n * DTYPE_BYTES[dtype]
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + size]}
        # Small distinct values (0x3c00 is 1.0 in f16, 0x3f80 1.0 in bf16; any pattern is a valid float).
        data += bytes((i * 7 + k) % 251 for k in range(size))
        offset += size
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + data


def main():
    src, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    for case in sorted(os.listdir(src)):
        path = os.path.join(src, case, "config.json")
        if not os.path.isfile(path):
            continue
        cfg = json.load(open(path))
        dtype = {"float32": "F32", "float16": "F16", "bfloat16": "BF16"}.get(cfg.get("torch_dtype"), "F32")
        tensors = tensors_for(cfg)
        weights = safetensors(tensors, dtype)
        config = json.dumps(cfg).encode()
        index = b""
        if os.path.isfile(os.path.join(src, case, "model.safetensors.index.json")):
            index = json.dumps({"metadata": {"total_size": len(weights)},
                                "weight_map": {n: "model-00001-of-00001.safetensors" for n, _ in tensors}}).encode()
        with open(os.path.join(out, case + ".seed"), "wb") as f:
            f.write(struct.pack("<HH", len(config), len(index)) + config + index + weights)


if __name__ == "__main__":
    main()
