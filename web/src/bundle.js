// Reading a bundle in the browser (docs/spec/bundle.md §2, §6 step 1, §9): a folder chosen
// with <input webkitdirectory> (a FileList), or a .zip File.  Nothing is read whole unless
// asked: each file is {size, read(): Promise<Uint8Array>, stream(): ReadableStream}.  A zip's
// central directory is read from the end of the File (File.slice is lazy), and a member's
// bytes are streamed from its offset, inflated by DecompressionStream("deflate-raw") or, where
// the browser lacks it, by fflate's streaming Inflate.
import { Inflate } from "fflate";

export const MAX_MEMBERS = 200000;
const RATIO = 100;
const RATIO_FLOOR = 1 << 20;
const COMPONENT = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const LITTER = new Set([".DS_Store", "Thumbs.db", "desktop.ini"]);

export class UnsafeBundleError extends Error {}

/** A member name quoted as verify-bundle quotes it (Python's repr of a str). */
function quoted(s) {
  const q = s.includes("'") && !s.includes('"') ? '"' : "'";
  return q + s.replace(/\\/g, "\\\\").replace(new RegExp(q, "g"), "\\" + q).replace(/\n/g, "\\n") + q;
}

/** The path rule of bundle.md §2; returns null when the path is fine, else why not. */
export function pathProblem(name) {
  const shown = quoted(name.slice(0, 120));
  if (!name || new TextEncoder().encode(name).length > 512)
    return `bundle member ${shown} has an empty or over-long name`;
  if (name.startsWith("/") || /^[A-Za-z]:/.test(name))
    return `bundle member ${shown} is an absolute path: refusing to read it`;
  if (name.includes("\\")) return `bundle member ${shown} contains a backslash: refusing it`;
  const parts = name.split("/");
  if (parts.includes("..")) return `bundle member ${shown} climbs out of the bundle ('..'): refusing it`;
  if (parts.length > 8 || !parts.every((p) => COMPONENT.test(p)))
    return `bundle member ${shown} is not a name custody writes in a bundle: refusing it`;
  return null;
}

export function isLitter(name) {
  const parts = name.split("/");
  if (parts.includes("..") || name.startsWith("/") || name.includes("\\")) return false;
  return parts[0] === "__MACOSX" || LITTER.has(parts[parts.length - 1]);
}

async function readAll(stream, limit) {
  const reader = stream.getReader();
  const chunks = [];
  let n = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    n += value.length;
    if (limit !== undefined && n > limit) {
      await reader.cancel();
      throw new UnsafeBundleError("holds more than it declares");
    }
    chunks.push(value);
  }
  const out = new Uint8Array(n);
  let o = 0;
  for (const c of chunks) {
    out.set(c, o);
    o += c.length;
  }
  return out;
}

function blobFile(blob) {
  return {
    size: blob.size,
    read: async () => new Uint8Array(await blob.arrayBuffer()),
    stream: () => blob.stream(),
  };
}

/** A bundle folder from <input webkitdirectory>: paths are webkitRelativePath minus the top folder. */
export function bundleFromFolder(fileList) {
  const files = new Map();
  const ignored = [];
  const list = Array.from(fileList);
  if (list.length > MAX_MEMBERS) throw new UnsafeBundleError(`it holds more than ${MAX_MEMBERS.toLocaleString("en-US")} files`);
  let label = "the folder";
  const rels = list.map((f) => {
    const rel = f.webkitRelativePath || f.name;
    const slash = rel.indexOf("/");
    if (slash > 0) label = rel.slice(0, slash);
    return slash > 0 ? rel.slice(slash + 1) : rel;
  });
  // A folder picked one level too high (it holds the bundle folder and nothing else):
  // read the bundle folder inside it.
  let strip = "";
  const top = new Set(rels.filter((r) => !isLitter(r)).map((r) => (r.includes("/") ? r.slice(0, r.indexOf("/")) : "")));
  if (!rels.includes("MANIFEST.json") && top.size === 1 && !top.has("")) {
    const [inner] = top;
    if (rels.includes(`${inner}/MANIFEST.json`) || rels.includes(`${inner}/statement.note`)) {
      strip = `${inner}/`;
      label = `${label}/${inner}`;
    }
  }
  for (const [i, f] of list.entries()) {
    const rel = rels[i];
    if (strip && !rel.startsWith(strip)) {
      ignored.push(rel);
      continue;
    }
    const name = rel.slice(strip.length);
    if (isLitter(name)) {
      ignored.push(name);
      continue;
    }
    const why = pathProblem(name);
    if (why) throw new UnsafeBundleError(why);
    files.set(name, blobFile(f));
  }
  return { label, files, ignored };
}

