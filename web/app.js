// The page: load the exported model with Transformers.js (WASM), take a request, show the tool call.
// Query parameters: ?dtype=fp32|fp16|q8|q4 (default q4) picks onnx/model.onnx, model_fp16.onnx,
// model_quantized.onnx or model_q4.onnx; ?tokens=N bounds generation (default 64). When the server
// has the tools' call grammar (/grammar.json, serve.mjs --grammar) replies are decoded under it
// (web/grammar.js); ?constrain=0 turns that off.

import * as transformers from '/vendor/transformers/transformers.js';

import { callTools, loadToolCaller } from './toolcall.js';

const query = new URLSearchParams(location.search);
const dtype = query.get('dtype') ?? 'q4';
const maxNewTokens = Number(query.get('tokens') ?? 64);
const constrain = query.get('constrain') !== '0';
const $ = (id) => document.getElementById(id);

function setState(state, message) {
  document.body.dataset.state = state;
  $('status').textContent = message;
}

function configure() {
  const { env } = transformers;
  env.allowRemoteModels = false;
  env.allowLocalModels = true;
  env.localModelPath = '/';
  const wasm = env.backends.onnx.wasm;
  wasm.wasmPaths = {
    mjs: '/vendor/ort/ort-wasm-simd-threaded.asyncify.mjs',
    wasm: '/vendor/ort/ort-wasm-simd-threaded.asyncify.wasm',
  };
  wasm.numThreads = self.crossOriginIsolated ? Math.min(4, navigator.hardwareConcurrency || 1) : 1;
}

/** OpenAI function tools, whether the file holds them or bare {name, description, parameters}. */
async function loadTools() {
  const response = await fetch('/tools.json');
  if (!response.ok) throw new Error(`tools.json: HTTP ${response.status}`);
  const tools = (await response.json()).map((t) => (t.type === 'function' ? t : { type: 'function', function: t }));
  $('tools').replaceChildren(...tools.map(({ function: f }) => {
    const item = document.createElement('li');
    item.innerHTML = '<code></code> — <span></span>';
    item.querySelector('code').textContent = f.name;
    item.querySelector('span').textContent = f.description ?? '';
    return item;
  }));
  return tools;
}

/** The tools' call grammar (null: the server has none, or ?constrain=0). */
async function loadGrammar() {
  if (!constrain) return null;
  const response = await fetch('/grammar.json');
  if (!response.ok) throw new Error(`grammar.json: HTTP ${response.status}`);
  return response.json();
}

function progress(event) {
  if (event.status === 'progress' && event.file?.endsWith('.onnx')) {
    $('status').textContent = `Loading ${event.file}: ${Math.round(event.progress)}%`;
  }
}

function show(result) {
  $('answer').hidden = false;
  $('call').textContent = result.calls.length
    ? JSON.stringify(result.calls.length === 1 ? result.calls[0] : result.calls, null, 2)
    : `(no tool call${result.error ? `: ${result.error}` : ''})`;
  $('raw').textContent = result.text;
  $('answer-meta').textContent = `${result.ids.length} tokens in ${result.seconds.toFixed(2)} s` +
    (result.content ? ` · text: ${result.content}` : '');
}

async function main() {
  configure();
  $('dtype').textContent = dtype;
  const [tools, grammar, caller] = await Promise.all([loadTools(), loadGrammar(),
    loadToolCaller(transformers, 'model', { dtype, device: 'wasm', progress })]);
  $('constrained').textContent = grammar ? 'constrained to the tools\' schemas' : 'unconstrained';
  setState('ready', `Ready (${self.crossOriginIsolated ? 'cross-origin isolated, threaded' : 'single thread'}).`);
  $('send').disabled = false;
  $('ask').addEventListener('submit', async (event) => {
    event.preventDefault();
    $('send').disabled = true;
    setState('busy', 'Generating…');
    try {
      const result = await callTools(caller, $('request').value.trim(), tools, { maxNewTokens, grammar });
      show(result);
      setState('done', result.calls.length ? `Called ${result.calls.map((c) => c.name).join(', ')}.` : 'No tool call.');
    } catch (error) {
      setState('error', `Generation failed: ${error.message}`);
    } finally {
      $('send').disabled = false;
    }
  });
}

main().catch((error) => setState('error', `Could not start: ${error.message}`));
