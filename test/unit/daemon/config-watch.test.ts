// The running daemon's view of its config file: re-read on SIGHUP and on
// change, never applied; garbage is reported with the key and the fix while
// the daemon keeps the config it started with.
import t from 'tap';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { loadConfig } from '../../../src/agent/config.js';
import { createLogger } from '../../../src/agent/log.js';
import { Redactor } from '../../../src/agent/redact.js';
import { ConfigWatch } from '../../../src/app/daemon/config-watch.js';

const GOOD = 'domain: { name: contoso.test, joinUser: dsvm-join, joinPassword: { file: /etc/dsvm-agent/join-password } }\n';
const OTHER = 'domain: { name: fabrikam.test, joinUser: dsvm-join, joinPassword: { file: /etc/dsvm-agent/join-password } }\n';

t.test('ok, then garbage (invalid, named), then another valid file (changed), then back (ok)', async (t) => {
  const file = path.join(mkdtempSync(path.join(tmpdir(), 'config-watch-')), 'config.yaml');
  writeFileSync(file, GOOD);
  const running = await loadConfig(file);
  const lines: string[] = [];
  const w = new ConfigWatch(file, running, createLogger({ redactor: new Redactor(), write: (l) => lines.push(l) }));
  t.equal((await w.recheck('test')).state, 'ok');
  writeFileSync(file, 'domain: [\u0000garbage: {{{\n');
  const bad = await w.recheck('test');
  t.equal(bad.state, 'invalid');
  t.match(bad.reason, /config\.yaml/, 'names the file');
  t.match(bad.reason, /fix: /, 'carries the fix');
  t.match(bad.reason, /keeps running on the last good config/);
  t.match(lines.join('\n'), /invalid/, 'logged as an error once');
  writeFileSync(file, 'domain: { name: contoso.test, joinUser: 42 }\n');
  t.match((await w.recheck('test')).reason, /domain\.joinUser|domain\.joinPassword/, 'a schema error names the key');
  writeFileSync(file, OTHER);
  const changed = await w.recheck('test');
  t.equal(changed.state, 'changed');
  t.match(changed.reason, /restart the agent/);
  writeFileSync(file, GOOD);
  t.equal((await w.recheck('test')).state, 'ok');
  t.equal(running.domain.name, 'contoso.test', 'the running config object is never replaced');
});

t.test('SIGHUP re-reads (and no longer ends the process)', async (t) => {
  const file = path.join(mkdtempSync(path.join(tmpdir(), 'config-watch-')), 'config.yaml');
  writeFileSync(file, GOOD);
  const w = new ConfigWatch(file, await loadConfig(file), createLogger({ redactor: new Redactor(), write: () => undefined }));
  w.start();
  t.teardown(() => w.stop());
  writeFileSync(file, 'not: [a, config');
  process.kill(process.pid, 'SIGHUP');
  for (let i = 0; i < 50 && w.current.state !== 'invalid'; i++) await new Promise((r) => setTimeout(r, 20));
  t.equal(w.current.state, 'invalid', 'the signal made it look');
});
