import type { HttpClient, PipelineRequest, PipelineResponse } from '@azure/core-rest-pipeline';
import { azureProxy, proxyAgents, proxyFor } from './proxy.js';

/** Bounds on one answer from an Azure endpoint (one try: the SDKs retry on their own). */
export interface AnswerLimits {
  /** Body bytes read before the answer is given up as too large. */
  maxBytes: number;
  /** From sending the request to the last byte of the body. */
  tryTimeoutMs: number;
}

/**
 * Every answer the agent wants from Key Vault, ARM, Files REST or the token
 * endpoint is small: a token, a secret (Key Vault caps them at 25 KB), two
 * storage keys, a page of handles (5000 at most, about 2.5 MB). The SDKs,
 * though, read any body whole however large it is, and their own request
 * timeout stops at the headers, so a proxy, a captive portal or a broken
 * endpoint that streams without end would grow the agent's memory or hold
 * a call until the child's 90 s backstop (azure/child.ts) kills it.
 */
export const AZURE_ANSWER_LIMITS: AnswerLimits = { maxBytes: 4 * 1024 * 1024, tryTimeoutMs: 15_000 };

/** An answer given up on: too large, or not complete in time. `code` ETIMEDOUT lets the SDKs' retry policies retry it. */
export class AzureAnswerError extends Error {
  constructor(
    message: string,
    readonly code: 'ANSWER_TOO_LARGE' | 'ETIMEDOUT',
  ) {
    super(message);
    this.name = 'AzureAnswerError';
  }
}

/** `https://host/path` of a request, for messages: never the query (a SAS signature would be there). */
export function answerSource(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname}`;
  } catch {
    return '(unparsable URL)';
  }
}

export function mib(bytes: number): string {
  return bytes >= 1024 * 1024 ? `${Math.round((bytes / 1024 / 1024) * 10) / 10} MiB` : `${bytes} bytes`;
}

export function tooLarge(source: string, maxBytes: number): AzureAnswerError {
  return new AzureAnswerError(`the answer from ${source} is larger than ${mib(maxBytes)}: stopped reading it`, 'ANSWER_TOO_LARGE');
}

export function tooSlow(source: string, ms: number): AzureAnswerError {
  return new AzureAnswerError(`no complete answer from ${source} within ${ms} ms`, 'ETIMEDOUT');
}

/** Read a body up to `maxBytes`; past it, or when `signal` aborts, the stream is destroyed and the read fails. */
export function readCapped(stream: NodeJS.ReadableStream, maxBytes: number, signal: AbortSignal, source: string): Promise<Buffer> {
  return new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const done = (): void => {
      stream.removeListener('data', onData);
      stream.removeListener('end', onEnd);
      stream.removeListener('error', onError);
      signal.removeEventListener('abort', onAbort);
    };
    const fail = (err: unknown): void => {
      done();
      (stream as NodeJS.ReadableStream & { destroy?: () => void }).destroy?.();
      reject(err instanceof Error ? err : new Error(String(err)));
    };
    const onData = (chunk: Buffer | string): void => {
      const b = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
      size += b.length;
      if (size > maxBytes) fail(tooLarge(source, maxBytes));
      else chunks.push(b);
    };
    const onEnd = (): void => {
      done();
      resolve(Buffer.concat(chunks));
    };
    const onError = (err: unknown): void => fail(err);
    const onAbort = (): void => fail(new Error(`reading the answer from ${source} was aborted`));
    if (signal.aborted) return onAbort();
    stream.on('data', onData);
    stream.once('end', onEnd);
    stream.once('error', onError);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

let innerClient: Promise<HttpClient> | undefined;

/** One default client per process, as the SDKs share theirs: its agents keep connections for every SDK client. */
function sharedInnerClient(): Promise<HttpClient> {
  innerClient ??= import('@azure/core-rest-pipeline').then((m) => m.createDefaultHttpClient());
  return innerClient;
}

/**
 * The SDKs' default HTTP client, bounded: every answer is streamed and read
 * here up to `limits.maxBytes`, and one deadline covers connect, headers and
 * body. Passed as `httpClient` to every SDK client the agent makes (the
 * managed identity's too), so no Azure answer is read unbounded. Loaded
 * lazily, as the SDKs are: the login path must not pay for it.
 *
 * It is also where each call's route is decided: through the proxy
 * azure/proxy.ts derives from `azure` and the environment, or direct, IMDS
 * always direct. The SDKs' own proxy policy would
 * read HTTP(S)_PROXY and ALL_PROXY with its own NO_PROXY rules (no ports, no
 * `*`) and send IMDS's token requests through the proxy too; the agent it
 * picked is replaced here. An agent a caller set itself (a test's CA) is kept.
 */
export async function boundedHttpClient(
  azure: Parameters<typeof azureProxy>[0],
  limits: AnswerLimits = AZURE_ANSWER_LIMITS,
): Promise<HttpClient> {
  const proxy = azureProxy(azure);
  const [inner, agents] = await Promise.all([sharedInnerClient(), proxyAgents()]);
  return {
    async sendRequest(request: PipelineRequest): Promise<PipelineResponse> {
      const source = answerSource(request.url);
      const caller = request.abortSignal;
      const controller = new AbortController();
      const onCallerAbort = (): void => controller.abort();
      caller?.addEventListener('abort', onCallerAbort, { once: true });
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        controller.abort();
      }, limits.tryTimeoutMs);
      let via: URL | undefined;
      if (!request.agent || agents.isProxyAgent(request.agent)) {
        const target = new URL(request.url);
        via = proxyFor(target, proxy);
        request.agent = via ? agents.agentFor(via, target) : undefined;
      }
      const savedCodes = request.streamResponseStatusCodes;
      request.abortSignal = controller.signal;
      // Every status streams, so this client and not the SDK decides how much of a body is read.
      request.streamResponseStatusCodes = new Set([Number.POSITIVE_INFINITY]);
      try {
        const response = await inner.sendRequest(request);
        const body = response.readableStreamBody;
        if (body && !savedCodes?.has(response.status)) {
          response.bodyAsText = (await readCapped(body, limits.maxBytes, controller.signal, source)).toString('utf8');
          delete response.readableStreamBody;
        }
        return response;
      } catch (err) {
        const failure = timedOut ? tooSlow(source, limits.tryTimeoutMs) : err;
        // "connect ECONNREFUSED 10.0.0.5:3128" alone reads as the vault being down: say the call went through the proxy.
        // The error itself is kept (its code drives the SDKs' retries).
        if (via && failure instanceof Error) failure.message = `${failure.message} (through the proxy ${via.host}, from ${proxy.source})`;
        throw failure;
      } finally {
        clearTimeout(timer);
        caller?.removeEventListener('abort', onCallerAbort);
        request.abortSignal = caller;
        request.streamResponseStatusCodes = savedCodes;
      }
    },
  };
}

/**
 * One GET through a boundedHttpClient, for the calls made without an SDK
 * (the sweep's VM list): the same route (proxy or direct) and bounds as the
 * SDKs' calls. An answer too large or too slow fails as theirs do.
 */
export async function boundedGet(
  client: HttpClient,
  url: string,
  headers: Record<string, string>,
): Promise<{ status: number; text: string }> {
  const { createPipelineRequest, createHttpHeaders } = await import('@azure/core-rest-pipeline');
  const res = await client.sendRequest(createPipelineRequest({ url, method: 'GET', headers: createHttpHeaders(headers) }));
  return { status: res.status, text: res.bodyAsText ?? '' };
}
