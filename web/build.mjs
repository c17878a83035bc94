// build.mjs - `make web`: bundles src/ into OUT (node web/build.mjs OUT).
//
// OUT/index.html names OUT/assets/app.<hash>.js, app.<hash>.css and
// icon.<hash>.svg: a new build gives new names, so the API serves assets as
// immutable and index.html as no-cache (api/cv_web.h). Each file gets a gzip
// copy beside it (name.gz). Fails when the page's JavaScript, compressed,
// passes its budget of 150 KB.
import * as esbuild from "esbuild";
import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";

const BUDGET = 150 * 1024;
const here = path.dirname(fileURLToPath(import.meta.url));
const out = path.resolve(process.argv[2] || path.join(here, "dist"));
const assets = path.join(out, "assets");

fs.rmSync(out, { recursive: true, force: true });
fs.mkdirSync(assets, { recursive: true });

const built = await esbuild.build({
  entryPoints: { app: path.join(here, "src/main.js") },
  bundle: true,
  minify: true,
  format: "esm",
  target: ["chrome110", "firefox115", "safari16"],
  outdir: assets,
  entryNames: "[name].[hash]",
  chunkNames: "chunk.[hash]",
  splitting: true,
  legalComments: "none",
  metafile: true,
  logLevel: "warning",
});

const named = {};
for (const file of Object.keys(built.metafile.outputs)) {
  const base = path.basename(file);
  named[base.replace(/\.[A-Z0-9]+\./, ".")] = base; // app.js -> app.<hash>.js
}
const icon = fs.readFileSync(path.join(here, "src/icon.svg"));
const iconName = `icon.${createHash("sha256").update(icon).digest("hex").slice(0, 8)}.svg`;
fs.writeFileSync(path.join(assets, iconName), icon);

const page = fs
  .readFileSync(path.join(here, "src/index.html"), "utf8")
  .replace("{{app.js}}", `/assets/${named["app.js"]}`)
  .replace("{{app.css}}", `/assets/${named["app.css"]}`)
  .replace("{{icon.svg}}", `/assets/${iconName}`);
fs.writeFileSync(path.join(out, "index.html"), page);

const sizes = [];
for (const file of [path.join(out, "index.html"), ...fs.readdirSync(assets).map((f) => path.join(assets, f))]) {
  const gz = gzipSync(fs.readFileSync(file), { level: 9 });
  fs.writeFileSync(file + ".gz", gz);
  sizes.push([path.relative(out, file), fs.statSync(file).size, gz.length]);
}
// The first page's JavaScript: the entry and what it imports statically (a page
// loaded on demand, such as the console, is a chunk of its own).
const first = new Set();
const visit = (file) => {
  if (first.has(file)) return;
  first.add(file);
  for (const i of built.metafile.outputs[file].imports) if (i.kind === "import-statement") visit(i.path);
};
visit(Object.keys(built.metafile.outputs).find((f) => built.metafile.outputs[f].entryPoint && f.endsWith(".js")));
const firstNames = new Set([...first].map((f) => path.relative(out, path.resolve(f))));
const js = sizes.filter(([f]) => firstNames.has(f)).reduce((n, [, , gz]) => n + gz, 0);
for (const [f, raw, gz] of sizes) console.log(`web: ${f} ${raw} bytes, ${gz} gzipped`);
console.log(`web: JavaScript of the first page ${js} bytes gzipped (budget ${BUDGET}): ${[...firstNames].join(", ")}`);
if (js > BUDGET) {
  console.error(`web: over the budget of ${BUDGET} bytes`);
  process.exit(1);
}
