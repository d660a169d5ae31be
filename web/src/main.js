// The page: pick a bundle (a .zip, or its folder), paste the log's verifier key (or choose
// the key file), press Verify.  Stable ids for automation (issue 14): #bundle, #bundle-folder,
// #trust, #trust-file, #verify, #verdict (exactly VERIFIED or NOT VERIFIED when done), #problems.
import { UnsafeBundleError, bundleFromFolder, bundleFromZip } from "./bundle.js";
import { verifyBundle } from "./verify.js";

const $ = (id) => document.getElementById(id);

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function mb(n) {
  return (n / 1e6).toLocaleString("en-US", { maximumFractionDigits: 1 });
}

async function chosenBundle() {
  const zip = $("bundle").files;
  const folder = $("bundle-folder").files;
  if (folder && folder.length) return bundleFromFolder(folder);
  if (zip && zip.length) return bundleFromZip(zip[0]);
  return null;
}

function show(result) {
  const problems = $("problems");
  for (const p of result.problems) {
    const li = el("li", "problem");
    li.dataset.check = p.check;
    li.dataset.where = p.where;
    li.textContent = `${p.where}: ${p.message}`;
    problems.append(li);
  }
  const details = $("details");
  if (result.checked && result.checked.length) {
    details.append(el("h2", "", "What was checked"));
    const ul = el("ul", "checked");
    for (const c of result.checked) ul.append(el("li", "", c));
    details.append(ul);
  }
  if (result.cosignatures && result.cosignatures.length) {
    details.append(el("h2", "", "Witnesses who cosigned the checkpoint"));
    const ul = el("ul");
    for (const c of result.cosignatures)
      ul.append(el("li", "", `${c.name}${c.role ? ` (${c.role})` : ""} at ${c.time}${c.trusted ? ", a key you gave" : ""}`));
    details.append(ul);
  }
  for (const ex of result.exhibits || []) {
    const box = el("section", ex.problems.length ? "exhibit bad" : "exhibit");
    box.append(el("h3", "", `Exhibit ${ex.exhibit}: ${ex.name}`));
    const dl = el("dl");
    const row = (k, v) => {
      if (v === null || v === undefined || v === "") return;
      dl.append(el("dt", "", k), el("dd", "mono", String(v)));
    };
    row("kind", ex.kind);
    row("size", `${ex.size.toLocaleString("en-US")} bytes`);
    row("BLAKE3", ex.item);
    row("SHA-256", ex.sha256 || ex.fileSha256);
    row("recorded by log entry", ex.entry);
    row("derived from", ex.parent);
    row("ingested by", ex.signers.join(", "));
    row("holder now", ex.holder);
    box.append(dl);
    const ul = el("ul");
    for (const c of ex.checked) ul.append(el("li", "ok", c));
    for (const p of ex.problems) ul.append(el("li", "fail", `${p.where}: ${p.message}`));
    for (const n of ex.notChecked) ul.append(el("li", "skip", n));
    box.append(ul);
    details.append(box);
  }
  if (result.notes && result.notes.length) {
    details.append(el("h2", "", "Notes"));
    const ul = el("ul", "notes");
    for (const n of result.notes) ul.append(el("li", "", n));
    details.append(ul);
  }
  details.append(el("h2", "", "Not checked here"));
  const nc = el("ul", "not-checked");
  for (const n of result.notChecked) nc.append(el("li", "skip", n));
  details.append(nc);
  const verdict = $("verdict");
  verdict.className = result.verdict === "VERIFIED" ? "verified" : "not-verified";
  verdict.textContent = result.verdict;
}

async function run() {
  const button = $("verify");
  button.disabled = true;
  $("verdict").textContent = "";
  $("verdict").className = "";
  $("problems").replaceChildren();
  $("details").replaceChildren();
  const progress = $("progress");
  const started = performance.now();
  let hashed = 0;
  let current = { path: "", done: 0 };
  try {
    const bundle = await chosenBundle();
    if (bundle === null) {
      progress.textContent = "Choose the bundle (.zip or folder) first.";
      return;
    }
    const onProgress = (p) => {
      if (p.path !== current.path) hashed += current.done;
      current = p;
      const secs = (performance.now() - started) / 1000;
      const rate = secs > 0 ? mb((hashed + p.done) / secs) : "…";
      progress.textContent = `hashing ${p.path}: ${mb(p.done)} of ${mb(p.total)} MB (${rate} MB/s)`;
    };
    const result = await verifyBundle(bundle, $("trust").value, onProgress);
    hashed += current.done;
    const secs = (performance.now() - started) / 1000;
    progress.textContent = `done in ${secs.toFixed(1)} s (${mb(hashed)} MB hashed)`;
    show(result);
  } catch (e) {
    const message = e instanceof UnsafeBundleError ? e.message : `cannot read the bundle: ${e && e.message ? e.message : e}`;
    show({
      verdict: "NOT VERIFIED",
      problems: [{ check: "safety", where: "bundle", message }],
      exhibits: [],
      notChecked: [],
    });
    progress.textContent = "";
  } finally {
    button.disabled = false;
  }
}

function init() {
  $("verify").addEventListener("click", () => {
    run();
  });
  $("trust-file").addEventListener("change", async () => {
    const f = $("trust-file").files[0];
    if (f) $("trust").value = (await f.text()).trim();
  });
  // choosing one kind of bundle clears the other
  $("bundle").addEventListener("change", () => {
    if ($("bundle").files.length) $("bundle-folder").value = "";
  });
  $("bundle-folder").addEventListener("change", () => {
    if ($("bundle-folder").files.length) $("bundle").value = "";
  });
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
else init();
