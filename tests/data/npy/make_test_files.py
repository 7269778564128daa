#!/usr/bin/env python3
"""Writes the hand-made .npy/.npz (and small safetensors) test files, with the Python standard library only.

Values follow closed formulas so the C++ tests can compute them independently:
  value(b, t, f) = ((b * 7 + t * 3 + f) % 23 - 11) * 0.125      (exact in float16, float32 and float64)
Run from this folder:  python3 make_test_files.py [/path/to/shared/reference/calibration/data/imatrix.f32]
"""
import io
import json
import struct
import sys
import zipfile


def value(b, t, f):
    return ((b * 7 + t * 3 + f) % 23 - 11) * 0.125


def npy_bytes(descr, shape, values, version=1):
    """A .npy file: magic, version, header length, dict literal padded to a multiple of 64 with spaces + '\\n'."""
    dims = ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "")
    text = "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }" % (descr, dims)
    preamble = 10 if version == 1 else 12
    total = preamble + len(text) + 1
    text += " " * ((64 - total % 64) % 64) + "\n"
    head = b"\x93NUMPY" + bytes([version, 0])
    head += struct.pack("<H", len(text)) if version == 1 else struct.pack("<I", len(text))
    fmt = {"<f4": "f", "<f2": "e", "<f8": "d"}[descr]
    return head + text.encode("latin1") + struct.pack("<%d%s" % (len(values), fmt), *values)


def grid(batches, tokens, features):
    return [value(b, t, f) for b in range(batches) for t in range(tokens) for f in range(features)]


def write(path, data):
    with open(path, "wb") as out:
        out.write(data)


def write_npz(path, members, compression):
    # numpy.savez opens each member with force_zip64=True; do the same so the zip64 extra fields are exercised.
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        for name, data in members:
            with zf.open(name, "w", force_zip64=True) as member:
                member.write(data)


def safetensors_bytes(tensors):
    """tensors: list of (name, dtype, shape, raw bytes); header padded with spaces to a multiple of 8."""
    header, offset, blobs = {}, 0, []
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        blobs.append(raw)
    text = json.dumps(header, separators=(",", ":"))
    text += " " * ((8 - len(text) % 8) % 8)
    return struct.pack("<Q", len(text)) + text.encode() + b"".join(blobs)


def main():
    # 2-D float32: one batch of 20 tokens x 8 features.
    write("blk.0.attn_q.weight.npy", npy_bytes("<f4", (20, 8), grid(1, 20, 8)))
    # 3-D float16: 2 batches of 16 tokens x 4 features.
    write("blk.0.ffn_down.weight.npy", npy_bytes("<f2", (2, 16, 4), grid(2, 16, 4)))
    # Format version 2.0 header (u32 length), float64 [3, 5].
    write("v2.npy", npy_bytes("<f8", (3, 5), grid(1, 3, 5), version=2))
    members = [("blk.1.attn_k.weight.npy", npy_bytes("<f4", (3, 17, 6), grid(3, 17, 6))),
               ("blk.1.attn_v.weight.npy", npy_bytes("<f2", (18, 6), grid(1, 18, 6)))]
    write_npz("stored.npz", members, zipfile.ZIP_STORED)
    write_npz("deflated.npz", members, zipfile.ZIP_DEFLATED)

    if len(sys.argv) > 1:
        # The calibration reference's imatrix dataset (4 ragged batches of [tokens, 64] float32), one batch per
        # safetensors file, every batch named blk.0.attn_q.weight.
        raw = open(sys.argv[1], "rb").read()
        shapes, offset = [(32, 64), (32, 64), (8, 64), (48, 64)], 0
        for i, (tokens, features) in enumerate(shapes):
            size = tokens * features * 4
            tensor = ("blk.0.attn_q.weight", "F32", [tokens, features], raw[offset:offset + size])
            write("../safetensors/imatrix-batch%d.safetensors" % i, safetensors_bytes([tensor]))
            offset += size


if __name__ == "__main__":
    main()
