import { stat } from 'node:fs/promises';
import type { TaskContext } from '../../agent/task.js';
import { adcliWords, keytabComputerName, keytabLoginArgv, parseAdcliError, testJoinArgv } from './adcli.js';
import { detectAdcli } from './adcli-compat.js';
import { ADCLI_TIMEOUT_MS } from './lookup.js';

/** Where the join stands: the keytab's account and whether the DC accepts it. */
export interface JoinStatus {
  ok: boolean;
  reason: string;
  /** The computer name in the keytab, when there is one. */
  computerName?: string;
}

/** Read the keytab's machine principal (klist -k); undefined without a keytab. */
export async function keytabName(ctx: TaskContext, realm: string): Promise<string | undefined> {
  if (!(await exists(ctx.paths.krb5Keytab))) return undefined;
  const r = await ctx.run({ file: 'klist', args: ['-k', ctx.paths.krb5Keytab], timeoutMs: 10_000 });
  if (r.exitCode !== 0) return undefined;
  return keytabComputerName(r.stdout, realm);
}

/**
 * Is this machine joined? `adcli testjoin` authenticates with the keytab's
 * machine password, so "ok" means the DC accepts this machine now. A DC that
 * cannot be reached is a transient error (thrown), not "not joined": the
 * agent must not rejoin (and rename) a healthy machine during a DC outage.
 */
export async function testJoin(ctx: TaskContext): Promise<JoinStatus> {
  const realm = ctx.cfg.domain.name.toUpperCase();
  const name = await keytabName(ctx, realm);
  if (name === undefined) return { ok: false, reason: `no machine account for ${realm} in ${ctx.paths.krb5Keytab}` };
  // adcli 0.9.0's testjoin has no way to name the machine: it looks for the
  // host name's principal in the keytab ("Keytab contains no suitable keys
  // for HOSTNAME$"), which is not the agent's computer name. There the same
  // proof (the KDC accepts the keytab's machine key) comes from kinit -k.
  const features = await detectAdcli(ctx);
  const r = features.showComputer
    ? await ctx.run({
        file: 'adcli',
        args: testJoinArgv(ctx.cfg.domain.name.toLowerCase(), ctx.paths.krb5Keytab),
        timeoutMs: ADCLI_TIMEOUT_MS,
      })
    : await ctx.run({
        file: 'kinit',
        args: keytabLoginArgv(ctx.paths.krb5Keytab, name, realm),
        input: '',
        env: { KRB5CCNAME: 'MEMORY:' },
        timeoutMs: ADCLI_TIMEOUT_MS,
      });
  if (r.exitCode === 0) return { ok: true, reason: `joined as ${name}`, computerName: name };
  const err = parseAdcliError('testjoin', r);
  if (err.kind === 'transient') throw err;
  return { ok: false, reason: `the DC refused the machine account ${name}: ${adcliWords(r)}`, computerName: name };
}

const FRESH_JOIN_MS = 60_000;

async function keytabIdentity(file: string): Promise<{ ino: number; size: number; mtimeMs: number } | undefined> {
  try {
    const st = await stat(file);
    return { ino: st.ino, size: st.size, mtimeMs: st.mtimeMs };
  } catch {
    return undefined;
  }
}

/**
 * The keytabs `adcli join` wrote in this process, by path and identity
 * (inode, size, mtime). The task's check right after its own apply needs no
 * second round trip to the DC to learn what the join's exit status already
 * said; any other writer of the keytab, or a later look (the daemon's
 * domain-trust check always runs `adcli testjoin`), asks the DC again.
 * The domain-join task owns one (makeDomainJoinTask).
 */
export class FreshJoins {
  private readonly byKeytab = new Map<string, { ino: number; size: number; mtimeMs: number; name: string; at: number }>();

  async remember(ctx: TaskContext, name: string): Promise<void> {
    const id = await keytabIdentity(ctx.paths.krb5Keytab);
    if (id) this.byKeytab.set(ctx.paths.krb5Keytab, { ...id, name, at: ctx.clock.now() });
  }

  /** A join that failed and was rolled back: its keytab is no longer this process's word. */
  forget(ctx: TaskContext): void {
    this.byKeytab.delete(ctx.paths.krb5Keytab);
  }

  /** testJoin, unless this process's own join wrote the keytab as it is now, moments ago. */
  async status(ctx: TaskContext): Promise<JoinStatus> {
    const fresh = this.byKeytab.get(ctx.paths.krb5Keytab);
    if (fresh && ctx.clock.now() - fresh.at < FRESH_JOIN_MS) {
      const id = await keytabIdentity(ctx.paths.krb5Keytab);
      if (id && id.ino === fresh.ino && id.size === fresh.size && id.mtimeMs === fresh.mtimeMs)
        return { ok: true, reason: `joined as ${fresh.name} (adcli join wrote this keytab)`, computerName: fresh.name };
    }
    this.forget(ctx);
    return testJoin(ctx);
  }
}

/** Whether a file exists (stat succeeds). */
export async function exists(file: string): Promise<boolean> {
  try {
    await stat(file);
    return true;
  } catch {
    return false;
  }
}
