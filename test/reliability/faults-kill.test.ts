/**
 * kill -9 during `provision`, at points spread over the join and the mount.
 * A reference run of a fresh first boot (the agent at log level debug logs
 * `exec CMD` as it starts each command) gives the sequence of commands; the
 * points are the commands at evenly spread places of it (10 or more; 3 in the
 * short version), so they are the same every run. For each point the VM is
 * reset (`deprovision --leave-domain`), provision starts again, and when the
 * chosen command starts, the agent and everything it started get SIGKILL at
 * once, as systemd's cgroup kill or a power loss would. Then:
 *   - every file the agent writes and that exists is valid: sssd.conf
 *     (sssctl config-check), krb5.conf (sections, key = value, balanced braces
 *     and agent markers), sudoers (visudo -c), the mount unit ([Mount] with
 *     What/Where/Type), the share credentials (0600, username/password), the
 *     keytab (klist -k) and the state (JSON);
 *   - a second `provision` converges: every task ends as in the reference run
 *     (the lab's kernel has no cifs, so share-mount ends in the same clear
 *     error there, after writing its unit and credentials).
 */
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { describeResult, LAB_SCRIPT, PROJECT_ROOT } from '../lab/harness.js';
import { AGENT, bringUp, CONFIG, provision, sh, type FaultVm, type ProvisionOut, faultFile } from './fault-client.js';
import { rowsFor, SHORT } from './rows.js';

const VM: FaultVm = { client: 'f1', ip: '10.77.0.231', hostname: 'dsvm-fault-kill' };
const POINTS = SHORT ? 3 : 12;
const UNIT = '/etc/systemd/system/data-workspace.mount';

/** Every process below `root` (itself included), from /proc: the VM shares this machine's pid namespace. */
function tree(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const p of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const ppid = Number(/^\d+ \(.*\) \S+ (\d+)/s.exec(readFileSync(`/proc/${p}/stat`, 'utf8'))?.[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(p)]);
    } catch {
      // gone meanwhile
    }
  }
  const out: number[] = [];
  const walk = (pid: number): void => {
    out.push(pid);
    for (const c of children.get(pid) ?? []) walk(c);
  };
  walk(root);
  return out;
}

/** The base name of a process's argv[0] ('' when it is gone). */
function argv0(pid: number): string {
  try {
    return path.basename(readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')[0] ?? '');
  } catch {
    return '';
  }
}

interface Run {
  execs: string[];
  killed?: { at: string; processes: number };
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  ms: number;
}

/** provision at debug level; with `killAt`, SIGKILL to its whole tree when the killAt-th command starts. */
function provisionRun(killAt?: number): Promise<Run> {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const child = spawn(
      LAB_SCRIPT,
      [
        'exec',
        VM.client,
        '-e',
        'DSVM_AGENT_LOG_LEVEL=debug',
        '--',
        'bash',
        '-c',
        `echo "agent-pid $$" >&2; exec ${AGENT} --config ${CONFIG} provision --json`,
      ],
      { cwd: PROJECT_ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const run: Run = { execs: [], exitCode: null, signal: null, stdout: '', ms: 0 };
    let buf = '';
    let agentPid = 0;
    child.stdout.on('data', (d: Buffer) => (run.stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => {
      buf += d.toString();
      const lines = buf.split('\n');
      buf = lines.pop() ?? '';
      for (const line of lines) {
        const p = /^agent-pid (\d+)$/.exec(line);
        if (p) agentPid = Number(p[1]);
        const m = /\bexec (.+?)(?: stdin=.*)?$/.exec(line);
        if (!m) continue;
        run.execs.push(m[1]!);
        if (killAt !== undefined && run.execs.length === killAt + 1 && !run.killed) {
          const at = m[1]!;
          run.killed = { at, processes: 0 };
          // The line comes just before the spawn: wait (at most 40 ms) until the command runs, then kill.
          const want = path.basename(at.split(' ')[0] ?? '');
          const t1 = Date.now();
          const killWhenStarted = (): void => {
            const started = agentPid ? tree(agentPid).some((p) => p !== agentPid && argv0(p) === want) : false;
            if (!started && Date.now() - t1 < 40) {
              setImmediate(killWhenStarted);
              return;
            }
            const victims = agentPid ? tree(agentPid) : [];
            // One pass, the agent first: nothing it started may outlive it to finish the step.
            for (const v of victims) {
              try {
                process.kill(v, 'SIGKILL');
              } catch {
                // already gone
              }
            }
            run.killed = { at, processes: victims.length };
          };
          killWhenStarted();
        }
      }
    });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      run.exitCode = code;
      run.signal = signal;
      run.ms = Date.now() - t0;
      resolve(run);
    });
  });
}

