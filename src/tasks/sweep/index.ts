import { identityName, managedIdentity } from '../../agent/azure/identity.js';
import { leaveBackoff } from '../../agent/backoff.js';
import type { HttpClient } from '@azure/core-rest-pipeline';
import { answerSource, AzureAnswerError, boundedGet, boundedHttpClient, type AnswerLimits } from '../../agent/azure/bounded.js';
import { permanent, transient } from '../../agent/errors.js';
import { summarize } from '../../agent/runner.js';
import { retryTransient, type TaskContext } from '../../agent/task.js';
import { deleteComputerArgv, isNoSuchComputer, keytabComputerName, parseAdcliError } from '../domain-join/adcli.js';
import { directoryError, domainDn, parseLdif, withJoinTicket, type DirectoryLogin } from '../domain-join/adcli-compat.js';
import { firstDomainController } from '../../agent/dc-locator.js';
import { armScope } from '../share-mount/key.js';
import { defaultPrefix, planSweep, poolComputers, type Existence, type PoolComputer, type SweepPlan } from './plan.js';

export { defaultPrefix, planSweep, poolComputers, type PoolComputer, type SweepPlan } from './plan.js';

/**
 * `dsvm-agent sweep`: deletes the computer objects of VMs of this pool that
 * no longer exist (a crash, a forced delete, a missed Preempt leave them
 * behind). Read with the join account over LDAP (its password on stdin to
 * kinit, ticket in a private ccache: adcli-compat.ts), existence from ARM
 * through the managed identity, or the password age without ARM rights,
 * deletion with `adcli delete-computer` per object. docs/operations.md.
 */

export const SCALE_SET_VMS_API = '2024-07-01';
const LDAP_TIMEOUT_MS = 60_000;
const ADCLI_TIMEOUT_MS = 60_000;
const DAY_MS = 86_400_000;

export interface SweepReport extends SweepPlan {
  prefix: string;
  base: string;
  self: string;
  /** This VM sweeps (it is the sweeper); otherwise nothing was deleted. */
  sweeping: boolean;
  dryRun: boolean;
  deleted: string[];
  failed: Array<{ name: string; error: string }>;
}

/**
 * Bounds on one page of the VM list. A page holds each VM's full model (a
 * few KB); ARM pages a scale set of 1000 VMs into a few MB. Past the bound the
 * page is refused rather than read whole (see agent/azure/bounded.ts).
 */
export const SCALE_SET_PAGE_LIMITS: AnswerLimits = { maxBytes: 16 * 1024 * 1024, tryTimeoutMs: 30_000 };

type VmPage = { value?: unknown; nextLink?: unknown; error?: { code?: string; message?: string } };

