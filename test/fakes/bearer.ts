import type { FakeState, IssuedToken } from './state.js';

export type BearerCheck =
  { ok: true; token: IssuedToken } | { ok: false; reason: 'missing' | 'unknown' | 'expired' | 'audience'; resource?: string };

/** Resource URIs compare without a trailing slash ("https://management.azure.com/" = "…com"). */
export function sameResource(a: string, b: string): boolean {
  return a.replace(/\/+$/, '').toLowerCase() === b.replace(/\/+$/, '').toLowerCase();
}

/** Check a Bearer header against the tokens the IMDS fake issued. */
export function checkBearer(state: FakeState, authorization: string | undefined, audiences: string[]): BearerCheck {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? '');
  if (!match?.[1]) return { ok: false, reason: 'missing' };
  const token = state.tokens.get(match[1]);
  if (!token) return { ok: false, reason: 'unknown' };
  if (token.expiresOn * 1000 < Date.now()) return { ok: false, reason: 'expired' };
  if (!audiences.some((aud) => sameResource(aud, token.resource))) return { ok: false, reason: 'audience', resource: token.resource };
  return { ok: true, token };
}

/** For request records: which identity a Bearer header belongs to (never the token). */
export function clientIdOfBearer(state: FakeState): (authorization: string) => string | undefined {
  return (authorization) => {
    const match = /^Bearer\s+(\S+)/i.exec(authorization);
    return match?.[1] ? state.tokens.get(match[1])?.clientId : undefined;
  };
}