/** What is invalid among the files the agent writes (empty when all that exist are valid). */
async function invalidFiles(): Promise<string[]> {
  const r = await sh(
    VM,
    String.raw`bad() { echo "$1"; }
if [ -e /etc/sssd/sssd.conf ]; then sssctl config-check >/tmp/sssctl.out 2>&1 || bad "sssd.conf: $(tr '\n' ' ' </tmp/sssctl.out | head -c 300)"; fi
if [ -e /etc/krb5.conf ]; then
  awk 'BEGIN{d=0;m=0} /^[ \t]*(#|;|$)/{next} /#/{next} /^[ \t]*\[[^]]+\][ \t]*$/{next} /=[ \t]*\{[ \t]*$/{d++;next} /^[ \t]*\}[ \t]*$/{d--;if(d<0)exit 1;next} /^[ \t]*[^=]+=/{next} {exit 1} END{if(d!=0)exit 1}' /etc/krb5.conf || bad "krb5.conf: not valid: $(head -c 300 /etc/krb5.conf | tr '\n' '|')"
  b=$(grep -c 'BEGIN dsvm-agent' /etc/krb5.conf || true); e=$(grep -c 'END dsvm-agent' /etc/krb5.conf || true)
  [ "$b" = "$e" ] || bad "krb5.conf: $b begin markers, $e end markers"
fi
if [ -e /etc/sudoers.d/dsvm-agent ]; then visudo -c -q -f /etc/sudoers.d/dsvm-agent >/dev/null 2>&1 || bad "sudoers.d/dsvm-agent: visudo -c fails"; fi
if [ -e ${UNIT} ]; then
  grep -q '^\[Mount\]' ${UNIT} && grep -q '^What=//' ${UNIT} && grep -q '^Where=/data/workspace$' ${UNIT} && grep -q '^Type=cifs' ${UNIT} || bad "mount unit: incomplete: $(tr '\n' '|' <${UNIT} | head -c 300)"
fi
for c in /etc/smbcredentials/*.cred; do
  [ -e "$c" ] || continue
  [ "$(stat -c %a "$c")" = 600 ] || bad "$c: mode $(stat -c %a "$c")"
  grep -q '^username=' "$c" && grep -q '^password=.' "$c" || bad "$c: no username/password"
done
if [ -e /etc/krb5.keytab ]; then klist -k /etc/krb5.keytab >/dev/null 2>&1 || bad "krb5.keytab: klist -k fails"; fi
if [ -e /var/lib/dsvm-agent/state.json ]; then node -e 'JSON.parse(require("fs").readFileSync("/var/lib/dsvm-agent/state.json","utf8"))' 2>/dev/null || bad "state.json: not JSON"; fi
exit 0`,
  );
  if (r.exitCode !== 0) return [describeResult('file checks', r)];
  return r.stdout.split('\n').filter(Boolean);
}

/** Temp files an interrupted atomic write left (named after their target, beside it). */
async function leftovers(): Promise<string[]> {
  const r = await sh(
    VM,
    `ls -A /etc /etc/sssd /etc/sudoers.d /etc/systemd/system /etc/smbcredentials /var/lib/dsvm-agent 2>/dev/null | grep -E '\\.(tmp|dsvm)|\\.tmp-|~$' || true`,
  );
  return r.stdout.split('\n').filter(Boolean);
}

