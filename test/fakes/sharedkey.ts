import { createHmac, timingSafeEqual } from 'node:crypto';
import type http from 'node:http';

/**
 * Shared Key authorization for the File service, as documented in
 * "Authorize with Shared Key" (Azure Storage REST, version 2015-02-21+):
 * HMAC-SHA256, keyed with the base64-decoded account key, over
 *
 *   VERB, Content-Encoding, Content-Language, Content-Length (empty when 0),
 *   Content-MD5, Content-Type, Date, If-Modified-Since, If-Match,
 *   If-None-Match, If-Unmodified-Since, Range          (one per line)
 *   CanonicalizedHeaders  (x-ms-* lower-cased, sorted, "name:value\n")
 *   CanonicalizedResource ("/account/path" + "\nparam:value" per query
 *                          parameter, names lower-cased and sorted, values
 *                          decoded; several values sorted and comma-joined)
 */

function header(req: http.IncomingMessage, name: string): string {
  const value = req.headers[name];
  return Array.isArray(value) ? value.join(',') : (value ?? '');
}

function canonicalizedHeaders(req: http.IncomingMessage): string {
  const names = Object.keys(req.headers)
    .map((n) => n.toLowerCase())
    .filter((n) => n.startsWith('x-ms-'))
    .sort();
  // Values: unfold line breaks and trim, per the doc.
  return names
    .map(
      (n) =>
        `${n}:${header(req, n)
          .replace(/\s*\r?\n\s*/g, ' ')
          .trim()}\n`,
    )
    .join('');
}

function canonicalizedResource(account: string, rawPath: string, url: URL): string {
  const params = new Map<string, string[]>();
  for (const [key, value] of url.searchParams) {
    const k = key.toLowerCase();
    params.set(k, [...(params.get(k) ?? []), value]);
  }
  const lines = [...params.keys()].sort().map((k) => `\n${k}:${(params.get(k) ?? []).sort().join(',')}`);
  return `/${account}${rawPath || '/'}${lines.join('')}`;
}

export function stringToSign(req: http.IncomingMessage, url: URL, account: string, rawPath: string): string {
  const contentLength = header(req, 'content-length');
  return [
    (req.method ?? 'GET').toUpperCase(),
    header(req, 'content-encoding'),
    header(req, 'content-language'),
    contentLength === '0' ? '' : contentLength,
    header(req, 'content-md5'),
    header(req, 'content-type'),
    header(req, 'date'),
    header(req, 'if-modified-since'),
    header(req, 'if-match'),
    header(req, 'if-none-match'),
    header(req, 'if-unmodified-since'),
    header(req, 'range'),
  ]
    .join('\n')
    .concat('\n', canonicalizedHeaders(req), canonicalizedResource(account, rawPath, url));
}

export type SharedKeyResult = { ok: true } | { ok: false; code: 'NoAuthenticationInformation' | 'AuthenticationFailed'; detail: string };

/**
 * Verify `Authorization: SharedKey account:signature` against either key.
 * With a path-style URL ("/account/share/...") clients sign the full path, so
 * the resource is "/account/account/share/..."; a client that treats the
 * endpoint as the account's host signs "/account/share/...". Both are accepted.
 */
export function verifySharedKey(req: http.IncomingMessage, url: URL, account: string, keys: readonly string[]): SharedKeyResult {
  const authorization = header(req, 'authorization');
  if (!authorization)
    return {
      ok: false,
      code: 'NoAuthenticationInformation',
      detail: 'Server failed to authenticate the request. Please refer to the information in the www-authenticate header.',
    };
  const m = /^SharedKey\s+([^:\s]+):(\S+)$/.exec(authorization);
  if (!m)
    return {
      ok: false,
      code: 'AuthenticationFailed',
      detail: 'Authentication scheme is not SharedKey, or the Authorization header is malformed.',
    };
  if (m[1] !== account)
    return {
      ok: false,
      code: 'AuthenticationFailed',
      detail: `The account ${m[1] ?? ''} in the Authorization header does not match the account in the URL.`,
    };
  if (!header(req, 'x-ms-date') && !header(req, 'date'))
    return { ok: false, code: 'AuthenticationFailed', detail: 'Request date header not specified.' };
  const when = Date.parse(header(req, 'x-ms-date') || header(req, 'date'));
  if (Number.isNaN(when) || Math.abs(Date.now() - when) > 15 * 60_000)
    return { ok: false, code: 'AuthenticationFailed', detail: 'Request date header too old or invalid.' };
  const given = Buffer.from(m[2] ?? '', 'base64');
  const rawPath = url.pathname;
  const withoutAccount = rawPath.slice(account.length + 1) || '/';
  for (const path of [rawPath, withoutAccount]) {
    const toSign = stringToSign(req, url, account, path);
    for (const key of keys) {
      const expected = createHmac('sha256', Buffer.from(key, 'base64')).update(toSign, 'utf8').digest();
      if (expected.length === given.length && timingSafeEqual(expected, given)) return { ok: true };
    }
  }
  return {
    ok: false,
    code: 'AuthenticationFailed',
    detail: `The MAC signature found in the HTTP request '${m[2] ?? ''}' is not the same as any computed signature.`,
  };
}
