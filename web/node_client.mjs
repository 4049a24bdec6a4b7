// Node client for a calltune ONNX export, offline: reads a job as JSON on stdin
//   {"model_dir": "...", "dtype": "fp32"|"fp16"|"q8"|"q4", "tools": [...], "requests": ["..."],
//    "max_new_tokens": 64, "grammar": null}   (grammar: `python -m calltune.web_grammar` output: constrained)
// and prints one JSON object per request on stdout: {request, prompt, ids, text, calls, content, error, seconds}.
// Usage: node web/node_client.mjs < job.json

import { text } from 'node:stream/consumers';

import { localModelId, transformers } from './node_local.mjs';
import { callTools, loadToolCaller } from './toolcall.js';

const job = JSON.parse(await text(process.stdin));
const caller = await loadToolCaller(transformers, localModelId(job.model_dir), { dtype: job.dtype ?? 'fp32' });
for (const request of job.requests) {
  const result = await callTools(caller, request, job.tools, { maxNewTokens: job.max_new_tokens ?? 64, grammar: job.grammar ?? null });
  process.stdout.write(JSON.stringify({ request, ...result }) + '\n');
}
