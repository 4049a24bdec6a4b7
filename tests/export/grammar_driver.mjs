// Check texts against web/grammar.js: reads {"tokenizer_dir", "cases": [{grammar, text}]} on stdin,
// tokenizes each text (special tokens parsed) and feeds its tokens to a Constraint one by one;
// prints {"accepts": bool, "at": index of the first token refused or null} per case.
// Usage: node tests/export/grammar_driver.mjs < job.json

import { text } from 'node:stream/consumers';

import { Constraint, Vocabulary, accepts } from '../../web/grammar.js';
import { localTokenizer } from '../../web/node_local.mjs';

const job = JSON.parse(await text(process.stdin));
const tokenizer = await localTokenizer(job.tokenizer_dir);
const vocabulary = new Vocabulary(tokenizer);
for (const { grammar, text: reply } of job.cases) {
  const constraint = new Constraint(grammar, vocabulary);
  const ids = tokenizer(reply, { add_special_tokens: false }).input_ids.tolist()[0].map(Number);
  const at = ids.findIndex((id) => {
    if (!constraint.allowed(id)) return true;
    constraint.accept(id);
    return false;
  });
  process.stdout.write(JSON.stringify({ accepts: at < 0 && accepts(constraint.threads), at: at < 0 ? null : at }) + '\n');
}
