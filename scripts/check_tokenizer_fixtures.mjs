// Cross-checks the tokenizer fixtures with two more implementations (run by
// scripts/make_tokenizer_fixtures.sh after make_tokenizer_fixtures.js; exits non-zero on any mismatch):
//   - HuggingFace's own tokenizers.js loads the generated gpt2/cl100k tokenizer.json files and must give
//     the expected ids: this checks that the files mean in HuggingFace's format what Hydra reads them as.
//     (Skipped: cases with special-token text encoded as plain text, since HuggingFace always matches
//     added tokens.)
//   - tiktoken's Rust core (the @dqbd/tiktoken WASM build, with its own gpt2/cl100k_base ranks) must give
//     the expected ids. (Skipped: texts with <|im_start|>, <|im_end|>, <|im_sep|> as allowed specials:
//     tiktoken's cl100k_base does not define them; gpt-tokenizer's does.)
//
//   node check_tokenizer_fixtures.mjs NODE_MODULES_DIR FIXTURE_DIR
import fs from 'fs';
import path from 'path';
import { createRequire } from 'module';
import { pathToFileURL } from 'url';

const [nodeModules, dir] = process.argv.slice(2);
const require = createRequire(path.join(nodeModules, 'x.js'));
const { Tokenizer } = await import(pathToFileURL(path.join(nodeModules, '@huggingface/tokenizers/dist/tokenizers.mjs')).href);
const { get_encoding } = require('@dqbd/tiktoken');

const expected = JSON.parse(fs.readFileSync(path.join(dir, 'expected_ids.json'), 'utf8'));
const same = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);
let failures = 0;
for (const [name, encodingName] of [['gpt2', 'gpt2'], ['cl100k', 'cl100k_base']]) {
  const hf = new Tokenizer(JSON.parse(fs.readFileSync(path.join(dir, `${name}.tokenizer.json`), 'utf8')), {});
  const tk = get_encoding(encodingName);
  let hfChecked = 0, tkChecked = 0;
  for (const c of expected[name]) {
    if (c.allow_special || !c.text.includes('<|')) {
      hfChecked++;
      if (!same(hf.encode(c.text).ids, c.ids)) {
        console.log(`tokenizers.js disagrees on ${name} case '${c.name}'`);
        failures++;
      }
    }
    if (!(c.allow_special && /<\|im_/.test(c.text))) {
      tkChecked++;
      const ids = Array.from(c.allow_special ? tk.encode(c.text, 'all') : tk.encode(c.text, [], []));
      if (!same(ids, c.ids)) {
        console.log(`tiktoken disagrees on ${name} case '${c.name}'`);
        failures++;
      }
    }
  }
  tk.free();
  console.log(`${name}: tokenizers.js agrees on ${hfChecked} cases, tiktoken on ${tkChecked}`);
}
if (failures) {
  console.log(`${failures} disagreement(s)`);
  process.exit(1);
}
