/**
 * Readers the way consumers read the agent's output, for contract tests.
 */

/**
 * What the Application Health extension (Go encoding/json into
 * `struct{ ApplicationHealthState string; CustomMetrics string }`) sees:
 * keys match case-insensitively, the last matching key wins, a
 * customMetrics value must be a string holding a JSON object.
 */
export function extensionView(text: string): { state: 'Healthy' | 'Unhealthy' | 'Unknown'; error?: string } {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    return { state: 'Unknown', error: `not JSON: ${(err as Error).message}` };
  }
  if (!doc || typeof doc !== 'object' || Array.isArray(doc)) return { state: 'Unknown', error: 'not an object' };
  let state: unknown;
  for (const [k, v] of Object.entries(doc)) {
    if (k.toLowerCase() === 'applicationhealthstate') state = v;
    if (k.toLowerCase() === 'custommetrics') {
      if (typeof v !== 'string') return { state: 'Unknown', error: 'customMetrics is not a string' };
      try {
        const inner = JSON.parse(v) as unknown;
        if (!inner || typeof inner !== 'object' || Array.isArray(inner))
          return { state: 'Unknown', error: 'customMetrics is not a JSON object' };
      } catch {
        return { state: 'Unknown', error: 'customMetrics is not JSON' };
      }
    }
  }
  if (state === 'Healthy' || state === 'Unhealthy') return { state };
  return { state: 'Unknown', error: `invalid ApplicationHealthState ${JSON.stringify(state)}` };
}

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parse Prometheus text format 0.0.4 strictly enough to catch malformed output. */
export function parsePrometheus(text: string): { samples: Sample[]; types: Map<string, string>; helps: Map<string, string> } {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  const helps = new Map<string, string>();
  if (!text.endsWith('\n')) throw new Error('exposition must end with a newline');
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const meta = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line);
    if (meta) {
      const [, kind, name, rest] = meta as unknown as [string, string, string, string];
      if (kind === 'TYPE') {
        if (!['gauge', 'counter', 'histogram', 'summary', 'untyped'].includes(rest)) throw new Error(`bad TYPE: ${line}`);
        if (types.has(name)) throw new Error(`duplicate TYPE for ${name}`);
        types.set(name, rest);
      } else helps.set(name, rest);
      continue;
    }
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`bad sample line: ${line}`);
    const labels: Record<string, string> = {};
    if (m[3]) {
      const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)/gy;
      let pos = 0;
      let lm: RegExpExecArray | null;
      while ((lm = re.exec(m[3])) !== null) {
        labels[lm[1] as string] = (lm[2] as string).replace(/\\n/g, '\n').replace(/\\"/g, '"').replace(/\\\\/g, '\\');
        pos = re.lastIndex;
      }
      if (pos !== m[3].length) throw new Error(`bad labels: ${line}`);
    }
    const raw = m[4] as string;
    const value = raw === '+Inf' ? Infinity : raw === '-Inf' ? -Infinity : Number(raw);
    if (Number.isNaN(value) && raw !== 'NaN') throw new Error(`bad value: ${line}`);
    const base = (m[1] as string).replace(/_(bucket|sum|count)$/, '');
    if (!types.has(m[1] as string) && !types.has(base)) throw new Error(`sample before its TYPE: ${line}`);
    samples.push({ name: m[1] as string, labels, value });
  }
  return { samples, types, helps };
}
