// Build kanal.js, kanal-onsite.js (on-site messages and web push, loaded by kanal.js only
// when needed) and kanal-sw.js (the service worker shops serve) minified into the
// collector's static folder, and the loader into loader.min.js. Deterministic: the same inputs give the same bytes. The banner carries
// a SHA-256 of the inputs (INPUTS below), so a test without node can tell a stale build.
//
//   npm ci && npm run build            write the outputs
//   node build.mjs --out-dir DIR       write both into DIR instead (tests compare)
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { transformSync } from 'esbuild';

const here = dirname(fileURLToPath(import.meta.url));
// Keep in step with tests/snippet/test_snippet_build.py.
const INPUTS = ['build.mjs', 'package-lock.json', 'package.json', 'src/kanal.js', 'src/loader.js',
  'src/onsite.js', 'src/sw.js'];

const hash = createHash('sha256');
for (const name of INPUTS) {
  hash.update(name + '\0');
  hash.update(readFileSync(join(here, name)));
  hash.update('\0');
}
const digest = hash.digest('hex');
const { version } = JSON.parse(readFileSync(join(here, 'package.json'), 'utf8'));

function minify(file, define = {}) {
  return transformSync(readFileSync(join(here, file), 'utf8'), {
    minify: true,
    target: 'es2017',
    define,
    legalComments: 'none',
    charset: 'utf8',
  }).code;
}

const at = process.argv.indexOf('--out-dir');
const outDir = at > 0 ? process.argv[at + 1] : null;
const dir = outDir || join(here, '..', 'collector', 'kanal_collector', 'static');
const define = { __VERSION__: JSON.stringify(version) };
for (const [source, name] of [['src/kanal.js', 'kanal.js'], ['src/onsite.js', 'kanal-onsite.js'],
                              ['src/sw.js', 'kanal-sw.js']]) {
  const banner = `/*! ${name} ${version} | Apache-2.0 | sha256:${digest} */\n`;
  writeFileSync(join(dir, name), banner + minify(source, define));
}
writeFileSync(join(outDir || here, 'loader.min.js'), minify('src/loader.js'));
console.log(`${dir}: sha256:${digest}`);
