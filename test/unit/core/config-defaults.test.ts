import t from 'tap';
import { z } from 'zod';
import { validateConfig } from '../../../src/agent/config.js';
import { configSchema } from '../../../src/agent/config-schema.js';

const minimal = { domain: { name: 'contoso.test', joinUser: 'dsvm-join', joinPassword: { file: '/etc/dsvm-agent/join-password' } } };

t.test('each default is stated once, on its key: a section left out is the section written empty', async (t) => {
  const json = z.toJSONSchema(configSchema, { io: 'input', unrepresentable: 'any' }) as {
    properties: Record<string, { type?: string; default?: unknown }>;
  };
  const withDefaults = Object.entries(json.properties).filter(([, p]) => p.default !== undefined);
  t.ok(withDefaults.length >= 7, 'the sections that may be left out');
  const left = validateConfig(minimal, 'test') as Record<string, unknown>;
  for (const [name, p] of withDefaults) {
    t.same(p.default, {}, `${name}: no default of its own beyond its keys' defaults`);
    const written = validateConfig({ ...minimal, [name]: {} }, 'test') as Record<string, unknown>;
    t.same(left[name], written[name], `${name}: left out or written empty, the same values`);
  }
  t.equal((left.workspace as { loginTimeoutMs: number }).loginTimeoutMs, 3000, 'a key default reaches a section left out');
  t.not(validateConfig(minimal, 'a').health, validateConfig(minimal, 'b').health, 'each config gets its own section objects');
});
