// Writes packaging/config.schema.json from the config schema; with --check,
// fails when the committed file is out of date.
import { readFileSync, writeFileSync } from 'node:fs';
import { z } from 'zod';
import { configSchema } from '../src/agent/config-schema.js';

const target = new URL('../packaging/config.schema.json', import.meta.url);
const schema = {
  ...z.toJSONSchema(configSchema, { io: 'input', unrepresentable: 'any' }),
  $id: 'https://github.com/dsvm-agent/dsvm-agent/packaging/config.schema.json',
  title: 'dsvm-agent configuration (/etc/dsvm-agent/config.yaml)',
};
const text = JSON.stringify(schema, null, 2) + '\n';
if (process.argv.includes('--check')) {
  let current = '';
  try {
    current = readFileSync(target, 'utf8');
  } catch {
    /* missing counts as stale */
  }
  if (current !== text) {
    console.error('packaging/config.schema.json is out of date: run `make schema`');
    process.exit(1);
  }
} else {
  writeFileSync(target, text);
  console.log('wrote packaging/config.schema.json');
}
