// Static server for the calltune web page, on 127.0.0.1 only, with the COOP/COEP headers that
// give the page cross-origin isolation (WASM threads).
//
//   node web/serve.mjs [--model models/onnx_quantized] [--tools data/tools.json] [--port 8000]
//                      [--grammar web-grammar.json]   (`python -m calltune.web_grammar data/tools.json`)
//
//   /                  web/index.html        /web/...      this directory
//   /model/...         the exported model    /tools.json   the tool definitions
//   /grammar.json      the tools' call grammar (--grammar), the page decodes under it; else null
//   /vendor/transformers/...  @huggingface/transformers/dist   /vendor/ort/...  onnxruntime-web/dist
// Prints "serving http://127.0.0.1:PORT/" when ready; stops on SIGINT / SIGTERM.

import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const WEB = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.dirname(WEB);
const MODULES = path.join(ROOT, 'node_modules');

const TYPES = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.mjs': 'text/javascript',
  '.json': 'application/json', '.wasm': 'application/wasm', '.css': 'text/css',
  '.jinja': 'text/plain; charset=utf-8', '.png': 'image/png', '.svg': 'image/svg+xml',
};
const HEADERS = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
  'Cross-Origin-Resource-Policy': 'same-origin',
  'Cache-Control': 'no-store',
};

const { values: args } = parseArgs({
  options: {
    model: { type: 'string', default: path.join(ROOT, 'models', 'onnx_quantized') },
    tools: { type: 'string', default: path.join(ROOT, 'data', 'tools.json') },
    port: { type: 'string', default: '8000' },
    grammar: { type: 'string' },
  },
});

const mounts = [
  ['/vendor/transformers/', path.join(MODULES, '@huggingface', 'transformers', 'dist')],
  ['/vendor/ort/', path.join(MODULES, 'onnxruntime-web', 'dist')],
  ['/model/', path.resolve(args.model)],
  ['/web/', WEB],
];
const files = { '/': path.join(WEB, 'index.html'), '/tools.json': path.resolve(args.tools) };
if (args.grammar) files['/grammar.json'] = path.resolve(args.grammar);

/** The file a URL path names, or null when it is outside every mount. */
function resolve(urlPath) {
  if (files[urlPath]) return files[urlPath];
  for (const [prefix, dir] of mounts) {
    if (!urlPath.startsWith(prefix)) continue;
    const file = path.resolve(dir, '.' + path.posix.normalize('/' + urlPath.slice(prefix.length)));
    return file.startsWith(dir + path.sep) ? file : null;
  }
  return null;
}

function send(res, status, message) {
  res.writeHead(status, { ...HEADERS, 'Content-Type': 'text/plain; charset=utf-8' });
  res.end(message);
}

const server = http.createServer((req, res) => {
  if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, 'method not allowed');
  let urlPath;
  try {
    urlPath = decodeURIComponent(new URL(req.url, 'http://localhost').pathname);
  } catch {
    return send(res, 400, 'bad request');
  }
  if (urlPath === '/grammar.json' && !args.grammar) { // no grammar: the page decodes unconstrained
    res.writeHead(200, { ...HEADERS, 'Content-Type': 'application/json' });
    return res.end('null');
  }
  const file = resolve(urlPath);
  fs.stat(file ?? '', (err, stat) => {
    if (err || !stat.isFile()) return send(res, 404, `not found: ${urlPath}`);
    const type = TYPES[path.extname(file)] ?? 'application/octet-stream';
    res.writeHead(200, { ...HEADERS, 'Content-Type': type, 'Content-Length': stat.size });
    if (req.method === 'HEAD') return res.end();
    fs.createReadStream(file).pipe(res);
  });
});

server.listen(Number(args.port), '127.0.0.1', () => {
  console.log(`serving http://127.0.0.1:${server.address().port}/ (model ${path.resolve(args.model)}` +
    `${args.grammar ? `, constrained by ${path.resolve(args.grammar)}` : ''})`);
});
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    server.close(() => process.exit(0));
    server.closeAllConnections();
  });
}