/** The scale set's live VM ids from ARM; undefined when the identity may not read them (403). */
export async function scaleSetVmIds(
  ctx: TaskContext,
  target: { subscriptionId: string; resourceGroup: string; scaleSet: string },
  limits: AnswerLimits = SCALE_SET_PAGE_LIMITS,
): Promise<string[] | undefined> {
  const endpoint = ctx.cfg.azure.managementEndpoint.replace(/\/+$/, '');
  const where = `scale set "${target.scaleSet}" in resource group "${target.resourceGroup}" (subscription ${target.subscriptionId})`;
  const credential = await managedIdentity(ctx.cfg, limits);
  const token = await credential.getToken(armScope(endpoint)).catch((err: unknown) => {
    throw transient(`sweep: no managed identity token for ARM: ${(err as Error).message}`, {
      fix: `check that the VM has a managed identity and can reach IMDS`,
    });
  });
  if (!token) throw transient('sweep: no managed identity token for ARM');
  const ids: string[] = [];
  let url: string | undefined =
    `${endpoint}/subscriptions/${encodeURIComponent(target.subscriptionId)}/resourceGroups/${encodeURIComponent(target.resourceGroup)}` +
    `/providers/Microsoft.Compute/virtualMachineScaleSets/${encodeURIComponent(target.scaleSet)}/virtualMachines?api-version=${SCALE_SET_VMS_API}`;
  // The SDKs' bounded client, made once for every page: the same route (azure.proxy, NO_PROXY) and bounds as every other Azure call.
  const client = await boundedHttpClient(ctx.cfg.azure, limits);
  // nextLink pages until the list ends; a bound keeps a looping server from holding the sweep forever.
  for (let page = 0; url && page < 1000; page++) {
    const { status, body } = await fetchVmPage(client, url, token.token, where, limits);
    if (status === 403) {
      ctx.log.warn(
        `sweep: the ${identityName(ctx.cfg)} may not list the VMs of ${where} (403 ${body.error?.code ?? ''}): deciding by machine-password age instead`,
      );
      return undefined;
    }
    if (status < 200 || status > 299)
      throw (status >= 500 || status === 429 ? transient : permanent)(
        `sweep: ARM answered ${status} listing the VMs of ${where}: ${body.error?.message ?? ''}`,
        { fix: 'check the scale set name, resource group and azure.managementEndpoint' },
      );
    // A 200 that is not a VM list must not read as "no VM is alive": every object of the pool would look stale and be deleted.
    if (!Array.isArray(body.value) || (body.nextLink !== undefined && body.nextLink !== null && typeof body.nextLink !== 'string'))
      throw transient(
        `sweep: ARM answered 200 listing the VMs of ${where}, but not with a VM list ("value" is not an array): nothing deleted`,
        {
          fix: 'retry later; if it persists, check that nothing (a proxy) answers in place of azure.managementEndpoint',
        },
      );
    for (const vm of body.value as Array<{ properties?: { vmId?: unknown } }>)
      if (typeof vm?.properties?.vmId === 'string') ids.push(vm.properties.vmId.toLowerCase());
    url = typeof body.nextLink === 'string' && body.nextLink !== '' ? body.nextLink : undefined;
  }
  return ids;
}

/**
 * One page of the VM list, read within `limits`. Not JSON at all (an HTML
 * error page, a cut answer) is an error of its own, whatever the status,
 * and so is an answer too large or too slow: all transient, and none of them
 * may read as an empty list.
 */
async function fetchVmPage(
  client: HttpClient,
  url: string,
  token: string,
  where: string,
  limits: AnswerLimits,
): Promise<{ status: number; body: VmPage }> {
  const source = answerSource(url);
  let status: number;
  let text: string;
  try {
    ({ status, text } = await boundedGet(client, url, { authorization: `Bearer ${token}` }));
  } catch (err) {
    const why =
      err instanceof AzureAnswerError && err.code === 'ETIMEDOUT'
        ? `no complete answer within ${limits.tryTimeoutMs} ms`
        : (err as Error).message;
    throw transient(`sweep: listing the VMs of ${where} at ${source}: ${why}: nothing deleted`, {
      fix: `check that the VM can reach azure.managementEndpoint over HTTPS; the sweep runs again later`,
    });
  }
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    // An error status says enough on its own (the caller classifies it); a 200 must carry the list.
    if (status < 200 || status > 299) return { status, body: {} };
    throw transient(`sweep: ARM answered ${status} listing the VMs of ${where} with something that is not a JSON object: nothing deleted`, {
      fix: 'retry later; if it persists, check that nothing (a proxy) answers in place of azure.managementEndpoint',
    });
  }
  return { status, body: body as VmPage };
}

async function joinLogin(ctx: TaskContext): Promise<DirectoryLogin> {
  const d = ctx.cfg.domain;
  if (!d.joinUser || !d.joinPassword)
    throw permanent('sweep: no join account configured', {
      reason: 'sweep-no-credentials',
      fix: 'configure domain.joinUser and domain.joinPassword (an account that may delete computer objects in the OU)',
    });
  const password = await ctx.secret(d.joinPassword, 'domain.joinPassword');
  // A DC busy with joins can let a DNS lookup time out (seen in the lab with
  // five VMs joining): waited for up to a minute, as leaving the domain is.
  const dc = await retryTransient(ctx, 'sweep: find a domain controller', leaveBackoff, () => firstDomainController(d.name));
  return { realm: d.name.toUpperCase(), dc, user: d.joinUser, password };
}

