// Encodes texts with HuggingFace's own tokenizers.js and a tokenizer.json written by
// `hydra tokenizer-train`, and writes the ids as the fixture the C++ tests compare Hydra's ids with
// (run by scripts/make_trained_tokenizer_fixture.sh). The texts are every GPT-2 case of
// expected_ids.json (whitespace runs, digits, contractions, scripts, emoji, code, special tokens, prose,
// random strings) plus a few written for this fixture. Exits non-zero if tokenizers.js does not decode
// its own ids back to the text (then the file would not mean in HuggingFace's format what Hydra reads).
//
//   node trained_tokenizer_ids.mjs NODE_MODULES_DIR FIXTURE_DIR
import fs from 'fs';
import path from 'path';
import { pathToFileURL } from 'url';

const [nodeModules, dir] = process.argv.slice(2);
const { Tokenizer } = await import(pathToFileURL(path.join(nodeModules, '@huggingface/tokenizers/dist/tokenizers.mjs')).href);

const file = 'trained.tokenizer.json';
const hf = new Tokenizer(JSON.parse(fs.readFileSync(path.join(dir, file), 'utf8')), {});
const expected = JSON.parse(fs.readFileSync(path.join(dir, 'expected_ids.json'), 'utf8'));
const texts = expected.gpt2.map((c) => ({ name: c.name, text: c.text }));
texts.push(
  { name: 'trained: words of the training text', text: 'the tokenizer, the tokenizers and the tokens' },
  { name: 'trained: special token between documents', text: 'first<|endoftext|>second <|endoftext|> third' },
  { name: 'trained: special token text twice in a row', text: '<|endoftext|><|endoftext|>' },
);
let failures = 0;
const cases = texts.map(({ name, text }) => {
  const ids = hf.encode(text).ids;
  // (decode refuses an empty list; its default clean-up would drop spaces before punctuation)
  if ((ids.length ? hf.decode(ids, { clean_up_tokenization_spaces: false }) : '') !== text) {
    console.log(`tokenizers.js does not decode case '${name}' back to its text`);
    failures++;
  }
  return { name, text, ids };
});
// One case per line, so a regenerated fixture diffs readably.
const out = `{"tokenizer": "${file}", "encoder": "@huggingface/tokenizers", "cases": [\n` +
  cases.map((c) => JSON.stringify(c)).join(',\n') + '\n]}\n';
fs.writeFileSync(path.join(dir, 'trained_ids.json'), out);
console.log(`trained_ids.json: ${cases.length} cases`);
if (failures) process.exit(1);
