// The browser's constraint alone (web/grammar.js), timed per generated token: reads a job
// {"tokenizer_dir", "grammar", "replies": [text]} on stdin, replays each reply token by token
// through Constraint.choose + accept with scores that put the reply's own next token first (a
// model that agrees with the grammar: the usual case), and once per reply (its middle step) with
// that token pushed to the bottom and 64 random tokens on top: where the grammar refuses them all
// (structure: a key, a name, a marker) the choice comes from the vocabulary walk (the worst case).
// Prints one JSON line: {vocabulary_s, tokens, agree_ms_per_token, walk_ms: [...], top_ms: [...]}.
// Run by bench/web_constraint.py.

import { text } from 'node:stream/consumers';

import { Constraint, Vocabulary } from '../web/grammar.js';
import { localTokenizer } from '../web/node_local.mjs';

const job = JSON.parse(await text(process.stdin));
const tokenizer = await localTokenizer(job.tokenizer_dir);

let started = performance.now();
const vocabulary = new Vocabulary(tokenizer);
const vocabularySeconds = (performance.now() - started) / 1000;
const vocab = tokenizer._tokenizerJSON.model.vocab; // an object for BPE (where "length" is a token)
const size = Array.isArray(vocab) ? vocab.length : Object.keys(vocab).length;
const scores = new Float32Array(size + 512);
let random = 12345; // a fixed pseudo-random background, so runs compare
for (let i = 0; i < scores.length; i++) { random = (random * 1103515245 + 12345) % 2147483648; scores[i] = random / 2147483648; }

let tokens = 0;
let agreeMs = 0;
const walkMs = []; // steps where every random top candidate was refused: the vocabulary walk
const topMs = []; // steps where one of them was allowed (inside a string or free text)
for (const reply of job.replies) {
  const ids = tokenizer(reply, { add_special_tokens: false }).input_ids.tolist()[0].map(Number);
  const constraint = new Constraint(job.grammar, vocabulary, { maxNewTokens: null });
  const walkAt = Math.floor(ids.length / 2);
  for (let i = 0; i < ids.length; i++) {
    const saved = scores[ids[i]];
    scores[ids[i]] = 10; // the model's favourite
    started = performance.now();
    const choice = constraint.choose(scores);
    agreeMs += performance.now() - started;
    scores[ids[i]] = saved;
    if (choice !== ids[i]) throw new Error(`reply ${JSON.stringify(reply)}: token ${i} refused (chose ${choice})`);
    if (i === walkAt) { // the same step with the favourite last: every top candidate refused
      scores[ids[i]] = -10;
      const top = [...scores.keys()].sort((a, b) => scores[b] - scores[a]).slice(0, 64);
      const savedTop = top.map((id) => scores[id]);
      for (const id of top) scores[id] = 5; // allowed or not, they are checked first
      started = performance.now();
      const picked = constraint.choose(scores);
      const ms = performance.now() - started;
      (top.includes(picked) ? topMs : walkMs).push(ms);
      top.forEach((id, k) => { scores[id] = savedTop[k]; });
      scores[ids[i]] = saved;
    }
    started = performance.now();
    constraint.accept(ids[i]);
    agreeMs += performance.now() - started;
    tokens += 1;
  }
}
process.stdout.write(JSON.stringify({ vocabulary_s: vocabularySeconds, tokens, agree_ms_per_token: agreeMs / tokens, walk_ms: walkMs, top_ms: topMs }) + '\n');
