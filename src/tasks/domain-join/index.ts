import { hostname as osHostname } from 'node:os';
import { readdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { permanent, transient } from '../../agent/errors.js';
import { readIfExists, setMarkedBlock, writeFileAtomic } from '../../agent/fsutil.js';
import { summarize } from '../../agent/runner.js';
import { retryTransient, type CheckResult, type Task, type TaskContext } from '../../agent/task.js';
import { leaveBackoff } from '../../agent/backoff.js';
import {
  adcliWords,
  deleteComputerArgv,
  isNoSuchComputer,
  joinArgv,
  keytabComputerName,
  keytabLoginArgv,
  parseAdcliError,
  testJoinArgv,
} from './adcli.js';
import { candidateNames, judgeExisting, primaryComputerName, stampedVmId, vmIdStamp } from './computer-name.js';
import { detectAdcli, stampDescriptionOverLdap, type DirectoryLogin } from './adcli-compat.js';
import { ADCLI_TIMEOUT_MS, askAdcliOnce, directoryDc, joinSecret, lookupComputer, type AdcliAsk } from './lookup.js';
import { recentDomainController } from '../preflight/index.js';
import {
  currentWriter,
  desiredFiles,
  differingFiles,
  FileTransaction,
  sssdDropInFile,
  sudoersFile,
  validateSudoers,
  type DifferingFile,
} from './files.js';
import {
  joinFacts,
  MKHOMEDIR_PROFILE,
  MKHOMEDIR_SESSION_LINE,
  removeSssFromNsswitch,
  setKrb5Block,
  SSHD_DROP_IN,
  type JoinFacts,
} from './render.js';

const SSSD = 'sssd';
const SSH = 'ssh.service';

/** Where the join stands: the keytab's account and whether the DC accepts it. */
export interface JoinStatus {
  ok: boolean;
  reason: string;
  /** The computer name in the keytab, when there is one. */
  computerName?: string;
}

/** Read the keytab's machine principal (klist -k); undefined without a keytab. */
async function keytabName(ctx: TaskContext, realm: string): Promise<string | undefined> {
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

/**
 * The keytab `adcli join` wrote in this process, by identity (inode, size,
 * mtime). The task's check right after its own apply needs no second round
 * trip to the DC to learn what the join's exit status already said; any
 * other writer of the keytab, or a later look (the daemon's domain-trust
 * check always runs `adcli testjoin`), asks the DC again.
 */
const freshJoins = new WeakMap<TaskContext, { ino: number; size: number; mtimeMs: number; name: string; at: number }>();
const FRESH_JOIN_MS = 60_000;

async function keytabIdentity(file: string): Promise<{ ino: number; size: number; mtimeMs: number } | undefined> {
  try {
    const st = await stat(file);
    return { ino: st.ino, size: st.size, mtimeMs: st.mtimeMs };
  } catch {
    return undefined;
  }
}

async function rememberJoin(ctx: TaskContext, name: string): Promise<void> {
  const id = await keytabIdentity(ctx.paths.krb5Keytab);
  if (id) freshJoins.set(ctx, { ...id, name, at: ctx.clock.now() });
}

/** testJoin, unless this process's own join wrote the keytab as it is now, moments ago. */
async function joinStatusForPlan(ctx: TaskContext): Promise<JoinStatus> {
  const fresh = freshJoins.get(ctx);
  if (fresh && ctx.clock.now() - fresh.at < FRESH_JOIN_MS) {
    const id = await keytabIdentity(ctx.paths.krb5Keytab);
    if (id && id.ino === fresh.ino && id.size === fresh.size && id.mtimeMs === fresh.mtimeMs)
      return { ok: true, reason: `joined as ${fresh.name} (adcli join wrote this keytab)`, computerName: fresh.name };
  }
  freshJoins.delete(ctx);
  return testJoin(ctx);
}

/** Inputs for the name rule: config, IMDS (optional: a VM outside Azure has none) and the host name. */
async function nameSources(ctx: TaskContext): Promise<Parameters<typeof primaryComputerName>[0]> {
  let vmScaleSetName = '';
  let vmName = '';
  try {
    const c = await ctx.imds.compute();
    vmScaleSetName = c.vmScaleSetName;
    vmName = c.name;
  } catch (err) {
    ctx.log.debug(`IMDS compute unavailable, naming from the host name: ${(err as Error).message}`);
  }
  const hostname = ctx.state.facts.hostname ?? osHostname();
  return { configured: ctx.cfg.domain.computerName, vmScaleSetName, vmName, hostname };
}

/**
 * Pick the computer name for a join: the primary derived name, or the
 * first alternate no other live VM holds (see computer-name.ts and
 * docs/domain-join.md for the rule).
 */
export async function chooseComputerName(ctx: TaskContext, adcli: AdcliAsk = askAdcliOnce(ctx)): Promise<{ name: string; why: string }> {
  const primary = primaryComputerName(await nameSources(ctx));
  const explicit = primary.source === 'explicit';
  if (ctx.cfg.domain.oneTimePassword) return { name: primary.name, why: `pre-staged account ${primary.name}` };
  const vmId = ctx.state.vmId;
  const taken: string[] = [];
  for (const name of candidateNames(primary, vmId)) {
    const verdict = judgeExisting(await lookupComputer(ctx, name, adcli), vmId, ctx.clock.now(), explicit);
    if (verdict.use)
      return { name, why: `${primary.source} name ${name} (${verdict.why}${primary.shortened ? `, shortened from ${primary.from}` : ''})` };
    taken.push(`${name} (held by ${verdict.holder})`);
  }
  throw permanent(`computer name: every candidate is held by another live machine: ${taken.join(', ')}`, {
    reason: 'computer-name-taken',
    fix: explicit
      ? 'choose another domain.computerName, or delete the stale computer object'
      : 'delete stale computer objects in the OU, or set domain.computerName',
  });
}

/**
 * May a VM whose trust broke rejoin under its old name? Not when the object
 * now carries another live VM's stamp: while this VM was away (deallocated
 * beyond the stale limit) another took the name over by the rule, and
 * taking it back would break that one, which would take it back in turn.
 */
async function stillOurs(ctx: TaskContext, name: string, adcli: AdcliAsk): Promise<boolean> {
  const explicit = ctx.cfg.domain.computerName !== 'auto';
  const verdict = judgeExisting(await lookupComputer(ctx, name, adcli), ctx.state.vmId, ctx.clock.now(), explicit);
  if (!verdict.use) ctx.log.warn(`${name} is now held by ${verdict.holder}: joining under another name`);
  return verdict.use;
}

interface Plan {
  facts: JoinFacts;
  join: boolean;
  why: string;
  files: DifferingFile[];
  nsswitchAdded: string[];
  pamEnable: boolean;
  sssdActive: boolean;
  /** What adcli can do (asked once per check; apply reuses the answer). */
  adcli: AdcliAsk;
}

async function pamEnabled(ctx: TaskContext): Promise<boolean> {
  const session = await readIfExists(path.join(ctx.paths.pamDir, 'common-session'));
  return session !== undefined && MKHOMEDIR_SESSION_LINE.test(session);
}

async function osFacts(ctx: TaskContext): Promise<{ osName?: string; osVersion?: string }> {
  const text = (await readIfExists(ctx.paths.osRelease)) ?? '';
  const get = (k: string): string | undefined => new RegExp(`^${k}="?([^"\\n]*)"?$`, 'm').exec(text)?.[1];
  const out: { osName?: string; osVersion?: string } = {};
  const name = get('NAME');
  const version = get('VERSION_ID');
  if (name) out.osName = name;
  if (version) out.osVersion = version;
  return out;
}

async function plan(ctx: TaskContext): Promise<Plan> {
  const adcli = askAdcliOnce(ctx);
  const status = await joinStatusForPlan(ctx);
  let name: string;
  let join = !status.ok;
  let why = status.reason;
  if (status.ok && status.computerName) {
    // Never rename a joined host. One exception: a keytab copied in with an
    // image of another VM authenticates fine, but the object is stamped with
    // that VM's id; sharing one account between two machines breaks both.
    name = status.computerName;
    if (ctx.state.facts.computerName !== name && ctx.cfg.domain.joinPassword) {
      const holder = stampedVmId((await lookupComputer(ctx, name, adcli))?.description);
      if (holder !== undefined && holder !== ctx.state.vmId.toLowerCase()) {
        ctx.log.warn(`the keytab's account ${name} belongs to VM ${holder} (copied image?): joining under a new name`);
        name = (await chooseComputerName(ctx, adcli)).name;
        join = true;
        why = `keytab belongs to VM ${holder}`;
      }
    }
  } else if (
    status.computerName &&
    ctx.state.facts.computerName === status.computerName &&
    (await stillOurs(ctx, status.computerName, adcli))
  ) {
    // This VM's own join broke (account deleted or password reset): rejoin under the same name.
    name = status.computerName;
  } else {
    const chosen = await chooseComputerName(ctx, adcli);
    name = chosen.name;
    why = `${status.reason}; will join as ${chosen.why}`;
  }
  const facts = joinFacts(ctx.cfg.domain.name, name);
  const { files, nsswitchAdded } = await desiredFiles(ctx, facts);
  return {
    facts,
    join,
    why,
    files: await differingFiles(files, await currentWriter(ctx.paths.under('/etc/group'))),
    nsswitchAdded,
    pamEnable: !(await pamEnabled(ctx)),
    sssdActive: await ctx.services.isActive(SSSD),
    adcli,
  };
}

function changesOf(p: Plan, ctx: TaskContext): string[] {
  const out: string[] = [];
  if (p.join)
    out.push(
      `join ${p.facts.realm} as ${p.facts.computerName}${ctx.cfg.domain.computerOu ? ` in ${ctx.cfg.domain.computerOu}` : ''} (${p.why})`,
    );
  // Each file change says what differs (attribute, value on each side): after
  // an apply it is what the engine's "still differs after apply" shows.
  for (const f of p.files) out.push(`${f.content === undefined ? 'remove' : 'write'} ${f.path} (${f.differs})`);
  if (p.pamEnable) out.push(`enable pam profile ${MKHOMEDIR_PROFILE} (home directories, umask 0077)`);
  const restart = [
    ...(p.sssdActive ? [] : ['sssd is not running']),
    ...(p.join ? ['new join'] : []),
    ...(p.files.some((f) => f.path === ctx.paths.sssdConf) ? ['sssd.conf changes'] : []),
  ];
  if (restart.length > 0) out.push(`(re)start sssd (${restart.join(', ')})`);
  return out;
}

/**
 * `adcli join`, ready to start: everything it needs (secret, OS facts, what
 * this adcli can do) is gathered first, so the call that spawns it does
 * nothing else. An adcli without `join --description` (0.9.0) joins without
 * it, and the vmId stamp is written over LDAP right after (adcli-compat.ts).
 */
async function prepareJoin(ctx: TaskContext, facts: JoinFacts, adcli: AdcliAsk): Promise<() => Promise<void>> {
  const secret = await joinSecret(ctx);
  const dc = recentDomainController(ctx);
  const features = await adcli();
  const description = vmIdStamp(ctx.state.vmId);
  const args = joinArgv({
    domain: facts.domain,
    realm: facts.realm,
    computerName: facts.computerName,
    hostFqdn: facts.hostFqdn,
    keytab: ctx.paths.krb5Keytab,
    ...(ctx.cfg.domain.computerOu ? { ou: ctx.cfg.domain.computerOu } : {}),
    ...(await osFacts(ctx)),
    ...(features.joinDescription ? { description } : {}),
    credentials: secret.kind === 'user' ? { kind: 'user', user: secret.user! } : { kind: 'computer' },
    // The DC that answered the name check, when there was one (kdc-probe.ts).
    ...(dc ? { domainController: dc } : {}),
  });
  const login: DirectoryLogin | undefined =
    features.joinDescription || secret.kind !== 'user'
      ? undefined
      : { realm: facts.realm, dc: directoryDc(ctx, features, 'the vmId stamp'), user: secret.user!, password: secret.password };
  if (!features.joinDescription && secret.kind !== 'user')
    // The stamp only tells a live VM's name from a stale one for the name
    // rule, which pre-staged accounts never go through; without a join account
    // nothing may write it (a computer's SELF has no write on description).
    ctx.log.warn(
      `adcli ${features.label} has no join --description: the pre-staged account ${facts.computerName} gets no vmId stamp (install adcli 0.9.1 or newer to have it)`,
    );
  return async () => {
    const r = await ctx.run({ file: 'adcli', args, input: secret.password, timeoutMs: ADCLI_TIMEOUT_MS });
    ctx.log.debug(`adcli join: exit ${r.exitCode} in ${r.durationMs} ms`, { stderr: r.stderr.slice(-2000) });
    if (r.exitCode !== 0)
      throw parseAdcliError('join', r, {
        ...(secret.user ? { user: secret.user } : { prestaged: facts.computerName }),
        ...(ctx.cfg.domain.computerOu ? { ou: ctx.cfg.domain.computerOu } : {}),
      });
    if (login) await stampDescriptionOverLdap(ctx, login, facts.computerName, description);
  };
}

async function pamAuthUpdate(ctx: TaskContext, args: string[]): Promise<void> {
  const r = await ctx.run({
    file: 'pam-auth-update',
    args: ['--package', ...args],
    env: { DEBIAN_FRONTEND: 'noninteractive' },
    timeoutMs: 30_000,
  });
  if (r.exitCode !== 0)
    throw permanent(`pam-auth-update ${args.join(' ')}: ${summarize(r)}`, {
      reason: 'pam-update-failed',
      fix: 'run pam-auth-update by hand to see the problem',
    });
}

/**
 * Join (when needed), write every file, enable home creation and (re)start
 * sssd. On any failure everything is put back as it was, keytab included:
 * a failed join leaves no configuration claiming a join.
 */
async function applyPlan(ctx: TaskContext, p: Plan): Promise<void> {
  const tx = new FileTransaction();
  let pamChanged = false;
  // Home creation does not depend on the join: pam-auth-update runs while
  // adcli talks to the DC (adcli is started first: it is the long pole), and
  // is undone with the rest if the join fails.
  let pamStep: Promise<void> = Promise.resolve();
  let joinStep: Promise<void> = Promise.resolve();
  try {
    const sudo = p.files.find((f) => f.path === sudoersFile(ctx));
    if (sudo?.content !== undefined) await validateSudoers(ctx, sudo.content);
    // The profile first: pam-auth-update reads it.
    const profile = p.pamEnable ? p.files.find((f) => f.path === path.join(ctx.paths.pamConfigsDir, MKHOMEDIR_PROFILE)) : undefined;
    if (profile) await tx.write(profile);
    if (p.join) {
      const join = await prepareJoin(ctx, p.facts, p.adcli);
      // adcli adds to an existing keytab: a stale one (another name) must go, or two accounts would be in it.
      await tx.remove(ctx.paths.krb5Keytab);
      joinStep = join();
      joinStep.catch(() => undefined); // awaited below; never an unhandled rejection
    }
    if (p.pamEnable) {
      pamChanged = true;
      pamStep = pamAuthUpdate(ctx, ['--enable', MKHOMEDIR_PROFILE]);
      pamStep.catch(() => undefined);
    }
    await joinStep;
    if (p.join) {
      ctx.state.facts.computerName = p.facts.computerName;
      await rememberJoin(ctx, p.facts.computerName);
    }
    await pamStep;
    for (const f of p.files) if (f !== profile) await tx.write(f);
    if (p.files.some((f) => f.path === sssdDropInFile(ctx))) await ctx.services.daemonReload();
    if (p.nsswitchAdded.length > 0) {
      const prev = ctx.state.facts.nsswitchAdded ?? [];
      ctx.state.facts.nsswitchAdded = [...new Set([...prev, ...p.nsswitchAdded])];
    }
    if (p.join || p.files.some((f) => f.path === ctx.paths.sssdConf) || !(await ctx.services.isActive(SSSD))) {
      await ctx.services.restart(SSSD).catch((err: Error) => {
        throw transient(`sssd did not start: ${err.message}`, {
          reason: 'sssd-start-failed',
          fix: "read sssd's logs (/var/log/sssd/) for the cause",
        });
      });
    }
    await ctx.services.enable(SSSD);
    if (p.files.some((f) => f.label === 'sshd drop-in') && (await ctx.services.isActive(SSH))) await ctx.services.restart(SSH);
  } catch (err) {
    freshJoins.delete(ctx);
    await Promise.allSettled([joinStep, pamStep]);
    const restored = await tx.restore();
    if (pamChanged) await pamAuthUpdate(ctx, ['--remove', MKHOMEDIR_PROFILE]).catch(() => undefined);
    if (p.join) {
      delete ctx.state.facts.computerName;
      await ctx.services.stop(SSSD).catch(() => undefined);
    }
    ctx.log.warn(`domain-join failed; put back ${restored.length} file(s) as they were`);
    throw err;
  }
}

/** Join the AD domain and configure sssd, Kerberos, sudo, sshd and home creation. */
export const domainJoinTask: Task = {
  id: 'domain-join',
  description: 'join the AD domain and configure sssd, Kerberos, sudo, sshd and home creation',
  async check(ctx): Promise<CheckResult> {
    const p = await plan(ctx);
    return { changes: changesOf(p, ctx), detail: { plan: p } };
  },
  async apply(ctx, found) {
    const p = (found.detail?.plan as Plan | undefined) ?? (await plan(ctx));
    await applyPlan(ctx, p);
  },
};

/** Rejoin under the same name (trust broken: account deleted or password reset); used by the daemon's repair. */
export async function rejoin(ctx: TaskContext): Promise<void> {
  const realm = ctx.cfg.domain.name.toUpperCase();
  const name = (await keytabName(ctx, realm)) ?? ctx.state.facts.computerName;
  if (name) ctx.state.facts.computerName = name;
  const p = await plan(ctx);
  await applyPlan(ctx, { ...p, join: true });
}

/**
 * Delete this machine's computer account in AD (scale-in Terminate,
 * `deprovision --leave-domain`). Needs the join account with the "Delete
 * computer objects" right. An account that is already gone is success.
 */
export async function leaveDomain(ctx: TaskContext): Promise<string | undefined> {
  const d = ctx.cfg.domain;
  const domain = d.name.toLowerCase();
  const name = (await keytabName(ctx, domain.toUpperCase())) ?? ctx.state.facts.computerName;
  if (!name) return undefined;
  if (!d.joinUser || !d.joinPassword) {
    throw permanent(
      `cannot delete the computer account ${name}: no join account configured (pre-staged accounts are deleted by the directory's administrators)`,
      {
        reason: 'leave-no-credentials',
        fix: 'delete the computer object in AD, or configure domain.joinUser/joinPassword',
      },
    );
  }
  const password = await ctx.secret(d.joinPassword, 'domain.joinPassword');
  const joinUser = d.joinUser;
  // A DC that is busy or restarting for a few seconds is retried (transient);
  // bad credentials or missing rights fail at once (permanent).
  await retryTransient(ctx, 'delete the computer account', leaveBackoff, async () => {
    const r = await ctx.run({
      file: 'adcli',
      args: deleteComputerArgv(domain, domain.toUpperCase(), joinUser, name),
      input: password,
      timeoutMs: ADCLI_TIMEOUT_MS,
    });
    if (r.exitCode !== 0 && !isNoSuchComputer(r)) throw parseAdcliError('delete-computer', r, { user: joinUser });
  });
  return `computer account ${name} in ${domain.toUpperCase()}`;
}

/** deprovision: remove every trace of the join (and the AD account when asked). */
export async function undoJoin(ctx: TaskContext, opts: { leaveDomain: boolean }): Promise<string[]> {
  const removed: string[] = [];
  const p = ctx.paths;
  if (opts.leaveDomain) {
    const left = await leaveDomain(ctx);
    if (left) removed.push(left);
  }
  if (await ctx.services.isActive(SSSD)) {
    await ctx.services.stop(SSSD);
    removed.push('sssd (stopped)');
  }
  await ctx.services.disable(SSSD);
  const rmIf = async (file: string): Promise<void> => {
    if (!(await exists(file))) return;
    await rm(file, { force: true });
    removed.push(file);
  };
  await rmIf(p.krb5Keytab);
  await rmIf(p.sssdConf);
  await rmIf(sudoersFile(ctx));
  await rmIf(path.join(p.sshdConfigDir, SSHD_DROP_IN));
  if (await exists(sssdDropInFile(ctx))) {
    await rmIf(sssdDropInFile(ctx));
    await ctx.services.daemonReload();
  }
  if (await pamEnabled(ctx)) {
    await pamAuthUpdate(ctx, ['--remove', MKHOMEDIR_PROFILE]);
    removed.push(`pam profile ${MKHOMEDIR_PROFILE} (disabled)`);
  }
  await rmIf(path.join(p.pamConfigsDir, MKHOMEDIR_PROFILE));
  const krb5 = await readIfExists(p.krb5Conf);
  if (krb5 !== undefined && setKrb5Block(krb5, undefined) !== krb5) {
    await writeBack(p.krb5Conf, setKrb5Block(krb5, undefined));
    removed.push(`${p.krb5Conf} (agent block)`);
  }
  const realmd = await readIfExists(p.realmdConf);
  if (realmd !== undefined && setMarkedBlock(realmd, undefined) !== realmd) {
    const rest = setMarkedBlock(realmd, undefined);
    if (rest.trim() === '') await rm(p.realmdConf, { force: true });
    else await writeBack(p.realmdConf, rest);
    removed.push(`${p.realmdConf} (agent block)`);
  }
  const added = ctx.state.facts.nsswitchAdded ?? [];
  const ns = await readIfExists(p.nsswitchConf);
  if (ns !== undefined && added.length > 0 && removeSssFromNsswitch(ns, added) !== ns) {
    await writeBack(p.nsswitchConf, removeSssFromNsswitch(ns, added));
    removed.push(`${p.nsswitchConf} (sss on ${added.join(', ')})`);
  }
  // The cache holds the domain's users and this machine's identity: an image must not carry it.
  const cache = await readdir(p.sssdDbDir).catch(() => [] as string[]);
  for (const f of cache) await rm(path.join(p.sssdDbDir, f), { force: true, recursive: true });
  if (cache.length > 0) removed.push(`${p.sssdDbDir}/* (sssd cache)`);
  delete ctx.state.facts.computerName;
  delete ctx.state.facts.nsswitchAdded;
  return removed;
}

async function writeBack(file: string, content: string): Promise<void> {
  const mode = (await stat(file)).mode & 0o7777;
  await writeFileAtomic(file, content, { mode });
}

async function exists(file: string): Promise<boolean> {
  try {
    await stat(file);
    return true;
  } catch {
    return false;
  }
}
