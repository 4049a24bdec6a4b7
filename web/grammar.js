// Constrained decoding in the browser (and Node): a request's call grammar, printed as JSON by
// `python -m calltune.web_grammar` from calltune's one grammar source (calltune/constrain), enforced
// on Transformers.js's greedy generation through its logits-processor hook.
//
// The matcher reads the reply as symbols: the text of ordinary tokens, and one private-use
// character for each special token (so <escape> matches the grammar's Token only as the <escape>
// token, never spelled out, as llguidance and the in-process llama.cpp engine match it; special
// tokens the grammar does not name are never allowed). It runs the grammar as a set of parse
// threads, each a stack of what is left to match; a symbol string is a viable prefix while some
// thread survives it. Greedy: the best of the model's top candidates the grammar allows, else the
// best allowed token of the whole vocabulary (a walk of the sorted vocabulary that prunes every
// prefix the grammar rejects). In the budget's last steps (calltune/constrain/wrapup.py) the
// grammar's required-keys-only form takes over when the reply so far fits it, and the grammar's
// closers come first. Once the grammar is complete, the model's end-of-sequence token ends it.

const SPECIAL_BASE = 0xe000; // special token k is the character SPECIAL_BASE + k
const ACCEPT = Symbol('accept'); // a thread that has matched the whole grammar
const MAX_EXPANSION = 4096; // closure steps per thread: a guard against grammars that loop on nothing
const TOP_CANDIDATES = 64; // checked first, in score order; the vocabulary walk only when none fits
const WRAP_UP_TOKENS = 24; // as calltune.constrain.wrapup
const TEXT_PROBES = ['Q', '~', '#'];
const BYTE_TOKEN = /^<0x[0-9A-F]{2}>$/;
// as calltune.constrain.grammar: what a negated character class never takes
const UNSAFE_IN_PATTERNS = '<>"\\' + String.fromCharCode(...Array.from({ length: 32 }, (_, i) => i)) + '\x7f';

const SPECIAL_END = 0xf900; // the symbols stay below it (the private-use area)
const isSymbolOfSpecial = (ch) => ch.charCodeAt(0) >= SPECIAL_BASE && ch.charCodeAt(0) < SPECIAL_END;
// Decoded text and token pieces can hold the private-use characters the symbols are taken from
// (byte tokens EE 80 B4 spell U+E034, the symbol of special token 52): read as any other character
// (U+FFFD), never as a special token, as llguidance reads a special token only from its id.
const SYMBOL_CHARS = new RegExp(`[${String.fromCharCode(SPECIAL_BASE)}-${String.fromCharCode(SPECIAL_END - 1)}]`, 'g');
const plain = (text) => text.replace(SYMBOL_CHARS, '\ufffd');

export function wrapUpTokens(maxNewTokens) {
  return Math.min(WRAP_UP_TOKENS, Math.floor(maxNewTokens / 3));
}

// --- atoms: char-level machines with step(state, ch) -> state | null and end(state) -------------

function avoiding(a, tail, ch) {
  // the last a.keep characters after `ch` (enough to see every avoided word end), or null if one ends here
  const text = tail + ch;
  if (a.avoid.some((word) => text.endsWith(word))) return null;
  return a.keep ? text.slice(-a.keep) : '';
}

const tailLength = (avoid) => Math.max(0, ...avoid.map((w) => w.length - 1));

const isControl = (ch) => ch.charCodeAt(0) < 0x20;

