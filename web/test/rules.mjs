// Node tests of web/src/entry.js and web/src/rules.js (issue 14, W2).
//
//   node web/test/rules.mjs            the built-in checks of entry parsing (exit 1 on failure)
//   node web/test/rules.mjs DIR        replay DIR/<i>.entry (or DIR/entries/<i>.entry) with the
//                                      log key in DIR/log.vkey and the bundle's case in DIR/case
//                                      (each if present); prints JSON
//                                      {problems, notes, timeOrder, items} on stdout
//
// tests/unit/web/test_web_rules.py runs both and compares the replay with custody's own.
import { readFileSync, readdirSync, existsSync } from "node:fs";
import { join } from "node:path";
import assert from "node:assert/strict";
import { FormatError, parseEntryText, parseSignedEntry, parseTyped, KNOWN_TYPES, parseTime } from "../src/entry.js";
import { replay, span } from "../src/rules.js";

async function replayDir(dir) {
  const where = existsSync(join(dir, "entries")) ? join(dir, "entries") : dir;
  const entries = readdirSync(where)
    .filter((n) => /^(0|[1-9][0-9]*)\.entry$/.test(n))
    .map((n) => ({ index: Number(n.split(".")[0]), bytes: new Uint8Array(readFileSync(join(where, n))) }));
  const keyFile = join(dir, "log.vkey");
  const logKey = existsSync(keyFile) ? readFileSync(keyFile, "utf8").trim() : null;
  const caseFile = join(dir, "case");
  const bundleCase = existsSync(caseFile) ? readFileSync(caseFile, "utf8").trim() : null;
  const r = await replay(entries, logKey, { case: bundleCase });
  const items = [...r.items.values()].map((s) => ({
    case: s.case,
    item: s.item,
    exhibit: s.exhibit,
    holder: s.holder,
    disposed_at: s.disposedAt,
    restricted_at: s.restrictedAt,
  }));
  process.stdout.write(JSON.stringify({ problems: r.problems, notes: r.notes, timeOrder: r.timeOrder, items, replayed: r.state !== null }) + "\n");
}

function refused(text, fragment) {
  assert.throws(
    () => parseEntryText(text),
    (e) => e instanceof FormatError && e.message.includes(fragment),
    `expected FormatError containing ${JSON.stringify(fragment)} for ${JSON.stringify(text)}`,
  );
}

function selfTest() {
  const good = "custody/entry/v1\ntype access\ntime 2026-11-23T13:45:00Z\ncase C-1\nitem " + "ab".repeat(32) +
    "\nby ann\npurpose review\naction view\n";
  const e = parseEntryText(good);
  assert.equal(e.type, "access");
  assert.equal(e.get("by"), "ann");
  const t = parseTyped(e);
  assert.equal(t.action, "view");
  assert.equal(t.claimed, Date.UTC(2026, 10, 23, 13, 45, 0) / 1000);
  // Canonical form (entry.md §Text 5): each deviation is refused.
  refused(good.slice(0, -1), "does not end with a newline");
  refused(good.replace("custody/entry/v1", "custody/entry/v2"), "does not start with 'custody/entry/v1'");
  refused(good.replace("by ann", "by  ann"), "must be non-empty without leading or trailing spaces");
  refused(good.replace("by ann", "by ann\r"), "contains a control character");
  refused(good.replace("by ann", "byann"), "is not 'key value'");
  refused(good.replace("by ann", "By ann"), "entry field name 'By' is not allowed");
  refused(good.replace("by ann", "time ann"), "entry field name 'time' is not allowed");
  refused(good.replace("2026-11-23T13:45:00Z", "2026-11-23 13:45:00Z"), "is not a UTC time");
  refused(good.replace("2026-11-23T13:45:00Z", "2026-02-30T13:45:00Z"), "is not a valid date");
  refused(good.replace("type access", "type Access"), "is not a lower-case word");
  // Typed fields: required, enumerations, numbers, hashes.
  const typed = (s) => parseTyped(parseEntryText(s));
  assert.throws(() => typed(good.replace("action view\n", "")), /access entry has no 'action' field/);
  assert.throws(() => typed(good.replace("action view", "action copy")), /access entry field 'action' is 'copy', not one of view, export/);
  assert.throws(() => typed(good.replace("type access", "type teleport")), /unknown entry type 'teleport'/);
  const policy = "custody/entry/v1\ntype policy\ntime 2026-11-23T13:45:00Z\nforbid face-recognition\nreview-within 012\n";
  assert.throws(() => typed(policy), /policy entry field 'review-within' is not a decimal number/);
  assert.equal(typed(policy.replace("012", "24")).reviewHours, 24);
  assert.deepEqual(typed(policy.replace("012", "24")).forbid, ["face-recognition"]);
  assert.equal(KNOWN_TYPES.length, 15);
  assert.throws(() => parseTime("2026-13-01T00:00:00Z"), /is not a valid date/);
  // A note whose text is an entry; a 72-byte signature line is a countersignature.
  const sig = Buffer.from(new Uint8Array(68)).toString("base64");
  const note = new TextEncoder().encode(good + "\n\u2014 ann " + sig + "\n");
  const s = parseSignedEntry(note);
  assert.deepEqual(s.signerNames, ["ann"]);
  assert.equal(s.countersignatures.length, 0);
  const tooBig = new Uint8Array(65537);
  assert.throws(() => parseSignedEntry(tooBig), /over the 65536 limit/);
  assert.equal(span(45), "45 s");
  assert.equal(span(13 * 60), "13 min");
  assert.equal(span(2 * 3600 + 300), "2 h 5 min");
  assert.equal(span(86400 + 23 * 3600), "1 d 23 h");
  process.stdout.write("entry.js self-test: ok\n");
}

if (process.argv.length > 2) await replayDir(process.argv[2]);
else selfTest();
