// makePaths builds its fixed paths by concatenation, not path.join (the
// login hook builds the table in every login). That is only right while
// every fixed path is absolute and normal and the root is resolved first:
// each case below compares the table with what `under` (path.join) gives.
import t from 'tap';
import path from 'node:path';
import { makePaths, type Paths } from '../../../src/agent/paths.js';

const fixedKeys = (p: Paths): string[] => Object.keys(p).filter((k) => k !== 'root' && typeof p[k as keyof Paths] === 'string');

t.test('every fixed path is absolute and normal on a real VM', async (t) => {
  const vm = makePaths('/');
  t.equal(vm.root, '/');
  t.ok(fixedKeys(vm).length >= 30, 'the table is the one the agent uses');
  for (const key of fixedKeys(vm)) {
    const value = vm[key as keyof Paths] as string;
    t.ok(path.isAbsolute(value), `${key} is absolute`);
    t.equal(path.normalize(value), value, `${key} is normal (${value})`);
  }
});

const roots: [string, string][] = [
  ['default', '/'],
  ['a temp tree', '/tmp/dsvm-test'],
  ['a trailing slash', '/tmp/dsvm-test/'],
  ['doubled and dotted parts', '//tmp//a/../dsvm-test/.'],
  ['a relative root', 'some/dir'],
  ['the root spelled twice', '//'],
];

for (const [name, root] of roots) {
  t.test(`under a root prefix: ${name} (${root})`, async (t) => {
    const vm = makePaths('/');
    const p = makePaths(root);
    t.equal(p.root, path.resolve(root));
    for (const key of fixedKeys(vm)) {
      const onVm = vm[key as keyof Paths] as string;
      t.equal(p[key as keyof Paths], p.under(onVm), `${key} is under() of ${onVm}`);
      t.equal(p[key as keyof Paths], path.join(path.resolve(root), onVm), `${key} is path.join(root, ${onVm})`);
    }
  });
}