const ATOMS = {
  lit: { // text: its characters (code points, as the reply is read)
    init: () => 0,
    step: (a, i, ch) => (a.text[i] === ch ? i + 1 : null),
    end: (a, i) => i === a.text.length,
    more: (a, i) => i < a.text.length,
  },
  text: { // any characters (newlines too) without the avoided words; never a special token
    init: () => ({ tail: '', n: 0 }),
    step: (a, s, ch) => {
      if (isSymbolOfSpecial(ch)) return null;
      const tail = avoiding(a, s.tail, ch);
      return tail === null ? null : { tail, n: s.n + 1 };
    },
    end: (a, s) => s.n >= a.min,
    more: () => true,
  },
  json_chars: { // a JSON string's body: escapes, no raw quote, backslash or control character
    init: () => ({ tail: '', esc: 0 }),
    step: (a, s, ch) => {
      if (isSymbolOfSpecial(ch)) return null;
      if (s.esc === 1) {
        if (ch === 'u') return { tail: '', esc: 2 };
        return '"\\/bfnrt'.includes(ch) ? { tail: '', esc: 0 } : null;
      }
      if (s.esc >= 2) {
        if (!/[0-9a-fA-F]/.test(ch)) return null;
        return { tail: '', esc: s.esc === 5 ? 0 : s.esc + 1 };
      }
      if (ch === '\\') return { tail: '', esc: 1 };
      if (ch === '"' || isControl(ch)) return null;
      const tail = avoiding(a, s.tail, ch);
      return tail === null ? null : { tail, esc: 0 };
    },
    end: (a, s) => s.esc === 0,
    more: () => true,
  },
  char_class: { // one character of the ranges (negated: of none, never an unsafe one): a schema pattern's
    init: () => 0,
    step: (a, n, ch) => {
      if (n || isSymbolOfSpecial(ch)) return null;
      const inRanges = a.ranges.some(([low, high]) => ch.codePointAt(0) >= low.codePointAt(0) && ch.codePointAt(0) <= high.codePointAt(0));
      return (a.negate ? !inRanges && !UNSAFE_IN_PATTERNS.includes(ch) : inRanges) ? 1 : null;
    },
    end: (a, n) => n === 1,
    more: (a, n) => n === 0,
  },
  char_run: { // one or more characters, none whitespace, control or excluded
    init: () => 0,
    step: (a, n, ch) => (isSymbolOfSpecial(ch) || isControl(ch) || ' \t\n\r'.includes(ch) || a.exclude.includes(ch)
      ? null : n + 1),
    end: (a, n) => n >= 1,
    more: () => true,
  },
  number: { // -? (0 | [1-9][0-9]{0,d-1}) (. [0-9]{1,d})? ([eE] [-+]? [0-9]{1,3})?, as calltune/constrain/gbnf.py
    init: () => ({ p: 'sign', n: 0 }),
    step: (a, s, ch) => {
      const digit = ch >= '0' && ch <= '9';
      switch (s.p) {
        case 'sign':
          if (ch === '-') return { p: 'first', n: 0 };
        // falls through
        case 'first':
          if (ch === '0') return { p: 'zero', n: 1 };
          return digit ? { p: 'int', n: 1 } : null;
        case 'zero':
        case 'int':
          if (digit && s.p === 'int' && s.n < a.max_digits) return { p: 'int', n: s.n + 1 };
          if (a.integer) return null;
          if (ch === '.') return { p: 'dot', n: 0 };
          return ch === 'e' || ch === 'E' ? { p: 'exp', n: 0 } : null;
        case 'dot':
        case 'frac':
          if (digit && s.n < a.max_digits) return { p: 'frac', n: s.n + 1 };
          return s.p === 'frac' && (ch === 'e' || ch === 'E') ? { p: 'exp', n: 0 } : null;
        case 'exp':
          if (ch === '-' || ch === '+') return { p: 'expsign', n: 0 };
        // falls through
        case 'expsign':
        case 'expdigits':
          return digit && s.n < 3 ? { p: 'expdigits', n: s.n + 1 } : null;
        default:
          return null;
      }
    },
    end: (a, s) => ['zero', 'int', 'frac', 'expdigits'].includes(s.p),
    more: (a, s) => s.p !== 'zero' || !a.integer,
  },
};

const stateKey = (state) => (typeof state === 'object' ? JSON.stringify(state) : String(state));

// --- the grammar as parse threads ----------------------------------------------------------------

