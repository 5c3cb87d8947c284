// The README's examples are real files of this repository's suite: every code block introduced
// by "part of this repository's suite (`<path>`)" must equal that file, and every block introduced by
// "an excerpt of this repository's suite (`<path>`)" must appear in it verbatim, so copying it from the
// README gives code that is known to work.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';

const root = resolve(import.meta.dirname, '..');
const readme = readFileSync(resolve(root, 'README.md'), 'utf8');
const pattern =
  /(part|an excerpt)\s+of\s+this\s+repository's\s+suite\s+\(`([^`]+)`\):\s*(?:<!-- prettier-ignore -->\s*)?```\w*\n([\s\S]*?)```/g;

let checked = 0;
const failures = [];
for (const [, kind, path, block] of readme.matchAll(pattern)) {
  checked++;
  const file = readFileSync(resolve(root, path), 'utf8');
  const matches = kind === 'part' ? file === block : file.includes(block);
  if (!matches) failures.push(path);
}
// Every other block of code a user would paste must say why it is not a file of the suite.
const codeBlock = /```(?:js|ts|gts|gjs|hbs|mjs)\n/g;
for (const match of readme.matchAll(codeBlock)) {
  const before = readme.slice(Math.max(0, match.index - 300), match.index);
  const covered =
    /(?:part|an excerpt)\s+of\s+this\s+repository's\s+suite\s+\(`[^`]+`\):\s*(?:<!-- prettier-ignore -->\s*)?$/.test(
      before,
    ) || /<!-- readme-fragment: [^>]+ -->\s*$/.test(before);
  if (!covered) {
    const line = readme.slice(0, match.index).split('\n').length;
    failures.push(
      `line ${line} (a code block that is neither a suite file nor marked <!-- readme-fragment: why -->)`,
    );
  }
}
if (checked === 0)
  failures.push('(no example found: the README lost its Testing example)');
for (const path of failures) {
  console.error(
    `README.md: the example for ${path} differs from the file; copy the file (or the excerpt) into the README`,
  );
}
if (!failures.length)
  console.log(`README.md: ${checked} examples match their files`);
process.exitCode = failures.length ? 1 : 0;
