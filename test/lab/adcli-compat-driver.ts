/**
 * Runs the adcli 0.9.0 fallback (src/tasks/domain-join/adcli-compat.ts)
 * inside a lab client, with the agent's real runner, against the lab's real
 * DC: join.test.ts drives it to prove the fallback for real on a machine
 * whose adcli is 0.9.1 (the path is chosen from adcli's help in production;
 * here the functions are called directly, so no knob exists in the agent).
 *
 *   adcli-compat-driver.ts stamp|lookup REALM DC USER NAME [DESCRIPTION]   (password on stdin)
 *
 * Prints the result as JSON on stdout.
 */
import { readFileSync } from 'node:fs';
import { createLogger } from '../../src/agent/log.js';
import { Redactor } from '../../src/agent/redact.js';
import { createRunner } from '../../src/agent/runner.js';
import { lookupComputerOverLdap, stampDescriptionOverLdap } from '../../src/tasks/domain-join/adcli-compat.js';

const [op, realm, dc, user, name, description] = process.argv.slice(2);
if (!op || !realm || !dc || !user || !name) {
  process.stderr.write('usage: adcli-compat-driver.ts stamp|lookup REALM DC USER NAME [DESCRIPTION]\n');
  process.exit(2);
}
const password = readFileSync(0, 'utf8').replace(/\n$/, '');
const redactor = new Redactor();
redactor.add(password);
const log = createLogger({ level: 'debug', redactor });
const doors = { run: createRunner({ log, redactor }), log };
const login = { realm, dc, user, password };
try {
  if (op === 'stamp') {
    await stampDescriptionOverLdap(doors, login, name, description ?? '');
    process.stdout.write(`${JSON.stringify({ ok: true })}\n`);
  } else {
    process.stdout.write(`${JSON.stringify({ ok: true, existing: (await lookupComputerOverLdap(doors, login, name)) ?? null })}\n`);
  }
} catch (err) {
  process.stdout.write(`${JSON.stringify({ ok: false, error: (err as Error).message })}\n`);
  process.exit(1);
}
