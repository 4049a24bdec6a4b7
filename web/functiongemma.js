// FunctionGemma calls out of generated text, in the browser and in Node.
// The grammar of calltune/formats/functiongemma/parser.py:
//   call   := "<start_function_call>" "call:" NAME object "<end_function_call>"
//   object := "{" [key ":" value ("," key ":" value)*] "}"
//   list   := "[" [value ("," value)*] "]"
//   value  := "<escape>" text "<escape>" | object | list | number | true | false | null
// Text stops at <start_function_response>, <end_of_turn> or <eos>. Never throws on model output:
// a malformed or truncated call sets `error`.

export const START_CALL = '<start_function_call>';
export const END_CALL = '<end_function_call>';
export const STOP_MARKERS = ['<start_function_response>', '<end_of_turn>', '<eos>'];
const ESCAPE = '<escape>';
const MAX_DEPTH = 64;
const NAME = /[A-Za-z0-9_.\-]+/y;
const BARE_KEY = /[^\s:{}\[\],<>]+/y;
const NUMBER = /-?\d+(\.\d+)?([eE][+-]?\d+)?/y;
const WHITESPACE = /\s*/y;
const LITERALS = [['true', true], ['false', false], ['null', null]];

class Fault extends Error {}

class Reader {
  constructor(text, start) {
    this.text = text;
    this.start = start;
    this.pos = start + START_CALL.length;
  }

  call() {
    this.expect('call:');
    const name = this.match(NAME, 'a function name');
    const args = this.object(1);
    this.skipSpace();
    if (this.pos >= this.text.length) {
      throw new Fault(`missing ${END_CALL} after the call at position ${this.start} (output truncated)`);
    }
    this.expect(END_CALL);
    return { name, arguments: args };
  }

  value(depth) {
    this.skipSpace();
    if (depth > MAX_DEPTH) throw new Fault(`nesting deeper than ${MAX_DEPTH} at position ${this.pos}`);
    const { text, pos } = this;
    if (text.startsWith(ESCAPE, pos)) return this.string();
    if (text.startsWith('{', pos)) return this.object(depth);
    if (text.startsWith('[', pos)) return this.list(depth);
    for (const [word, value] of LITERALS) {
      if (text.startsWith(word, pos)) {
        this.pos += word.length;
        return value;
      }
    }
    NUMBER.lastIndex = pos;
    const number = NUMBER.exec(text);
    if (number) {
      this.pos = NUMBER.lastIndex;
      return Number(number[0]);
    }
    throw this.unexpected('a value');
  }

  object(depth) {
    this.expect('{');
    const result = {};
    if (this.take('}')) return result;
    for (;;) {
      this.skipSpace();
      const keyPos = this.pos;
      const key = this.text.startsWith(ESCAPE, this.pos) ? this.string() : this.match(BARE_KEY, 'a key');
      if (Object.hasOwn(result, key)) throw new Fault(`duplicate key '${key}' at position ${keyPos}`);
      this.expect(':');
      result[key] = this.value(depth + 1);
      if (!this.separator('}')) return result;
    }
  }

  list(depth) {
    this.expect('[');
    const result = [];
    if (this.take(']')) return result;
    for (;;) {
      result.push(this.value(depth + 1));
      if (!this.separator(']')) return result;
    }
  }

  separator(closer) {
    if (this.take(',')) return true;
    if (this.take(closer)) return false;
    throw this.unexpected(`',' or '${closer}'`);
  }

  string() {
    const begin = this.pos;
    const end = this.text.indexOf(ESCAPE, begin + ESCAPE.length);
    if (end < 0) throw new Fault(`unterminated string starting at position ${begin} (output truncated)`);
    this.pos = end + ESCAPE.length;
    return this.text.slice(begin + ESCAPE.length, end);
  }

  take(literal) {
    this.skipSpace();
    if (!this.text.startsWith(literal, this.pos)) return false;
    this.pos += literal.length;
    return true;
  }

  expect(literal) {
    if (!this.take(literal)) throw this.unexpected(`'${literal}'`);
  }

  match(pattern, what) {
    this.skipSpace();
    pattern.lastIndex = this.pos;
    const found = pattern.exec(this.text);
    if (!found) throw this.unexpected(what);
    this.pos = pattern.lastIndex;
    return found[0];
  }

  skipSpace() {
    WHITESPACE.lastIndex = this.pos;
    WHITESPACE.exec(this.text);
    this.pos = WHITESPACE.lastIndex;
  }

  unexpected(wanted) {
    if (this.pos >= this.text.length) {
      return new Fault(`unterminated call starting at position ${this.start}: output ends at position ` +
                       `${this.pos} where ${wanted} was expected`);
    }
    return new Fault(`unexpected character '${this.text[this.pos]}' at position ${this.pos}, expected ${wanted}`);
  }
}

function nextMarker(text, pos) {
  let best = [text.length, null];
  for (const marker of [START_CALL, ...STOP_MARKERS]) {
    const i = text.indexOf(marker, pos);
    if (i >= 0 && i < best[0]) best = [i, marker];
  }
  return best;
}

/** Parse one generation: { calls: [{name, arguments}], content: string, error: string|null }. */
export function parseFunctionGemma(text) {
  const calls = [];
  const content = [];
  let pos = 0;
  for (;;) {
    const [start, marker] = nextMarker(text, pos);
    content.push(text.slice(pos, start));
    if (marker !== START_CALL) break;
    const reader = new Reader(text, start);
    try {
      calls.push(reader.call());
    } catch (fault) {
      if (!(fault instanceof Fault)) throw fault;
      return { calls, content: content.join('').trim(), error: fault.message };
    }
    pos = reader.pos;
  }
  return { calls, content: content.join('').trim(), error: null };
}
