import path from 'node:path';
import { transient } from '../../agent/errors.js';
import { readIfExists } from '../../agent/fsutil.js';
import type { CheckResult, Task, TaskContext } from '../../agent/task.js';
import { joinArgv, parseAdcliError } from './adcli.js';
import { stampedVmId, vmIdStamp } from './computer-name.js';
import { stampDescriptionOverLdap, type DirectoryLogin, type JoinTicket } from './adcli-compat.js';
import { ADCLI_TIMEOUT_MS, askAdcliOnce, directoryDc, joinSecret, lookupComputer, type AdcliAsk } from './lookup.js';
import { recentDomainController } from '../preflight/index.js';
import {
  currentWriter,
  desiredFiles,
  differingFiles,
  FileTransaction,
  sssdDropInFile,
  sudoersFile,
  validateSssdConf,
  validateSudoers,
  type DifferingFile,
} from './files.js';
import { chooseComputerName, claimComputerName, claimTicket, stillOurs } from './naming.js';
import { pamAuthUpdate, pamEnabled } from './pam.js';
import { joinFacts, MKHOMEDIR_PROFILE, type JoinFacts } from './render.js';
import { SSSD_UNIT } from './sssd-check.js';
import { FreshJoins, keytabName } from './status.js';

const SSH = 'ssh.service';

/*
 * The domain-join task: plan what differs (the join, sssd/krb5/realmd/sudo/
 * sshd/PAM files), apply it as one transaction. Where the join stands is
 * status.ts, the computer name's I/O naming.ts, leaving and undo undo.ts.
 */

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

async function plan(ctx: TaskContext, joins: FreshJoins): Promise<Plan> {
  const adcli = askAdcliOnce(ctx);
  const status = await joins.status(ctx);
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
    sssdActive: await ctx.services.isActive(SSSD_UNIT),
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
 * this adcli can do) is gathered first, while the name is claimed, so the
 * call that spawns it does nothing else. With the claim's ticket adcli
 * authenticates with it (--login-ccache) instead of the password. An adcli
 * without `join --description` (0.9.0) joins without it, and the vmId
 * stamp is written over LDAP right after (adcli-compat.ts).
 */
