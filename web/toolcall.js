// Run a calltune ONNX export with Transformers.js: render the request with the model's own chat
// template and the tools, generate greedily, parse the FunctionGemma call. Shared by the page
// (web/app.js) and the Node client (web/node_client.mjs); the caller passes the Transformers.js
// module, so the same code runs on onnxruntime-web (WASM) and onnxruntime-node.

import { STOP_MARKERS, parseFunctionGemma } from './functiongemma.js';
import { Constraint, Vocabulary, constraintProcessor } from './grammar.js';

// FunctionGemma switches tool calling on with this developer text (shared/functiongemma/FORMAT.md).
export const SYSTEM_PROMPT = 'You are a model that can do function calling with the following functions';

/** Tokenizer + model from `modelId` (resolved under env.localModelPath), ONNX file chosen by dtype. */
export async function loadToolCaller(transformers, modelId, { dtype = 'fp32', device, progress } = {}) {
  const { AutoTokenizer, AutoModelForCausalLM } = transformers;
  const tokenizer = await AutoTokenizer.from_pretrained(modelId);
  const options = { dtype, progress_callback: progress };
  if (device) options.device = device;
  const model = await AutoModelForCausalLM.from_pretrained(modelId, options);
  return { transformers, tokenizer, model, dtype };
}

/** The prompt text, rendered by the chat template in tokenizer_config.json. */
export function renderPrompt(tokenizer, request, tools, system = SYSTEM_PROMPT) {
  const messages = [{ role: 'system', content: system }, { role: 'user', content: request }];
  return tokenizer.apply_chat_template(messages, { tools, add_generation_prompt: true, tokenize: false });
}

function cutAtStop(text) {
  const ends = STOP_MARKERS.map((marker) => text.indexOf(marker)).filter((i) => i >= 0);
  return ends.length ? text.slice(0, Math.min(...ends)) : text;
}

/** Greedy generation for one request: { prompt, ids, text, calls, content, error, seconds, constrained }.
 *  `grammar` (the JSON of `python -m calltune.web_grammar` for these tools): decode under it
 *  (web/grammar.js), so every call names a declared tool with arguments its schema allows. */
export async function callTools(caller, request, tools, { maxNewTokens = 64, grammar = null } = {}) {
  const { tokenizer, model } = caller;
  const started = performance.now();
  const prompt = renderPrompt(tokenizer, request, tools);
  const inputs = tokenizer(prompt, { add_special_tokens: false });
  const promptLength = inputs.input_ids.dims.at(-1);
  const options = { ...inputs, max_new_tokens: maxNewTokens, do_sample: false };
  if (grammar) {
    caller.vocabulary ??= new Vocabulary(tokenizer);
    const endIds = [].concat(model.generation_config?.eos_token_id ?? tokenizer.eos_token_id).map(Number);
    const constraint = new Constraint(grammar, caller.vocabulary, { endIds, maxNewTokens });
    options.logits_processor = [constraintProcessor(caller.transformers, constraint, promptLength)];
  }
  const output = await model.generate(options);
  const ids = Array.from(output.tolist()[0].slice(promptLength), Number);
  const text = cutAtStop(tokenizer.decode(ids, { skip_special_tokens: false }));
  const parsed = parseFunctionGemma(text);
  return { prompt, ids, text, ...parsed, constrained: Boolean(grammar), seconds: (performance.now() - started) / 1000 };
}