/** One grammar (the JSON of calltune.web_grammar) over a vocabulary's special tokens. */
export class Grammar {
  /** `json`: {root, rules}; `specials`: Map from a special token's text to its symbol. */
  constructor(json, specials) {
    this.rules = {};
    this.nodes = [];
    for (const [name, node] of Object.entries(json.rules)) this.rules[name] = this.compile(node, specials);
    this.root = this.rules[json.root];
    if (!this.root) throw new Error(`grammar: no root rule ${json.root}`);
    this.start = this.advanceFrom([], null);
  }

  compile(node, specials) {
    const id = this.nodes.length;
    const out = { id };
    this.nodes.push(out);
    if ('lit' in node) Object.assign(out, { atom: 'lit', text: Array.from(node.lit) });
    else if ('token' in node) Object.assign(out, { atom: 'lit', text: Array.from(specials.get(node.token) ?? node.token) });
    else if ('text' in node) Object.assign(out, { atom: 'text', avoid: node.text.avoid, keep: tailLength(node.text.avoid), min: node.text.min_chars });
    else if ('json_chars' in node) Object.assign(out, { atom: 'json_chars', avoid: node.json_chars.avoid, keep: tailLength(node.json_chars.avoid) });
    else if ('char_run' in node) Object.assign(out, { atom: 'char_run', exclude: node.char_run.exclude });
    else if ('number' in node) Object.assign(out, { atom: 'number', ...node.number });
    else if ('char_class' in node) Object.assign(out, { atom: 'char_class', ...node.char_class });
    else if ('seq' in node) out.seq = node.seq.map((n) => this.compile(n, specials));
    else if ('alt' in node) out.alt = node.alt.map((n) => this.compile(n, specials));
    else if ('repeat' in node) Object.assign(out, { repeat: this.compile(node.repeat, specials), min: node.min, max: node.max });
    else if ('ref' in node) out.ref = node.ref;
    else throw new Error(`grammar: unknown node ${JSON.stringify(node).slice(0, 80)}`);
    return out;
  }

  /** Threads (deduplicated) after expanding `stack` until each waits for a character, or ACCEPT. */
  closure(stack, out, seen) {
    const todo = [stack];
    let steps = 0;
    while (todo.length) {
      const s = todo.pop();
      if (++steps > MAX_EXPANSION) throw new Error('grammar: expansion does not end');
      if (s === null) {
        if (!seen.has('A')) { seen.add('A'); out.push(ACCEPT); }
        continue;
      }
      const { frame, next } = s;
      if (frame.kind === 'atom') {
        const a = ATOMS[frame.node.atom];
        if (a.end(frame.node, frame.state)) todo.push(next);
        if (a.more(frame.node, frame.state)) {
          if (!seen.has(s.key)) { seen.add(s.key); out.push(s); }
        }
        continue;
      }
      if (frame.kind === 'rep') {
        const { node, count } = frame;
        if (node.max === null || count < node.max) {
          todo.push(push({ kind: 'node', node: node.repeat }, push({ kind: 'rep', node, count: count + 1 }, next)));
        }
        if (count >= node.min) todo.push(next);
        continue;
      }
      const node = frame.node;
      if (node.atom) todo.push(push({ kind: 'atom', node, state: ATOMS[node.atom].init(node) }, next));
      else if (node.seq) todo.push(node.seq.reduceRight((rest, item) => push({ kind: 'node', node: item }, rest), next));
      else if (node.alt) for (const option of [...node.alt].reverse()) todo.push(push({ kind: 'node', node: option }, next));
      else if (node.repeat) todo.push(push({ kind: 'rep', node, count: 0 }, next));
      else if (node.ref) {
        const rule = this.rules[node.ref];
        if (!rule) throw new Error(`grammar: no rule ${node.ref}`);
        todo.push(push({ kind: 'node', node: rule }, next));
      }
    }
    return out;
  }

