import net from 'node:net';

/**
 * The DC's clock, read from the LDAP rootDSE attribute `currentTime`.
 *
 * Why this source: every AD DC (Windows, Entra Domain Services, Samba)
 * publishes `currentTime` on the rootDSE to anonymous readers, on the same
 * port 389 preflight already requires, so it needs no credentials, no extra
 * package (`net ads info` would need samba-common-bin, `ldapsearch`
 * ldap-utils) and no NTP service on the DC. Resolution is one second, which
 * is plenty against Kerberos' five-minute limit. The request is one
 * anonymous search, so a tiny BER encoder/decoder is enough.
 */

/** BER length bytes. */
function berLength(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  if (n < 0x100) return Buffer.from([0x81, n]);
  return Buffer.from([0x82, n >> 8, n & 0xff]);
}

function tlv(tag: number, value: Buffer): Buffer {
  return Buffer.concat([Buffer.from([tag]), berLength(value.length), value]);
}

/** LDAPMessage{ id, SearchRequest{ base "", scope base, filter (objectClass=*), attrs [currentTime] } }. */
export function rootDseTimeRequest(messageId = 1): Buffer {
  const search = Buffer.concat([
    tlv(0x04, Buffer.alloc(0)), // baseObject ""
    tlv(0x0a, Buffer.from([0])), // scope: baseObject
    tlv(0x0a, Buffer.from([0])), // derefAliases: never
    tlv(0x02, Buffer.from([0])), // sizeLimit
    tlv(0x02, Buffer.from([5])), // timeLimit (s)
    tlv(0x01, Buffer.from([0])), // typesOnly: false
    tlv(0x87, Buffer.from('objectClass')), // filter: present
    tlv(0x30, tlv(0x04, Buffer.from('currentTime'))),
  ]);
  return tlv(0x30, Buffer.concat([tlv(0x02, Buffer.from([messageId])), tlv(0x63, search)]));
}

interface Tlv {
  tag: number;
  value: Buffer;
  /** Offset just after this element. */
  end: number;
}

/** One BER element at `offset`, or undefined when the buffer does not hold all of it yet. */
function readTlv(buf: Buffer, offset: number): Tlv | undefined {
  if (offset + 2 > buf.length) return undefined;
  const tag = buf[offset]!;
  let len = buf[offset + 1]!;
  let pos = offset + 2;
  if (len & 0x80) {
    const bytes = len & 0x7f;
    if (bytes === 0 || bytes > 4) throw new Error('unsupported BER length');
    if (pos + bytes > buf.length) return undefined;
    len = 0;
    for (let i = 0; i < bytes; i++) len = len * 256 + buf[pos + i]!;
    pos += bytes;
  }
  if (pos + len > buf.length) return undefined;
  return { tag, value: buf.subarray(pos, pos + len), end: pos + len };
}

function children(value: Buffer): Tlv[] {
  const out: Tlv[] = [];
  for (let off = 0; off < value.length;) {
    const t = readTlv(value, off);
    if (!t) throw new Error('truncated BER element');
    out.push(t);
    off = t.end;
  }
  return out;
}

/** "20260101120000.0Z" (GeneralizedTime, UTC) to epoch ms. */
export function parseGeneralizedTime(text: string): number {
  const m = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(?:[.,](\d+))?Z$/.exec(text);
  if (!m) throw new Error(`unexpected currentTime "${text}"`);
  const [, y, mo, d, h, mi, s, frac] = m;
  const ms = frac ? Math.round(Number(`0.${frac}`) * 1000) : 0;
  return Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s), ms);
}

/**
 * Scan LDAP messages in `buf` for the rootDSE entry's currentTime.
 * Returns `{done: false}` while more bytes are needed.
 */
export function parseRootDseTime(buf: Buffer): { done: false } | { done: true; time?: string; resultCode?: number } {
  let time: string | undefined;
  for (let off = 0; ;) {
    const msg = readTlv(buf, off);
    if (!msg) return { done: false };
    off = msg.end;
    const [, op] = children(msg.value);
    if (!op) continue;
    if (op.tag === 0x64) {
      // SearchResultEntry: objectName, attributes SEQUENCE OF {type, vals SET}
      const [, attrs] = children(op.value);
      for (const attr of attrs ? children(attrs.value) : []) {
        const [type, vals] = children(attr.value);
        if (type?.value.toString().toLowerCase() === 'currenttime' && vals) {
          const first = children(vals.value)[0];
          if (first) time = first.value.toString();
        }
      }
    } else if (op.tag === 0x65) {
      // SearchResultDone: resultCode ENUMERATED first
      const code = children(op.value)[0]?.value[0];
      return { done: true, ...(time === undefined ? {} : { time }), ...(code === undefined ? {} : { resultCode: code }) };
    }
  }
}

/**
 * Offset of the DC's clock from ours in ms (positive: the DC is ahead),
 * measured against the midpoint of the round trip.
 */
export function readDcClockOffset(host: string, opts: { port?: number; timeoutMs?: number } = {}): Promise<number> {
  const port = opts.port ?? 389;
  const timeoutMs = opts.timeoutMs ?? 5000;
  return new Promise((resolve, reject) => {
    const sent = Date.now();
    let buf = Buffer.alloc(0);
    const socket = net.connect({ host, port });
    const fail = (err: Error): void => {
      socket.destroy();
      reject(err);
    };
    socket.setTimeout(timeoutMs, () => fail(new Error(`no answer from ${host}:${port} within ${timeoutMs} ms`)));
    socket.on('error', fail);
    socket.on('connect', () => socket.write(rootDseTimeRequest()));
    socket.on('data', (chunk) => {
      const received = Date.now();
      buf = Buffer.concat([buf, chunk]);
      let parsed;
      try {
        parsed = parseRootDseTime(buf);
      } catch (err) {
        fail(err as Error);
        return;
      }
      if (!parsed.done) return;
      socket.destroy();
      if (parsed.time === undefined) {
        reject(new Error(`the rootDSE of ${host} has no currentTime (LDAP result ${parsed.resultCode ?? '?'})`));
        return;
      }
      try {
        const server = parseGeneralizedTime(parsed.time);
        resolve(server - (sent + received) / 2);
      } catch (err) {
        reject(err as Error);
      }
    });
    socket.on('end', () => fail(new Error(`${host}:${port} closed the connection before answering`)));
  });
}
