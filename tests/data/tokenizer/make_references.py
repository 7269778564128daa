#!/usr/bin/env python3
"""Makes llama-tokenize-cases.json and pieces/: the token ids llama.cpp's llama-tokenize gives for the texts in texts/ with
vocabulary variants (the committed vocab files with a few tokenizer.ggml.* keys replaced: every pre-tokenizer
llama.cpp accepts on the GPT-2 vocabulary, the UGM and RWKV models and flag changes on the SPM one, WPM
normalizer options). Standard library only.

  tests/data/tokenizer/make_references.py LLAMA_TOKENIZE [PRE_NAME...]

LLAMA_TOKENIZE is llama.cpp's build/bin/llama-tokenize (the references were made at commit 34af94c). The pre-
tokenizer names are those llama.cpp's llama-vocab.cpp accepts (src/tokenizer/pre_tokenizer_table.cpp lists
them); without arguments they are read from that file. Variant files go to a temporary folder and are removed.
"""
import json, os, re, struct, subprocess, sys, tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.dirname(HERE)
ROOT = os.path.dirname(os.path.dirname(DATA))
VOCABS = {
    'gpt-2': os.path.join(HERE, 'ggml-vocab-gpt-2.gguf'),
    'gpt-neox': os.path.join(HERE, 'ggml-vocab-gpt-neox.gguf'),
    'phi-3': os.path.join(HERE, 'ggml-vocab-phi-3.gguf'),
    'llama-spm': os.path.join(DATA, 'gguf', 'vocab', 'ggml-vocab-llama-spm.gguf'),
    'bert-bge': os.path.join(DATA, 'gguf', 'vocab', 'ggml-vocab-bert-bge.gguf'),
}
TEXTS = ['multilingual.txt', 'whitespace.txt', 'digits.txt', 'code.txt', 'apostrophes.txt', 'invalid.bin',
         'mixed_bytes.bin']

# GGUF metadata, enough for vocabulary-only files (no tensors).
SCALAR = {0: 'B', 1: 'b', 2: 'H', 3: 'h', 4: 'I', 5: 'i', 6: 'f', 7: '?', 10: 'Q', 11: 'q', 12: 'd'}

def read_value(buf, pos, vtype):
    if vtype in SCALAR:
        return pos + struct.calcsize('<' + SCALAR[vtype])
    if vtype == 8:
        (n,) = struct.unpack_from('<Q', buf, pos)
        return pos + 8 + n
    if vtype == 9:
        etype, count = struct.unpack_from('<IQ', buf, pos)
        pos += 12
        for _ in range(count):
            pos = read_value(buf, pos, etype)
        return pos
    raise ValueError('value type %d' % vtype)

def read_kvs(path):
    buf = open(path, 'rb').read()
    magic, version, n_tensors, n_kv = struct.unpack_from('<4sIqq', buf, 0)
    assert magic == b'GGUF' and version == 3 and n_tensors == 0, path
    pos, kvs = 24, []
    for _ in range(n_kv):
        (n,) = struct.unpack_from('<Q', buf, pos)
        key = buf[pos + 8:pos + 8 + n].decode()
        pos += 8 + n
        (vtype,) = struct.unpack_from('<I', buf, pos)
        end = read_value(buf, pos + 4, vtype)
        kvs.append((key, buf[pos:end]))  # type tag + value bytes
        pos = end
    return kvs

def encode(value):
    if value is None:
        return None
    if isinstance(value, bool):
        return struct.pack('<IB', 7, int(value))
    if isinstance(value, int):
        return struct.pack('<II', 4, value)
    data = value.encode()
    return struct.pack('<IQ', 8, len(data)) + data

def write_variant(src, overrides, dst):
    kvs = [(k, v) for k, v in read_kvs(src) if k not in overrides]
    kvs += [(k, encode(v)) for k, v in overrides.items() if v is not None]
    out = bytearray(struct.pack('<4sIqq', b'GGUF', 3, 0, len(kvs)))
    for key, raw in kvs:
        out += struct.pack('<Q', len(key)) + key.encode() + raw
    open(dst, 'wb').write(out)