  /** The threads after `threads` read `ch` (the start threads when ch is null). */
  advanceFrom(threads, ch) {
    const out = [];
    const seen = new Set();
    if (ch === null) return this.closure(push({ kind: 'node', node: this.root }, null), out, seen);
    for (const t of threads) {
      if (t === ACCEPT) continue;
      const { frame, next } = t;
      const state = ATOMS[frame.node.atom].step(frame.node, frame.state, ch);
      if (state !== null) this.closure(push({ kind: 'atom', node: frame.node, state }, next), out, seen);
    }
    return out;
  }

  /** The threads after `threads` read every character of `text` (empty: the text leaves the grammar). */
  advance(threads, text) {
    for (const ch of text) {
      if (!threads.length) return threads;
      threads = this.advanceFrom(threads, ch);
    }
    return threads;
  }
}

function push(frame, next) {
  const own = frame.kind === 'atom' ? `a${frame.node.id}:${stateKey(frame.state)}`
    : frame.kind === 'rep' ? `r${frame.node.id}:${frame.count}` : `n${frame.node.id}`;
  return { frame, next, key: next ? `${own}|${next.key}` : own };
}

export const accepts = (threads) => threads.includes(ACCEPT);

// --- a vocabulary: each token as symbols, and a sorted index for walking it by prefix -------------

/** A Transformers.js tokenizer's tokens as symbols (built once per tokenizer, ~1 s for 262k tokens). */
export class Vocabulary {
  constructor(tokenizer) {
    const json = tokenizer._tokenizerJSON;
    this.tokenizer = tokenizer;
    this.specials = new Map(); // text -> symbol
    this.specialIds = new Map(); // id -> symbol
    let k = 0;
    for (const t of json.added_tokens) {
      if (!t.special) continue;
      const symbol = String.fromCharCode(SPECIAL_BASE + k++);
      this.specials.set(t.content, symbol);
      this.specialIds.set(t.id, symbol);
    }
    const vocab = json.model.vocab;
    const entries = Array.isArray(vocab) ? vocab.map(([piece], id) => [piece, id]) : Object.entries(vocab);
    this.byteOf = new Map(entries.filter(([p]) => BYTE_TOKEN.test(p)).map(([p, id]) => [id, parseInt(p.slice(3, 5), 16)]));
    // ordinary tokens by their text (byte tokens <0xNN> left out of the walk: checked exactly when chosen)
    const pieces = entries.filter(([p, id]) => !this.specialIds.has(id) && !BYTE_TOKEN.test(p))
      .map(([p, id]) => [plain(p.replaceAll('\u2581', ' ')), id]);
    pieces.sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : x[1] - y[1]));
    this.pieces = pieces.map(([p]) => p);
    this.pieceIds = Int32Array.from(pieces.map(([, id]) => id));
  }

  /** The bytes of an unfinished UTF-8 character that `ids` end with (byte tokens), else []. */
  pendingBytes(ids) {
    let start = ids.length;
    while (start > 0 && this.byteOf.has(ids[start - 1])) start--;
    const bytes = ids.slice(start).map((id) => this.byteOf.get(id));
    for (let i = 0; i < bytes.length;) {
      const b = bytes[i];
      const length = b < 0x80 ? 1 : b >> 5 === 6 ? 2 : b >> 4 === 14 ? 3 : b >> 3 === 30 ? 4 : 1;
      if (i + length > bytes.length) return bytes.slice(i);
      i += length;
    }
    return [];
  }

  /** The id of a text that is one token, else null. */
  singleToken(text) {
    const ids = this.tokenizer(text, { add_special_tokens: false }).input_ids.tolist()[0];
    return ids.length === 1 ? Number(ids[0]) : null;
  }

  /** Ids of every ordinary token whose text the grammar allows after `threads` (a walk of the
   *  sorted pieces, pruned at the first character the grammar rejects). */
  allowedOrdinary(grammar, threads) {
    const found = [];
    const walk = (lo, hi, depth, live) => {
      let i = lo;
      while (i < hi && this.pieces[i].length === depth) { if (depth > 0) found.push(this.pieceIds[i]); i++; }
      while (i < hi) {
        const ch = this.pieces[i][depth];
        let end = i + 1;
        while (end < hi && this.pieces[end][depth] === ch) end++;
        const after = grammar.advanceFrom(live, ch);
        if (after.length) walk(i, end, depth + 1, after);
        i = end;
      }
    };
    walk(0, this.pieces.length, 0, threads);
    return found;
  }
}

