/**
 * A small Prometheus text-format registry (exposition format 0.0.4). The
 * agent needs a dozen series; a client library would add a dependency and
 * its default process collectors for no gain.
 */

type Labels = Record<string, string>;

interface Family {
  name: string;
  help: string;
  type: 'gauge' | 'counter' | 'histogram';
  series: Map<string, { labels: Labels; value: number }>;
  buckets?: number[];
  hist?: Map<string, { labels: Labels; counts: number[]; sum: number; count: number }>;
}

const escapeLabel = (v: string): string => v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
const labelText = (l: Labels): string => {
  const keys = Object.keys(l).sort();
  return keys.length === 0 ? '' : `{${keys.map((k) => `${k}="${escapeLabel(l[k] ?? '')}"`).join(',')}}`;
};
const num = (v: number): string => (Number.isFinite(v) ? String(v) : v > 0 ? '+Inf' : v < 0 ? '-Inf' : 'NaN');

export class Metrics {
  private readonly families = new Map<string, Family>();

  private family(name: string, help: string, type: Family['type'], buckets?: number[]): Family {
    let f = this.families.get(name);
    if (!f) {
      f = { name, help, type, series: new Map(), ...(buckets ? { buckets, hist: new Map() } : {}) };
      this.families.set(name, f);
    }
    return f;
  }

  /** Declare a family so it is listed (with HELP/TYPE) before its first sample. */
  declare(name: string, help: string, type: Family['type'], buckets?: number[]): void {
    this.family(name, help, type, buckets);
  }

  set(name: string, labels: Labels, value: number, help = ''): void {
    this.family(name, help, 'gauge').series.set(labelText(labels), { labels, value });
  }

  inc(name: string, labels: Labels = {}, by = 1, help = ''): void {
    const f = this.family(name, help, 'counter');
    const key = labelText(labels);
    const cur = f.series.get(key);
    f.series.set(key, { labels, value: (cur?.value ?? 0) + by });
  }

  observe(name: string, labels: Labels, value: number): void {
    const f = this.families.get(name);
    if (!f?.buckets || !f.hist) throw new Error(`internal: histogram ${name} not declared`);
    const key = labelText(labels);
    let h = f.hist.get(key);
    if (!h) {
      h = { labels, counts: f.buckets.map(() => 0), sum: 0, count: 0 };
      f.hist.set(key, h);
    }
    f.buckets.forEach((b, i) => {
      if (value <= b) h.counts[i] = (h.counts[i] ?? 0) + 1;
    });
    h.sum += value;
    h.count++;
  }

  /** Drop every series of a family (e.g. checks that no longer exist). */
  clear(name: string): void {
    this.families.get(name)?.series.clear();
  }

  render(): string {
    const out: string[] = [];
    for (const f of this.families.values()) {
      out.push(`# HELP ${f.name} ${f.help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}`);
      out.push(`# TYPE ${f.name} ${f.type}`);
      if (f.type === 'histogram' && f.buckets && f.hist) {
        for (const h of f.hist.values()) {
          f.buckets.forEach((b, i) => out.push(`${f.name}_bucket${labelText({ ...h.labels, le: num(b) })} ${h.counts[i] ?? 0}`));
          out.push(`${f.name}_bucket${labelText({ ...h.labels, le: '+Inf' })} ${h.count}`);
          out.push(`${f.name}_sum${labelText(h.labels)} ${num(h.sum)}`);
          out.push(`${f.name}_count${labelText(h.labels)} ${h.count}`);
        }
        continue;
      }
      for (const s of f.series.values()) out.push(`${f.name}${labelText(s.labels)} ${num(s.value)}`);
    }
    return out.join('\n') + '\n';
  }
}