const outcome = (out: ProvisionOut | undefined): string =>
  out
    ? out.tasks
        .map(
          (x) =>
            `${x.id}=${x.status}${x.status === 'failed' ? `(${/reason|kernel|cifs/i.test(x.error ?? '') ? 'no cifs' : (x.error ?? '').slice(0, 60)})` : ''}`,
        )
        .join(' ')
    : 'no outcome';

faultFile(VM, () => {
  const rows = rowsFor(import.meta.filename);

  t.test(`kill -9 during provision at ${POINTS} points`, async (t) => {
    await bringUp(VM, { share: true });
    const ref = await provisionRun();
    const refOut = JSON.parse(ref.stdout || 'null') as ProvisionOut | undefined;
    t.ok(
      refOut,
      describeResult('reference provision', {
        exitCode: ref.exitCode,
        signal: ref.signal,
        stdout: ref.stdout,
        stderr: '',
        timedOut: false,
      }),
    );
    t.comment(`reference run: ${ref.execs.length} commands in ${ref.ms} ms: ${outcome(refOut)}`);
    t.comment(ref.execs.map((e, i) => `${i}: ${e}`).join('\n'));
    rows.record({
      scenario: 'kill -9 during provision: reference run',
      expected: 'a fresh first boot, undisturbed: the outcome every interrupted one must converge to',
      happened: `${outcome(refOut)}; ${ref.execs.length} commands`,
      numbers: { commands: ref.execs.length, 'run s': Math.round(ref.ms / 100) / 10 },
      ok: !!refOut,
    });
    if (!refOut || ref.execs.length < 2) return;
    // The checker itself must pass the files of an undisturbed run, or its verdicts after a kill mean nothing.
    t.same(await invalidFiles(), [], 'every file of the reference run passes the checks');
    const points = [
      ...new Set(Array.from({ length: POINTS }, (_, i) => Math.round((i * (ref.execs.length - 2)) / Math.max(1, POINTS - 1)))),
    ];
    t.ok(SHORT || points.length >= 10, `${points.length} distinct points over ${ref.execs.length} commands`);
    for (const k of points) {
      const name = ref.execs[k]!.split(' ').slice(0, 3).join(' ');
      const scenario = `kill -9 at command ${k + 1}/${ref.execs.length}: ${name}`;
      const expected = 'every written file valid; the next provision converges to the reference outcome';
      await rows.guard(scenario, expected, async () => {
        const reset = await sh(
          VM,
          `${AGENT} --config ${CONFIG} deprovision --leave-domain --yes >/dev/null 2>&1 || true; test ! -e /var/lib/dsvm-agent/state.json`,
        );
        t.equal(reset.exitCode, 0, describeResult('reset', reset));
        const killed = await provisionRun(k);
        const bad = await invalidFiles();
        const litter = await leftovers();
        const again = await provision(VM);
        const converged = outcome(again.out) === outcome(refOut);
        const badAfter = await invalidFiles();
        t.ok(killed.killed && killed.killed.processes > 0, `${scenario}: killed (${killed.killed?.processes ?? 0} processes)`);
        t.same(bad, [], `${scenario}: every file valid after the kill`);
        t.ok(converged, `${scenario}: converged: ${outcome(again.out)} vs ${outcome(refOut)}\n${again.r.stderr.slice(-1500)}`);
        t.same(badAfter, [], `${scenario}: every file valid after the second provision`);
        rows.record({
          scenario,
          expected,
          happened: `${killed.killed?.processes ? `killed ${killed.killed.processes} processes at "${killed.killed.at.slice(0, 80)}"` : 'the command never started (NOT killed)'}; files: ${bad.length ? bad.join('; ').slice(0, 300) : 'all valid'}${litter.length ? `; temp files left: ${litter.join(', ')}` : ''}; second provision: ${outcome(again.out)}`,
          numbers: {
            'killed after s': Math.round(killed.ms / 100) / 10,
            'second run s': Math.round(again.ms / 100) / 10,
            'temp files left': litter.length,
          },
          ok: !!killed.killed?.processes && bad.length === 0 && converged && badAfter.length === 0,
        });
      });
    }
  });
});
