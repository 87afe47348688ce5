/**
 * What the alert rules and the dashboard may refer to, read from the agent
 * itself, and what a PromQL expression refers to. The names come from the
 * text the agent's own render function writes, never from a list kept here:
 * a renamed or dropped metric breaks the rules' test, not a pool's alerts.
 */
import { checkIds } from '../../../src/agent/config-schema.js';
import { repairsByCheck } from '../../../src/agent/capability.js';
import { capabilities } from '../../../src/app/capabilities.js';
import { declareMetrics, renderMetrics } from '../../../src/app/daemon/agent-metrics.js';
import { pendingRecord } from '../../../src/app/daemon/check-state.js';
import { Metrics } from '../../../src/app/daemon/metrics.js';
import { newRepairRecord } from '../../../src/app/daemon/repair.js';
import { parsePrometheus } from '../daemon/parse.js';

/** Labels Prometheus adds to every scraped series (node_exporter's target), or that a histogram carries. */
const TARGET_LABELS = new Set(['instance', 'job', 'le']);

export interface AgentMetrics {
  /** Every series name the agent writes (a histogram's _bucket, _sum and _count). */
  names: Set<string>;
  /** Per series name that has samples in the render: each label and the values seen. */
  labels: Map<string, Map<string, Set<string>>>;
}

/** Render the agent's metrics for a VM that has every check and every repair. */
export function agentMetrics(): AgentMetrics {
  const now = Date.parse('2026-01-01T00:00:00Z');
  const m = new Metrics();
  declareMetrics(m);
  const repairFor = new Map([...repairsByCheck(capabilities)].map(([id, r]) => [id, r.action]));
  const actions = [...new Set(repairFor.values())];
  const text = renderMetrics(
    m,
    {
      checks: checkIds.map((id) => pendingRecord(id, now)),
      repairs: actions.map((a) => newRepairRecord(a)),
      repairFor,
      firstBoot: { state: 'done' },
      graceAnchor: now,
      unhealthyOn: [],
    },
    { initializingGraceSec: 1800 },
    now,
  );
  const { samples, types } = parsePrometheus(text);
  const names = new Set<string>();
  // The exposition format's own rule: a histogram family is written as three series.
  for (const [name, type] of types) {
    if (type === 'histogram') for (const s of ['_bucket', '_sum', '_count']) names.add(name + s);
    else if (type === 'summary') for (const s of ['', '_sum', '_count']) names.add(name + s);
    else names.add(name);
  }
  const labels = new Map<string, Map<string, Set<string>>>();
  for (const s of samples) {
    names.add(s.name);
    const family = labels.get(s.name) ?? new Map<string, Set<string>>();
    labels.set(s.name, family);
    for (const [k, v] of Object.entries(s.labels)) family.set(k, (family.get(k) ?? new Set()).add(v));
  }
  return { names, labels };
}

/** Grafana's variables, replaced by values PromQL accepts. */
export function substituteGrafanaVariables(expr: string): string {
  return expr
    .replace(/\$__rate_interval|\$__interval|\$\{__interval\}/g, '5m')
    .replace(/\$__range/g, '6h')
    .replace(/\$\{?instance\}?/g, '.*');
}

const KEYWORDS = new Set([
  'and',
  'or',
  'unless',
  'bool',
  'offset',
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'inf',
  'nan',
]);

/** The metric names an expression selects (functions, keywords, labels and literals taken out). */
export function metricNames(expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ')
    .replace(/(?<![\w:])\d[\w.]*/g, ' ');
  const out: string[] = [];
  for (const m of bare.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*/g)) {
    const after = bare.slice((m.index ?? 0) + m[0].length);
    if (/^\s*\(/.test(after) || KEYWORDS.has(m[0].toLowerCase())) continue;
    out.push(m[0]);
  }
  return out;
}

/** Problems with an expression against what the agent writes: unknown names, labels or label values. */
export function problemsWith(expr: string, agent: AgentMetrics): string[] {
  const problems = metricNames(expr)
    .filter((n) => !agent.names.has(n))
    .map((n) => `${n} is not a metric the agent writes`);
  for (const sel of expr.matchAll(/([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{([^}]*)\}/g)) {
    const [, name = '', body = ''] = sel;
    const family = agent.labels.get(name);
    if (!family) continue; // declared only (a counter before its first increment): no labels to compare
    for (const lm of body.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"/g)) {
      const [, label = '', , value = ''] = lm;
      if (TARGET_LABELS.has(label)) continue;
      const seen = family.get(label);
      if (!seen) {
        problems.push(`${name} has no label ${label} (it has ${[...family.keys()].join(', ') || 'none'})`);
        continue;
      }
      // Only plain values and alternations of them can be compared; a real regex is left alone.
      if (!/^[\w.+-]+(\|[\w.+-]+)*$/.test(value)) continue;
      for (const v of value.split('|'))
        if (!seen.has(v)) problems.push(`${name}{${label}="${v}"}: the agent writes ${label} as one of ${[...seen].join(', ')}`);
    }
  }
  return problems;
}