// --- one constrained generation -------------------------------------------------------------------

/** The grammar's state over one reply; `allowed(id)` is exact (the tokens decoded as they run). */
export class Constraint {
  /** `json`: the output of calltune.web_grammar ({grammar, minimal}); `vocabulary`: a Vocabulary;
   *  `endIds`: the model's end-of-sequence ids; `maxNewTokens`: the budget (its last steps wrap up). */
  constructor(json, vocabulary, { endIds = [], maxNewTokens = null } = {}) {
    this.vocabulary = vocabulary;
    this.grammar = new Grammar(json.grammar, vocabulary.specials);
    this.minimal = json.minimal ? new Grammar(json.minimal, vocabulary.specials) : null;
    this.endIds = new Set(endIds);
    this.maxNewTokens = maxNewTokens;
    // the reply as symbols: `before` (up to the last special token) + the run of ordinary tokens
    // since, decoded (`runText`) and fed to the grammar up to its last whole character (`runFed`:
    // a character split over byte tokens is fed once complete, as llguidance reads bytes)
    this.before = '';
    this.runIds = [];
    this.runText = '';
    this.runFed = '';
    this.runStart = this.grammar.start; // threads before the run
    this.threads = this.grammar.start; // threads after before + runFed
    this.generated = 0;
    const closerIds = (texts) => (texts ?? []).map((t) => vocabulary.singleToken(t)).filter((id) => id !== null);
    this.closers = { structure: closerIds(json.grammar.closers), string: closerIds(json.grammar.string_closers),
                     probes: closerIds(TEXT_PROBES) };
  }

  /** Threads after the reply plus token `id` (empty: not allowed), and what accept() keeps. */
  _after(id) {
    const special = this.vocabulary.specialIds.get(id);
    if (special !== undefined) { // the run's pending bytes, then the token
      const rest = this.runText.slice(this.runFed.length);
      return { threads: this.grammar.advance(this.grammar.advance(this.threads, rest), special), special };
    }
    const ids = [...this.runIds, id];
    const text = plain(this.vocabulary.tokenizer.decode(ids, { skip_special_tokens: false }));
    const pending = this.vocabulary.pendingBytes(ids); // one byte token each, at the end
    const whole = ids.slice(0, ids.length - pending.length);
    const fed = !pending.length ? text
      : whole.length ? plain(this.vocabulary.tokenizer.decode(whole, { skip_special_tokens: false })) : '';
    let threads = fed.startsWith(this.runFed)
      ? this.grammar.advance(this.threads, fed.slice(this.runFed.length))
      : this.grammar.advance(this.runStart, fed);
    if (pending.length && !threads.some((t) => startsCharacter(t, pending))) threads = [];
    return { threads, ids, text, fed };
  }

  get done() {
    return this.threads.length === 1 && this.threads[0] === ACCEPT;
  }

  allowed(id) {
    if (this.endIds.has(id) && !this.vocabulary.specialIds.has(id)) return accepts(this.threads);
    if (this.endIds.has(id) && accepts(this.threads)) return true;
    return this._after(id).threads.length > 0;
  }

