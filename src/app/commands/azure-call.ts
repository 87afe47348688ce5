import type { AzureReply, AzureRequest, ShareCall } from '../../agent/azure/child.js';
import type { TaskContext } from '../../agent/task.js';
import { replyForError } from '../../agent/azure/child.js';
import type { LogLevel } from '../../agent/log.js';
import { createBase, createTaskContext } from '../../agent/context.js';
import { configError, ExitCode } from '../../agent/errors.js';
import { readSecret } from '../../agent/secrets.js';
import { primeStorageKey, storageKey } from '../../tasks/share-mount/key.js';
import { closeOwnHandles, ensureShareFolderRest, shareUsageRest, verifyShareKey } from '../../tasks/share-mount/rest.js';

const OPS = new Set(['keyvault-secret', 'arm-list-keys', 'verify-key', 'share-usage', 'ensure-folder', 'close-handles']);
const LEVELS = new Set(['error', 'warn', 'info', 'debug']);

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** Check the request's shape; anything else is a programming error on the daemon's side. */
function parseRequest(text: string): AzureRequest {
  let req: unknown;
  try {
    req = JSON.parse(text);
  } catch {
    throw configError('azure-call: stdin is not a JSON request', { fix: 'this command is for the daemon only' });
  }
  const r = req as Partial<AzureRequest>;
  if (!r || typeof r !== 'object' || !OPS.has(String(r.op)) || typeof r.cfg !== 'object' || typeof r.root !== 'string')
    throw configError('azure-call: the request lacks op, cfg or root', { fix: 'this command is for the daemon only' });
  return r as AzureRequest;
}

async function perform(req: AzureRequest): Promise<unknown> {
  const level = LEVELS.has(req.logLevel) ? (req.logLevel as LogLevel) : 'info';
  const base = createBase({ root: req.root, logLevel: level });
  const cfg = req.cfg;
  // No azureChild here: the same functions the daemon calls run in-process in this child.
  if (req.op === 'keyvault-secret')
    return readSecret(req.ref, req.keyPath, { cfg, paths: base.paths, log: base.log, redactor: base.redactor });
  // The context without IMDS ids or state writes: the child only talks to Azure.
  const { ctx } = await createTaskContext(base, cfg, { offline: true });
  if (req.op === 'arm-list-keys') return storageKey(ctx);
  if (req.key !== undefined) primeStorageKey(ctx, req.key);
  const value = await shareCall(ctx, req);
  // Without a key in the request, this child resolved it: the daemon keeps it (no second child for it).
  return req.key === undefined ? { value, key: await storageKey(ctx) } : { value };
}

async function shareCall(ctx: TaskContext, req: ShareCall): Promise<unknown> {
  switch (req.op) {
    case 'verify-key': {
      const warning = await verifyShareKey(ctx);
      return warning === undefined ? {} : { warning };
    }
    case 'share-usage':
      return shareUsageRest(ctx);
    case 'ensure-folder':
      return ensureShareFolderRest(ctx, req.relPath);
    case 'close-handles':
      return closeOwnHandles(ctx, req.identity);
  }
}

/**
 * `dsvm-agent azure-call` (hidden, for the daemon): one Azure SDK call
 * described on stdin, its answer as one JSON line on stdout. See
 * azure/child.ts for why the daemon does not make these calls itself.
 */
export async function azureCallCommand(): Promise<number> {
  let reply: AzureReply;
  let code: number = ExitCode.ok;
  try {
    const req = parseRequest(await readStdin());
    reply = { ok: true, value: await perform(req) };
  } catch (err) {
    reply = replyForError(err);
    if (reply.ok === false && reply.error.kind === 'config' && /^azure-call:/.test(reply.error.message)) code = ExitCode.usage;
  }
  process.stdout.write(`${JSON.stringify(reply)}\n`);
  return code;
}