/** The pool's stamped computer objects under `base` whose name starts with `prefix`. */
async function readPool(ctx: TaskContext, login: DirectoryLogin, base: string, prefix: string): Promise<PoolComputer[]> {
  const filter = `(&(objectClass=computer)(sAMAccountName=${prefix.replace(/[\\*()\0]/g, '')}*)(description=dsvm-agent vmId=*))`;
  const r = await withJoinTicket(ctx, login, (env) =>
    ctx.run({
      file: 'ldapsearch',
      args: [
        '-Q',
        '-N',
        '-Y',
        'GSSAPI',
        '-H',
        `ldap://${login.dc}`,
        '-LLL',
        '-o',
        'ldif-wrap=no',
        '-b',
        base,
        filter,
        'sAMAccountName',
        'description',
        'pwdLastSet',
      ],
      env,
      timeoutMs: LDAP_TIMEOUT_MS,
    }),
  );
  if (r.exitCode !== 0) throw directoryError(`ldapsearch under ${base}`, r, 'check domain.joinUser and the join password secret');
  return poolComputers(parseLdif(r.stdout), prefix);
}

async function ownComputerName(ctx: TaskContext): Promise<string | undefined> {
  const r = await ctx.run({ file: 'klist', args: ['-k', ctx.paths.krb5Keytab], timeoutMs: 10_000 });
  const fromKeytab = r.exitCode === 0 ? keytabComputerName(r.stdout, ctx.cfg.domain.name) : undefined;
  return fromKeytab ?? ctx.state.facts.computerName;
}

/** Find the stale objects and, on the sweeper and without dryRun, delete them. */
export async function sweep(ctx: TaskContext, opts: { dryRun: boolean }): Promise<SweepReport> {
  const compute = await ctx.imds.compute();
  if (!compute.vmScaleSetName)
    throw permanent('sweep: this VM is not in a scale set (IMDS compute.vmScaleSetName is empty)', {
      reason: 'sweep-no-scale-set',
      fix: 'run dsvm-agent sweep on a VM of the scale set whose objects it should clean',
    });
  const prefix = ctx.cfg.sweep.namePrefix ?? defaultPrefix(await ownComputerName(ctx));
  if (!prefix)
    throw permanent('sweep: cannot tell this pool\'s computer-name prefix (this VM\'s name has no "-")', {
      reason: 'sweep-no-prefix',
      fix: 'set sweep.namePrefix to the start all computer names of this pool share, e.g. "DSVMPOOL-"',
    });
  const base = ctx.cfg.domain.computerOu ?? domainDn(ctx.cfg.domain.name);
  const live = await scaleSetVmIds(ctx, {
    subscriptionId: compute.subscriptionId,
    resourceGroup: compute.resourceGroupName,
    scaleSet: compute.vmScaleSetName,
  });
  const existence: Existence = live
    ? { source: 'arm', liveVmIds: live }
    : { source: 'password-age', maxAgeMs: ctx.cfg.sweep.maxPasswordAgeDays * DAY_MS, now: ctx.clock.now() };
  const login = await joinLogin(ctx);
  const plan = planSweep(await readPool(ctx, login, base, prefix), existence);
  const self = (compute.vmId || ctx.state.vmId).toLowerCase();
  const report: SweepReport = {
    ...plan,
    prefix,
    base,
    self,
    sweeping: plan.sweeper === self,
    dryRun: opts.dryRun,
    deleted: [],
    failed: [],
  };
  if (!report.sweeping || opts.dryRun) return report;
  const domain = ctx.cfg.domain.name.toLowerCase();
  for (const c of plan.stale) {
    const r = await ctx.run({
      file: 'adcli',
      args: deleteComputerArgv(domain, domain.toUpperCase(), login.user, c.name),
      input: login.password,
      timeoutMs: ADCLI_TIMEOUT_MS,
    });
    if (r.exitCode === 0 || isNoSuchComputer(r)) report.deleted.push(c.name);
    else report.failed.push({ name: c.name, error: parseAdcliError('delete-computer', r, { user: login.user }).message || summarize(r) });
  }
  return report;
}