async function prepareJoin(ctx: TaskContext, facts: JoinFacts, adcli: AdcliAsk): Promise<(ticket?: JoinTicket) => Promise<void>> {
  const secret = await joinSecret(ctx);
  const dc = recentDomainController(ctx);
  const features = await adcli();
  const description = vmIdStamp(ctx.state.vmId);
  const os = await osFacts(ctx);
  const argv = (ticket?: JoinTicket): string[] =>
    joinArgv({
      domain: facts.domain,
      realm: facts.realm,
      computerName: facts.computerName,
      hostFqdn: facts.hostFqdn,
      keytab: ctx.paths.krb5Keytab,
      ...(ctx.cfg.domain.computerOu ? { ou: ctx.cfg.domain.computerOu } : {}),
      ...os,
      ...(features.joinDescription ? { description } : {}),
      credentials:
        secret.kind === 'user' ? { kind: 'user', user: secret.user!, ...(ticket ? { ccache: ticket.ccache } : {}) } : { kind: 'computer' },
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
  // A ticket comes only with a join account (claimTicket).
  return async (ticket) => {
    const r = await ctx.run({
      file: 'adcli',
      args: argv(ticket),
      ...(ticket ? {} : { input: secret.password }),
      timeoutMs: ADCLI_TIMEOUT_MS,
    });
    ctx.log.debug(`adcli join: exit ${r.exitCode} in ${r.durationMs} ms`, { stderr: r.stderr.slice(-2000) });
    if (r.exitCode !== 0)
      throw parseAdcliError('join', r, {
        ...(secret.user ? { user: secret.user } : { prestaged: facts.computerName }),
        ...(ctx.cfg.domain.computerOu ? { ou: ctx.cfg.domain.computerOu } : {}),
      });
    if (login) await stampDescriptionOverLdap(ctx, login, facts.computerName, description, ticket);
  };
}

/**
 * Join (when needed), write every file, enable home creation and (re)start
 * sssd. On any failure everything is put back as it was, keytab included:
 * a failed join leaves no configuration claiming a join.
 */
async function applyPlan(ctx: TaskContext, p: Plan, joins: FreshJoins): Promise<void> {
  const tx = new FileTransaction();
  let pamChanged = false;
  // Home creation does not depend on the join: pam-auth-update runs while
  // adcli talks to the DC (adcli is started first: it is the long pole), and
  // is undone with the rest if the join fails.
  let pamStep: Promise<void> = Promise.resolve();
  let joinStep: Promise<void> = Promise.resolve();
  // The name becomes this VM's on the DC before the join (naming.ts: two VMs that chose it at once must not
  // both join with it). It talks to the DC while the candidate files are checked here: both precede the join.
  // The join account's ticket first (its kinit heads the join's critical path): the claim uses it, then
  // the join (--login-ccache). Closed when the join is over, whatever happened.
  let ticket: JoinTicket | undefined;
  let claimStep: Promise<void> = Promise.resolve();
  let joinReady: Promise<(ticket?: JoinTicket) => Promise<void>> | undefined;
  if (p.join) {
    const ticketStep = claimTicket(ctx).then((t) => (ticket = t));
    claimStep = ticketStep.then((t) => claimComputerName(ctx, p.facts.computerName, p.adcli, t));
    claimStep.catch(() => undefined); // awaited below; never an unhandled rejection
    // What this adcli can do is asked while the claim talks to the DC.
    joinReady = ticketStep.then(() => prepareJoin(ctx, p.facts, p.adcli));
    joinReady.catch(() => undefined);
  }
  try {
    const sudo = p.files.find((f) => f.path === sudoersFile(ctx));
    const sssdConf = p.files.find((f) => f.path === ctx.paths.sssdConf);
    // Both candidates are checked at once (each its own file); both must pass before anything is written.
    const checked = await Promise.allSettled([
      sudo?.content !== undefined ? validateSudoers(ctx, sudo.content) : undefined,
      sssdConf?.content !== undefined ? validateSssdConf(ctx, sssdConf.content) : undefined,
    ]);
    for (const c of checked) if (c.status === 'rejected') throw c.reason;
    // The profile first: pam-auth-update reads it.
    const profile = p.pamEnable ? p.files.find((f) => f.path === path.join(ctx.paths.pamConfigsDir, MKHOMEDIR_PROFILE)) : undefined;
    if (profile) await tx.write(profile);
    if (joinReady) {
      await claimStep;
      const join = await joinReady;
      // adcli adds to an existing keytab: a stale one (another name) must go, or two accounts would be in it.
      await tx.remove(ctx.paths.krb5Keytab);
      joinStep = join(ticket);
      joinStep.catch(() => undefined); // awaited below; never an unhandled rejection
    }
    if (p.pamEnable) {
      pamChanged = true;
      // Beside the join, at lower CPU priority: the join is the long pole, home creation is not waited for until it ends.
      pamStep = pamAuthUpdate(ctx, ['--enable', MKHOMEDIR_PROFILE], p.join ? { nice: 10 } : {});
      pamStep.catch(() => undefined);
    }
    await joinStep;
    await ticket?.close();
    if (p.join) {
      ctx.state.facts.computerName = p.facts.computerName;
      await joins.remember(ctx, p.facts.computerName);
    }
    await pamStep;
    for (const f of p.files) if (f !== profile) await tx.write(f);
    if (p.files.some((f) => f.path === sssdDropInFile(ctx))) await ctx.services.daemonReload();
    if (p.nsswitchAdded.length > 0) {
      const prev = ctx.state.facts.nsswitchAdded ?? [];
      ctx.state.facts.nsswitchAdded = [...new Set([...prev, ...p.nsswitchAdded])];
    }
    if (p.join || p.files.some((f) => f.path === ctx.paths.sssdConf) || !(await ctx.services.isActive(SSSD_UNIT))) {
      await ctx.services.restart(SSSD_UNIT).catch((err: Error) => {
        throw transient(`sssd did not start: ${err.message}`, {
          reason: 'sssd-start-failed',
          fix: "read sssd's logs (/var/log/sssd/) for the cause",
        });
      });
    }
    await ctx.services.enable(SSSD_UNIT);
    if (p.files.some((f) => f.label === 'sshd drop-in') && (await ctx.services.isActive(SSH))) await ctx.services.restart(SSH);
  } catch (err) {
    joins.forget(ctx);
    await Promise.allSettled([claimStep, joinStep, pamStep]);
    const restored = await tx.restore();
    if (pamChanged) await pamAuthUpdate(ctx, ['--remove', MKHOMEDIR_PROFILE]).catch(() => undefined);
    if (p.join) {
      delete ctx.state.facts.computerName;
      await ctx.services.stop(SSSD_UNIT).catch(() => undefined);
    }
    ctx.log.warn(`domain-join failed; put back ${restored.length} file(s) as they were`);
    throw err;
  } finally {
    await ticket?.close();
  }
}

/** Join the AD domain and configure sssd, Kerberos, sudo, sshd and home creation; the task remembers the keytabs its joins wrote. */
export function makeDomainJoinTask(joins = new FreshJoins()): Task {
  return {
    id: 'domain-join',
    description: 'join the AD domain and configure sssd, Kerberos, sudo, sshd and home creation',
    async check(ctx): Promise<CheckResult> {
      const p = await plan(ctx, joins);
      return { changes: changesOf(p, ctx), detail: { plan: p } };
    },
    async apply(ctx, found) {
      const p = (found.detail?.plan as Plan | undefined) ?? (await plan(ctx, joins));
      await applyPlan(ctx, p, joins);
    },
  };
}

export const domainJoinTask: Task = makeDomainJoinTask();

/** Rejoin under the same name (trust broken: account deleted or password reset); used by the daemon's repair. */
export async function rejoin(ctx: TaskContext): Promise<void> {
  const realm = ctx.cfg.domain.name.toUpperCase();
  const name = (await keytabName(ctx, realm)) ?? ctx.state.facts.computerName;
  if (name) ctx.state.facts.computerName = name;
  // It joins whatever the keytab says, and nothing after it reads what it wrote: a memory of its own is enough.
  const joins = new FreshJoins();
  const p = await plan(ctx, joins);
  await applyPlan(ctx, { ...p, join: true }, joins);
}
