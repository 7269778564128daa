#!/usr/bin/env python3
"""Independent GGUF header dump (standard library only), used to obtain the expected values recorded in
gguf reader tests. Prints version, counts, alignment, every key with its type, every tensor with type, shape
and offset, the data-section start and the file size. Handles v1 (32-bit counts) and the byte-swapped magic."""
import struct
import sys

TYPE_NAMES = {0: "u8", 1: "i8", 2: "u16", 3: "i16", 4: "u32", 5: "i32", 6: "f32", 7: "bool", 8: "string",
              9: "array", 10: "u64", 11: "i64", 12: "f64"}
FIXED = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<B", 10: "<Q", 11: "<q", 12: "<d"}


class Reader:
    def __init__(self, data, v1):
        self.data, self.pos, self.v1 = data, 0, v1

    def take(self, fmt):
        (value,) = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += struct.calcsize(fmt)
        return value

    def count(self):
        return self.take("<I" if self.v1 else "<Q")

    def string(self):
        n = self.count()
        s = self.data[self.pos:self.pos + n]
        self.pos += n
        return s.decode("utf-8", "replace")

    def value(self, t):
        if t in FIXED:
            return self.take(FIXED[t])
        if t == 8:
            return self.string()
        if t == 9:
            et = self.take("<I")
            n = self.count()
            return ("array", TYPE_NAMES[et], n, [self.value(et) for _ in range(n)])
        raise ValueError(f"unknown value type {t} at {self.pos}")


def main(path):
    data = open(path, "rb").read()
    magic = data[:4]
    version = struct.unpack_from("<I", data, 4)[0]
    r = Reader(data, version == 1)
    r.pos = 8
    n_tensors, n_kv = r.count(), r.count()
    print(f"magic {magic!r} version {version} n_tensors {n_tensors} n_kv {n_kv}")
    alignment = 32
    for _ in range(n_kv):
        key = r.string()
        t = r.take("<I")
        v = r.value(t)
        if key == "general.alignment":
            alignment = v
        if isinstance(v, tuple):
            print(f"kv {key} array[{v[1]}] {v[2]} first {v[3][:3]!r}")
        else:
            print(f"kv {key} {TYPE_NAMES[t]} {v!r}")
    for _ in range(n_tensors):
        name = r.string()
        n_dims = r.take("<I")
        shape = [r.count() if r.v1 else r.take("<q") for _ in range(n_dims)]
        ttype = r.take("<I")
        offset = r.take("<Q")
        print(f"tensor {name} type {ttype} shape {shape} offset {offset}")
    end = r.pos
    data_start = (end + alignment - 1) // alignment * alignment
    print(f"header_end {end} alignment {alignment} data_offset {data_start} file_size {len(data)}")


if __name__ == "__main__":
    main(sys.argv[1])
