// The README's examples are real files of this repository's suite: every code block introduced
// by "part of this repository's suite (`<path>`)" must equal that file, so copying it from the README
// gives a test that is known to pass.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';

const root = resolve(import.meta.dirname, '..');
const readme = readFileSync(resolve(root, 'README.md'), 'utf8');
const pattern =
  /part of this repository's suite\s+\(`([^`]+)`\):\s*(?:<!-- prettier-ignore -->\s*)?```\w*\n([\s\S]*?)```/g;

let checked = 0;
const failures = [];
for (const [, path, block] of readme.matchAll(pattern)) {
  checked++;
  const file = readFileSync(resolve(root, path), 'utf8');
  if (file !== block) failures.push(path);
}
if (checked === 0)
  failures.push('(no example found: the README lost its Testing example)');
for (const path of failures) {
  console.error(
    `README.md: the example for ${path} differs from the file; copy the file into the README`,
  );
}
if (!failures.length)
  console.log(`README.md: ${checked} examples match their files`);
process.exitCode = failures.length ? 1 : 0;