  /** The greedy choice among the allowed tokens, given the step's scores (a Float32Array). */
  choose(scores) {
    if (this.done) return [...this.endIds][0] ?? null;
    if (this.maxNewTokens !== null && this.maxNewTokens - this.generated <= wrapUpTokens(this.maxNewTokens)) {
      this._switchToMinimal();
      const closer = this._closer();
      if (closer !== null) return closer;
    }
    const order = topIndices(scores, TOP_CANDIDATES);
    for (const id of order) if (scores[id] > -Infinity && this.allowed(id)) return id;
    // none of the top: every allowed token, best first
    const candidates = [...this.vocabulary.allowedOrdinary(this.grammar, this.threads),
      ...this.vocabulary.specialIds.keys(), ...this.endIds, ...this.vocabulary.byteOf.keys()];
    candidates.sort((a, b) => scores[b] - scores[a] || a - b);
    for (const id of candidates) if (scores[id] > -Infinity && this.allowed(id)) return id;
    return null;
  }

  _closer() {
    const { structure, string, probes } = this.closers;
    const inText = probes.length > 0 && probes.every((id) => this.allowed(id));
    for (const ids of inText ? [string, structure] : [structure]) {
      const first = ids.find((id) => this.allowed(id));
      if (first !== undefined) return first;
    }
    return null;
  }

  _switchToMinimal() {
    if (!this.minimal) return;
    const minimal = this.minimal;
    this.minimal = null;
    const threads = minimal.advance(minimal.start, this.before + this.runFed);
    if (!threads.length) return;
    this.grammar = minimal;
    this.runStart = minimal.advance(minimal.start, this.before);
    this.threads = threads;
  }

  /** Move past token `id` (chosen by choose, or by the model where the grammar is complete). */
  accept(id) {
    this.generated += 1;
    if (this.done || (this.endIds.has(id) && accepts(this.threads))) { this.threads = [ACCEPT]; return; }
    const after = this._after(id);
    if (after.special !== undefined) {
      this.before += this.runText + after.special;
      Object.assign(this, { runIds: [], runText: '', runFed: '', runStart: after.threads });
    } else {
      Object.assign(this, { runIds: after.ids, runText: after.text, runFed: after.fed });
    }
    this.threads = after.threads;
  }
}

function topIndices(scores, k) {
  const best = [];
  for (let i = 0; i < scores.length; i++) {
    const s = scores[i];
    if (best.length < k || s > scores[best[best.length - 1]]) {
      let j = best.length < k ? best.length : best.length - 1;
      best[j] = i;
      while (j > 0 && scores[best[j - 1]] < s) { [best[j - 1], best[j]] = [best[j], best[j - 1]]; j--; }
    }
  }
  return best;
}

/** Whether a thread can read a character whose UTF-8 encoding starts with `bytes`. */
function startsCharacter(thread, bytes) {
  if (thread === ACCEPT) return false;
  const { node, state } = thread.frame;
  if (node.atom === 'lit') {
    if (isSymbolOfSpecial(node.text[state])) return false; // a special token is its id, never bytes
    const encoded = new TextEncoder().encode(node.text[state]);
    return bytes.every((b, i) => encoded[i] === b);
  }
  const lead = bytes[0] >= 0xc2 && bytes[0] <= 0xf4 && bytes.slice(1).every((b) => b >> 6 === 2);
  if (node.atom === 'json_chars') return lead && state.esc === 0;
  if (node.atom === 'char_class') return lead && (node.negate || node.ranges.some(([, high]) => high.codePointAt(0) >= 0x80));
  return lead && (node.atom === 'text' || node.atom === 'char_run');
}

/** A Transformers.js logits processor (a subclass is made from the module the caller passes):
 *  every step keeps only the constraint's choice; the first call sees the prompt only. */
export function constraintProcessor(transformers, constraint, promptLength) {
  class ConstraintLogitsProcessor extends transformers.LogitsProcessor {
    _call(inputIds, logits) {
      const row = inputIds[0];
      if (row.length > promptLength) constraint.accept(Number(row[row.length - 1]));
      const scores = logits.data;
      const choice = constraint.choose(scores);
      if (choice !== null) {
        const best = scores[choice];
        scores.fill(-Infinity);
        scores[choice] = Number.isFinite(best) ? best : 0;
      }
      return logits;
    }
  }
  return new ConstraintLogitsProcessor();
}