def variants(pre_names):
    for name in pre_names:
        yield 'gpt-2', {'tokenizer.ggml.pre': name}
    yield 'gpt-2', {'tokenizer.ggml.pre': None}
    yield 'gpt-2', {'tokenizer.ggml.model': 'whitespace', 'tokenizer.ggml.pre': 'whitespace'}
    yield 'gpt-2', {'tokenizer.ggml.model': 'gemma4'}
    yield 'gpt-2', {'tokenizer.ggml.add_bos_token': True, 'tokenizer.ggml.add_eos_token': True}
    yield 'gpt-neox', {}
    yield 'phi-3', {}
    yield 'llama-spm', {}
    yield 'llama-spm', {'tokenizer.ggml.model': 't5'}
    yield 'llama-spm', {'tokenizer.ggml.model': 't5', 'tokenizer.ggml.remove_extra_whitespaces': True}
    yield 'llama-spm', {'tokenizer.ggml.model': 'rwkv'}
    yield 'llama-spm', {'tokenizer.ggml.add_space_prefix': False}
    yield 'llama-spm', {'general.name': 'Phi3-mini'}
    yield 'bert-bge', {}
    yield 'bert-bge', {'tokenizer.ggml.normalizer.lowercase': False}
    yield 'bert-bge', {'tokenizer.ggml.normalizer.strip_accents': False}

def main():
    llama_tokenize = sys.argv[1]
    pre_names = sys.argv[2:]
    if not pre_names:
        table = open(os.path.join(ROOT, 'src', 'tokenizer', 'pre_tokenizer_table.cpp')).read()
        for names in re.findall(r'\.names = \{([^}]*)\}', table):
            pre_names += re.findall(r'"([^"]+)"', names)
    cases = []
    with tempfile.TemporaryDirectory() as tmp:
        for n, (vocab, overrides) in enumerate(variants(pre_names)):
            path = os.path.join(tmp, 'variant-%d.gguf' % n)
            write_variant(VOCABS[vocab], overrides, path)
            for text in TEXTS:
                for parse_special in (True, False):
                    cmd = [llama_tokenize, '-m', path, '-f', os.path.join(HERE, 'texts', text), '--ids', '--no-escape',
                           '--log-disable']
                    if not parse_special:
                        cmd.append('--no-parse-special')
                    case = {'vocab': vocab, 'overrides': overrides, 'text': text, 'parse_special': parse_special}
                    try:
                        # llama.cpp's RWKV tokenizer loops forever (and grows) on a byte that starts a token path
                        # no token completes: such runs are stopped and counted as failures.
                        run = subprocess.run(cmd, capture_output=True, timeout=60)
                    except subprocess.TimeoutExpired:
                        run = None
                    if run is not None and run.returncode == 0:
                        case['ids'] = json.loads(run.stdout)
                    else:
                        case['llama_tokenize_fails'] = True  # aborts, hangs or refuses the vocabulary: we must refuse
                    cases.append(case)
            print(vocab, overrides, file=sys.stderr)
    # llama-tokenize's listing (one "%6d -> 'piece'" line per token) for the piece texts.
    os.makedirs(os.path.join(HERE, 'pieces'), exist_ok=True)
    for vocab in ('gpt-2', 'llama-spm', 'bert-bge', 'phi-3'):
        run = subprocess.run([llama_tokenize, '-m', VOCABS[vocab], '-f', os.path.join(HERE, 'texts', 'multilingual.txt'),
                              '--no-escape', '--log-disable'], capture_output=True, check=True)
        open(os.path.join(HERE, 'pieces', vocab + '.multilingual.txt'), 'wb').write(run.stdout)
    doc = {'made_by': 'make_references.py with llama.cpp 34af94c llama-tokenize -f TEXT --ids --no-escape '
                      '[--no-parse-special] (BOS/EOS as the vocabulary says)',
           'cases': cases}
    with open(os.path.join(HERE, 'llama-tokenize-cases.json'), 'w') as f:
        json.dump(doc, f, separators=(',', ':'))
        f.write('\n')

if __name__ == '__main__':
    main()
