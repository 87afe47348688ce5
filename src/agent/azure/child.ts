import type { Config, SecretRef } from '../config-schema.js';
import { AgentError, transient, type FailureKind } from '../errors.js';
import type { Logger } from '../log.js';
import type { Redactor } from '../redact.js';
import { summarize, type Runner } from '../runner.js';

/**
 * The Azure SDK calls the agent makes, run in a short-lived child process in
 * the daemon, so the SDKs never stay resident in it (docs/architecture.md,
 * Azure calls in a child process). The request (config, the call's
 * arguments, a storage key the daemon already has) goes over the child's
 * stdin; the answer is one JSON line on its stdout. Neither is ever logged
 * or put in argv. The child's own log lines (stderr) are passed on to the
 * daemon's stderr, redacted again.
 */
export type AzureCall =
  { op: 'keyvault-secret'; ref: Extract<SecretRef, { keyVault: unknown }>; keyPath: string } | { op: 'arm-list-keys' } | ShareCall;

/**
 * Calls on the share itself. `key` is the storage key when the daemon already
 * has it; without it the child resolves it (Key Vault or ARM) and answers
 * `{ value, key }`, so one child does both and the daemon keeps the key.
 */
export type ShareCall = { key?: string } & (
  | { op: 'verify-key' }
  | { op: 'share-usage' }
  | { op: 'ensure-folder'; relPath: string }
  | { op: 'close-handles'; identity: { addresses: string[]; names: string[] } }
);

/** The answer to a {@link ShareCall}. */
export interface ShareReply<T> {
  value: T;
  /** The storage key, when the request had none. */
  key?: string;
}

/** What goes over the child's stdin. */
export type AzureRequest = AzureCall & { cfg: Config; root: string; logLevel: string };

/** The child's one line of stdout. */
export type AzureReply =
  { ok: true; value: unknown } | { ok: false; error: { kind: FailureKind | 'error'; message: string; fix?: string; reason?: string } };

export const AZURE_CALL_COMMAND = 'azure-call';

/** How long one call may take before the child is killed (the SDKs retry twice with 15 s tries). */
const CALL_TIMEOUT_MS = 90_000;

/**
 * Environment the child needs from the daemon's: trust anchors, proxies
 * (azure/proxy.ts reads https_proxy/HTTPS_PROXY and no_proxy/NO_PROXY; the
 * SDKs' own proxy policy reads the others, but its choice is replaced in
 * azure/bounded.ts), allocator and agent settings. Nothing else: the runner
 * gives children a fixed, minimal environment.
 */
const PASS_ENV = /^(NODE_EXTRA_CA_CERTS|SSL_CERT_FILE|SSL_CERT_DIR|HTTPS?_PROXY|NO_PROXY|ALL_PROXY|MALLOC_ARENA_MAX|DSVM_AGENT_[A-Z_]+)$/i;

export function childPassEnv(env: NodeJS.ProcessEnv): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (v !== undefined && PASS_ENV.test(k)) out[k] = v;
  return out;
}

/** Turn the child's error record back into the error the in-process call would have thrown. */
export function errorFromReply(e: Extract<AzureReply, { ok: false }>['error']): Error {
  if (e.kind === 'error') return new Error(e.message);
  return new AgentError(e.kind, e.message, {
    ...(e.fix === undefined ? {} : { fix: e.fix }),
    ...(e.reason === undefined ? {} : { reason: e.reason }),
  });
}

/** The error record for any thrown value (the child side). */
export function replyForError(err: unknown): AzureReply {
  if (err instanceof AgentError)
    return {
      ok: false,
      error: {
        kind: err.kind,
        message: err.message,
        ...(err.fix === undefined ? {} : { fix: err.fix }),
        ...(err.reason === undefined ? {} : { reason: err.reason }),
      },
    };
  return { ok: false, error: { kind: 'error', message: err instanceof Error ? err.message : String(err) } };
}

export interface AzureChildOptions {
  /** argv of the agent's own entry: [node, ...node flags, script]; the call adds `azure-call`. */
  command: readonly string[];
  cfg: Config;
  root: string;
  logLevel: string;
  run: Runner;
  log: Logger;
  redactor: Redactor;
  env?: Record<string, string>;
  timeoutMs?: number;
  /**
   * CPU priority of the child (nice(1) increment; default 10). Its work is
   * background work (quota, keys, repairs): a login, sshd and sssd must win
   * the CPU over an SDK loading, most of all on a small VM.
   */
  niceness?: number;
  /** Where the child's log lines go (the daemon's stderr, i.e. the journal). */
  forwardLog?: (text: string) => void;
}

/** Runs {@link AzureCall}s in a child process of the agent itself. */
export class AzureChild {
  /** Calls made, for tests and metrics. */
  calls = 0;

  constructor(private readonly o: AzureChildOptions) {}

  /** One call; `signal` (a task context's) kills the child when the work it serves is cancelled. */
  async call<T>(call: AzureCall, opts: { signal?: AbortSignal } = {}): Promise<T> {
    const [file, ...args] = this.o.command;
    if (!file) throw new Error('AzureChild: empty command');
    const request: AzureRequest = { ...call, cfg: this.o.cfg, root: this.o.root, logLevel: this.o.logLevel };
    this.calls++;
    const nice = this.o.niceness ?? 10;
    const r = await this.o.run({
      file,
      args: [...args, AZURE_CALL_COMMAND],
      ...(nice === 0 ? {} : { nice }),
      input: JSON.stringify(request),
      env: this.o.env ?? childPassEnv(process.env),
      timeoutMs: this.o.timeoutMs ?? CALL_TIMEOUT_MS,
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
    this.o.log.debug(`${call.op}: ${r.durationMs} ms in a child process (exit ${r.exitCode ?? r.signal})`);
    const forward = this.o.forwardLog ?? ((text: string) => process.stderr.write(text));
    if (r.stderr.trim() !== '') forward(this.o.redactor.redact(r.stderr.endsWith('\n') ? r.stderr : `${r.stderr}\n`));
    const line = r.stdout.trim().split('\n').pop() ?? '';
    let reply: AzureReply | undefined;
    try {
      reply = line ? (JSON.parse(line) as AzureReply) : undefined;
    } catch {
      reply = undefined;
    }
    if (!reply || typeof reply.ok !== 'boolean') {
      // No answer at all: killed (timeout), crashed or not started. Worth another try.
      // stdout is never quoted: it may hold half of a secret.
      throw transient(`Azure call ${call.op} in a child process failed: ${summarize({ ...r, stdout: '' })}`, {
        reason: 'azure-child-failed',
        fix: "read the agent's log (journalctl -u dsvm-agent) for the child's error",
      });
    }
    if (!reply.ok) throw errorFromReply(reply.error);
    return reply.value as T;
  }
}
