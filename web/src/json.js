// Strict JSON (bundle.md §3): RFC 8259, UTF-8; duplicate keys refused; numbers kept as
// {int: true} only when written as integers, so "non-integer numbers where integers are
// due" can be refused.  Returns plain values; numbers are JS numbers, integers checked safe.
import { FormatError } from "./note.js";

export function parseStrictJson(bytes, where) {
  let text;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new FormatError(`${where} is not UTF-8`);
  }
  let i = 0;
  const fail = (why) => {
    throw new FormatError(`${where} is not valid JSON: ${why} at character ${i}`);
  };
  const ws = () => {
    while (i < text.length && " \t\n\r".includes(text[i])) i++;
  };
  const INTS = new WeakSet();
  const value = (depth) => {
    if (depth > 64) fail("nested too deeply");
    ws();
    const c = text[i];
    if (c === "{") {
      i++;
      const obj = Object.create(null);
      ws();
      if (text[i] === "}") {
        i++;
        return obj;
      }
      for (;;) {
        ws();
        if (text[i] !== '"') fail("expected a key");
        const key = string();
        if (Object.prototype.hasOwnProperty.call(obj, key))
          throw new FormatError(`${where}: JSON object has the key '${key}' twice`);
        ws();
        if (text[i] !== ":") fail("expected ':'");
        i++;
        obj[key] = value(depth + 1);
        ws();
        if (text[i] === ",") {
          i++;
          continue;
        }
        if (text[i] === "}") {
          i++;
          return obj;
        }
        fail("expected ',' or '}'");
      }
    }
    if (c === "[") {
      i++;
      const arr = [];
      ws();
      if (text[i] === "]") {
        i++;
        return arr;
      }
      for (;;) {
        arr.push(value(depth + 1));
        ws();
        if (text[i] === ",") {
          i++;
          continue;
        }
        if (text[i] === "]") {
          i++;
          return arr;
        }
        fail("expected ',' or ']'");
      }
    }
    if (c === '"') return string();
    if (text.startsWith("true", i)) return (i += 4), true;
    if (text.startsWith("false", i)) return (i += 5), false;
    if (text.startsWith("null", i)) return (i += 4), null;
    const m = /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/.exec(text.slice(i, i + 400));
    if (!m) fail("unexpected character");
    i += m[0].length;
    const n = Number(m[0]);
    if (m[2] === undefined && m[3] === undefined) {
      const box = { n };
      INTS.add(box);
      return box; // an integer literal, unboxed below
    }
    return n;
  };
  const string = () => {
    i++;
    let out = "";
    for (;;) {
      if (i >= text.length) fail("unterminated string");
      const c = text[i];
      if (c === '"') {
        i++;
        return out;
      }
      if (c < " ") fail("control character in a string");
      if (c === "\\") {
        const e = text[i + 1];
        const map = { '"': '"', "\\": "\\", "/": "/", b: "\b", f: "\f", n: "\n", r: "\r", t: "\t" };
        if (e === "u") {
          const h = text.slice(i + 2, i + 6);
          if (!/^[0-9a-fA-F]{4}$/.test(h)) fail("bad \\u escape");
          out += String.fromCharCode(parseInt(h, 16));
          i += 6;
        } else if (e in map) {
          out += map[e];
          i += 2;
        } else fail("bad escape");
        continue;
      }
      out += c;
      i++;
    }
  };
  const unbox = (v) => {
    if (v !== null && typeof v === "object") {
      if (INTS.has(v)) return { __int: v.n };
      if (Array.isArray(v)) return v.map(unbox);
      const o = Object.create(null);
      for (const k of Object.keys(v)) o[k] = unbox(v[k]);
      return o;
    }
    return v;
  };
  const v = value(0);
  ws();
  if (i !== text.length) fail("trailing data");
  if (v === null || typeof v !== "object" || Array.isArray(v) || INTS.has(v))
    throw new FormatError(`${where} is not a JSON object`);
  return unbox(v);
}

// Accessors on a parsed object: integers are {__int: n}.
export function isInt(v) {
  return v !== null && typeof v === "object" && "__int" in v && Number.isSafeInteger(v.__int);
}
export function getInt(obj, key, where, optional = false) {
  const v = obj[key];
  if (v === undefined || v === null) {
    if (optional) return null;
    throw new FormatError(`${where}: '${key}' is missing`);
  }
  if (!isInt(v) || v.__int < 0) throw new FormatError(`${where}: '${key}' is not a non-negative integer`);
  return v.__int;
}
export function getStr(obj, key, where, optional = false) {
  const v = obj[key];
  if (v === undefined || v === null) {
    if (optional) return null;
    throw new FormatError(`${where}: '${key}' is missing`);
  }
  if (typeof v !== "string") throw new FormatError(`${where}: '${key}' is not a string`);
  return v;
}
export function getList(obj, key, where) {
  const v = obj[key];
  if (!Array.isArray(v)) throw new FormatError(`${where}: '${key}' is not a list`);
  return v;
}
export function getObj(v, where) {
  if (v === null || typeof v !== "object" || Array.isArray(v) || "__int" in v)
    throw new FormatError(`${where} is not an object`);
  return v;
}
