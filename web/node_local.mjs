// Node, offline: Transformers.js reads a model or tokenizer from a local directory, never the hub.
// Shared by the Node client, the tests' drivers and the benchmarks.

import path from 'node:path';

import * as transformers from '@huggingface/transformers';

export { transformers };

/** Point Transformers.js at `dir`'s parent, remote models off; returns the id to load `dir` by. */
export function localModelId(dir) {
  const full = path.resolve(dir);
  transformers.env.allowRemoteModels = false;
  transformers.env.allowLocalModels = true;
  transformers.env.localModelPath = path.dirname(full) + path.sep;
  return path.basename(full);
}

/** The tokenizer saved in `dir`. */
export function localTokenizer(dir) {
  return transformers.AutoTokenizer.from_pretrained(localModelId(dir));
}