// ---- ZIP (PKWARE APPNOTE) ----------------------------------------------------------

function u16(v, o) {
  return v.getUint16(o, true);
}
function u32(v, o) {
  return v.getUint32(o, true);
}
function u64(v, o) {
  return v.getUint32(o, true) + v.getUint32(o + 4, true) * 2 ** 32;
}

async function slice(file, start, end) {
  return new Uint8Array(await file.slice(start, end).arrayBuffer());
}

function inflateStream(source) {
  if (typeof DecompressionStream === "function") {
    return source.pipeThrough(new DecompressionStream("deflate-raw"));
  }
  const reader = source.getReader();
  let inflater = null;
  return new ReadableStream({
    start(controller) {
      inflater = new Inflate((chunk) => {
        if (chunk.length) controller.enqueue(chunk);
      });
    },
    async pull(controller) {
      const { done, value } = await reader.read();
      if (done) {
        inflater.push(new Uint8Array(0), true);
        controller.close();
      } else {
        inflater.push(value, false);
      }
    },
    cancel() {
      reader.cancel();
    },
  });
}

/** A bundle from a .zip File: the central directory is checked (§6 step 1) before anything is read. */
export async function bundleFromZip(file) {
  const label = file.name || "the zip";
  const tailLen = Math.min(file.size, 22 + 65535 + 20);
  const tail = await slice(file, file.size - tailLen, file.size);
  const tv = new DataView(tail.buffer);
  let eocd = -1;
  for (let i = tail.length - 22; i >= 0; i--) {
    if (u32(tv, i) === 0x06054b50) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw new UnsafeBundleError(`${label} is not a readable ZIP archive: no end of central directory`);
  let count = u16(tv, eocd + 10);
  let cdSize = u32(tv, eocd + 12);
  let cdOffset = u32(tv, eocd + 16);
  if (count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) {
    const loc = eocd - 20;
    if (loc < 0 || u32(tv, loc) !== 0x07064b50) throw new UnsafeBundleError(`${label}: a ZIP64 archive without its locator`);
    const at = u64(tv, loc + 8);
    const rec = await slice(file, at, at + 56);
    const rv = new DataView(rec.buffer);
    if (u32(rv, 0) !== 0x06064b50) throw new UnsafeBundleError(`${label}: a damaged ZIP64 end record`);
    count = u64(rv, 32);
    cdSize = u64(rv, 40);
    cdOffset = u64(rv, 48);
  }
  if (count > MAX_MEMBERS)
    throw new UnsafeBundleError(`${label}: it has ${count.toLocaleString("en-US")} members, more than ${MAX_MEMBERS.toLocaleString("en-US")}`);
  const cd = await slice(file, cdOffset, cdOffset + cdSize);
  const v = new DataView(cd.buffer);
  const utf8 = new TextDecoder("utf-8");
  const files = new Map();
  const ignored = [];
  let o = 0;
  for (let n = 0; n < count; n++) {
    if (o + 46 > cd.length || u32(v, o) !== 0x02014b50) throw new UnsafeBundleError(`${label}: a damaged central directory`);
    const flags = u16(v, o + 8);
    const method = u16(v, o + 10);
    let csize = u32(v, o + 20);
    let usize = u32(v, o + 24);
    const nlen = u16(v, o + 28);
    const xlen = u16(v, o + 30);
    const clen = u16(v, o + 32);
    const attr = u32(v, o + 38);
    let local = u32(v, o + 42);
    const name = utf8.decode(cd.subarray(o + 46, o + 46 + nlen));
    // ZIP64 extended information: the fields that are 0xffffffff, in order.
    let x = o + 46 + nlen;
    const xend = x + xlen;
    while (x + 4 <= xend) {
      const id = u16(v, x);
      const len = u16(v, x + 2);
      if (id === 0x0001) {
        let p = x + 4;
        if (usize === 0xffffffff) (usize = u64(v, p)), (p += 8);
        if (csize === 0xffffffff) (csize = u64(v, p)), (p += 8);
        if (local === 0xffffffff) (local = u64(v, p)), (p += 8);
      }
      x += 4 + len;
    }
    o = xend + clen;
    const mode = attr >>> 16;
    const type = mode & 0o170000;
    const shown = quoted(name);
    if (type === 0o120000) throw new UnsafeBundleError(`${label}: member ${shown} is a symbolic link: refusing it`);
    if (mode && type !== 0 && type !== 0o100000 && type !== 0o040000)
      throw new UnsafeBundleError(`${label}: member ${shown} is not a regular file: refusing it`);
    if (flags & 1) throw new UnsafeBundleError(`${label}: member ${shown} is encrypted: refusing it`);
    if (name.endsWith("/")) {
      const folder = name.replace(/\/+$/, "");
      if (folder.split("/")[0] !== "__MACOSX") {
        const why = pathProblem(folder);
        if (why) throw new UnsafeBundleError(`${label}: ${why}`);
      }
      continue;
    }
    if (isLitter(name)) {
      ignored.push(name);
      continue;
    }
    const why = pathProblem(name);
    if (why) throw new UnsafeBundleError(`${label}: ${why}`);
    if (method !== 0 && method !== 8) throw new UnsafeBundleError(`${label}: member ${shown} uses compression method ${method}`);
    if (usize > RATIO_FLOOR && usize > RATIO * Math.max(csize, 1))
      throw new UnsafeBundleError(
        `${label}: member ${shown} would expand ${Math.floor(usize / Math.max(csize, 1)).toLocaleString("en-US")}-fold ` +
          `(${csize.toLocaleString("en-US")} to ${usize.toLocaleString("en-US")} bytes): refusing a likely zip bomb`,
      );
    if (files.has(name)) throw new UnsafeBundleError(`${label}: member ${shown} appears twice: refusing an ambiguous archive`);
    let dataStart = null;
    const start = async () => {
      if (dataStart === null) {
        const h = await slice(file, local, local + 30);
        const hv = new DataView(h.buffer);
        if (h.length < 30 || u32(hv, 0) !== 0x04034b50) throw new UnsafeBundleError(`${label}: member ${name} is damaged: it was altered after export`);
        dataStart = local + 30 + u16(hv, 26) + u16(hv, 28);
      }
      return dataStart;
    };
    const stream = () => {
      let inner = null;
      const raw = new ReadableStream({
        async pull(controller) {
          if (inner === null) {
            const s = await start();
            inner = file.slice(s, s + csize).stream().getReader();
          }
          const { done, value } = await inner.read();
          if (done) controller.close();
          else controller.enqueue(value);
        },
      });
      return method === 8 ? inflateStream(raw) : raw;
    };
    files.set(name, {
      size: usize,
      read: async () => {
        const out = await readAll(stream(), usize);
        if (out.length !== usize) throw new UnsafeBundleError(`${label}: member ${name} is damaged: it was altered after export`);
        return out;
      },
      stream,
    });
  }
  return { label, files, ignored };
}
