// The README's examples are real files of this repository's suite: every code block introduced
// by "part of this repository's suite (`<path>`)" must equal that file, and every block introduced by
// "an excerpt of this repository's suite (`<path>`)" must appear in it verbatim, so copying it from the
// README gives code that is known to work. And the Testing section names every export of
// `ember-presence/test-support` and every `setupPresence` option, so nothing there is found only by
// reading the source.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import ts from 'typescript';

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
  if (!matches)
    failures.push(
      `the example for ${path} differs from the file; copy the file (or the excerpt) into the README`,
    );
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
      `line ${line} holds a code block that is neither a suite file nor marked <!-- readme-fragment: why -->`,
    );
  }
}
if (checked === 0)
  failures.push('no example found: the README lost its Testing example');

const testing = section('## Testing your app');
const parse = (path) =>
  ts.createSourceFile(
    path,
    readFileSync(resolve(root, path), 'utf8'),
    ts.ScriptTarget.Latest,
  );
const exported = parse('addon-test-support/index.ts')
  .statements.filter(ts.isExportDeclaration)
  .flatMap((declaration) => declaration.exportClause?.elements ?? [])
  .map((element) => element.name.text);
const options = members(
  'addon-test-support/-private/fake-server.ts',
  'FakeServerOptions',
);
const configKeys = members('addon/-private/config.ts', 'PresenceConfig');
/** The name inside a code span (prose like "channels" does not count). */
const inCode = (n) => `\`[^\`\\n]*\\b${n}\\b[^\`\\n]*\``;
requireNames(
  exported,
  10,
  testing,
  inCode,
  'the Testing section',
  'test-support export',
);
requireNames(
  options,
  4,
  testing,
  inCode,
  'the Testing section',
  'setupPresence option',
);
requireNames(
  configKeys,
  10,
  section('### Configuration'),
  (n) => `\\b${n}:`,
  'the Configuration section',
  'option',
);

for (const failure of failures) console.error(`README.md: ${failure}`);
if (!failures.length)
  console.log(
    `README.md: ${checked} examples match their files; the Testing section names ${exported.length} test-support exports and ${options.length} setupPresence options; Configuration shows ${configKeys.length} options`,
  );
process.exitCode = failures.length ? 1 : 0;

/** The README's text from the heading `heading` to the next heading of the same or a higher level. */
function section(heading) {
  const start = readme.indexOf(`\n${heading}\n`);
  if (start < 0) {
    failures.push(`the README lost its "${heading}" section`);
    return '';
  }
  const level = heading.split(' ')[0].length;
  const body = start + heading.length + 2;
  const next = new RegExp(`\\n#{1,${level}} `).exec(readme.slice(body));
  return readme.slice(start, next ? body + next.index : undefined);
}

/** The member names of interface `name` in `path`. */
function members(path, name) {
  return parse(path)
    .statements.filter(
      (node) => ts.isInterfaceDeclaration(node) && node.name.text === name,
    )
    .flatMap((node) => node.members)
    .map((member) => member.name.text);
}

/** Fails for each of `names` that `text` (a README section) does not show; `least` guards a bad parse. */
function requireNames(names, least, text, pattern, where, kind) {
  if (names.length < least) failures.push(`could not read the ${kind}s`);
  for (const name of names) {
    if (!new RegExp(pattern(name)).test(text))
      failures.push(`${where} does not name the ${kind} \`${name}\``);
  }
}
