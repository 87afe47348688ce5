import { execa } from 'execa';
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import YAML from 'yaml';
import { agentMetrics, metricNames, problemsWith, substituteGrafanaVariables } from './promql-names.js';

/**
 * The pool's alert rules and dashboard (packaging/prometheus, packaging/grafana):
 * promtool checks and unit-tests the rules, each rule broken three ways must
 * fail its tests, and every metric either file uses is one the agent writes.
 */
const root = path.resolve(import.meta.dirname, '../../..');
const rulesFile = path.join(root, 'packaging/prometheus/dsvm-agent.rules.yml');
const rulesTestFile = path.join(root, 'packaging/prometheus/dsvm-agent.rules.test.yml');
const dashboardFile = path.join(root, 'packaging/grafana/dsvm-agent-pool.json');
const INSTALL = 'install it: apt-get install --no-install-recommends prometheus (scripts/install-deps does)';

interface AlertRule {
  alert: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
interface RulesDoc {
  groups: { name: string; rules: (AlertRule & { record?: string })[] }[];
}

const promtool = (args: string[], cwd = root) => execa('promtool', args, { cwd, reject: false, all: true, timeout: 60_000 });

async function readRules(): Promise<RulesDoc> {
  return YAML.parse(await readFile(rulesFile, 'utf8')) as RulesDoc;
}
const alertsOf = (doc: RulesDoc): AlertRule[] => doc.groups.flatMap((g) => g.rules).filter((r) => r.alert !== undefined);

// Missing promtool fails (it is in .ci/apt-packages.txt), it never skips: a
// skipped rules test would let broken alerts through.
const promtoolVersion = await promtool(['--version']);
const hasPromtool = promtoolVersion.exitCode === 0;

t.test('promtool is installed', async (t) => {
  t.ok(hasPromtool, `promtool --version runs (${INSTALL}): ${promtoolVersion.failed ? promtoolVersion.message : ''}`);
});

t.test('promtool check rules accepts the rules', { skip: !hasPromtool && 'failed above: promtool is missing' }, async (t) => {
  const r = await promtool(['check', 'rules', rulesFile]);
  t.equal(r.exitCode, 0, r.all);
  t.match(r.all, /SUCCESS: \d+ rules found/);
});

t.test('promtool test rules passes', { skip: !hasPromtool && 'failed above: promtool is missing' }, async (t) => {
  const r = await promtool(['test', 'rules', rulesTestFile]);
  t.equal(r.exitCode, 0, r.all);
  t.match(r.all, /SUCCESS/);
});

t.test('each alert has a severity, a summary and a description naming the VM and the fix', async (t) => {
  const alerts = alertsOf(await readRules());
  t.ok(alerts.length >= 4, `${alerts.length} alerts`);
  for (const a of ['DsvmAgentJoinBroken', 'DsvmAgentShareUnmounted', 'DsvmAgentRepairsExhausted', 'DsvmAgentFirstBootStuck'])
    t.ok(
      alerts.some((r) => r.alert === a),
      `${a} is there`,
    );
  for (const a of alerts) {
    t.match(a.labels?.severity, /^(critical|warning|info)$/, `${a.alert}: severity`);
    t.match(a.annotations?.summary, /\{\{ \$labels\.instance \}\}/, `${a.alert}: the summary names the VM`);
    t.match(a.annotations?.description, /\{\{ \$labels\.instance \}\}/, `${a.alert}: the description names the VM`);
    t.match(a.annotations?.description, /\bFix\b/, `${a.alert}: the description says the fix`);
  }
});

t.test('each alert is tested firing and not firing', async (t) => {
  const tests = (
    YAML.parse(await readFile(rulesTestFile, 'utf8')) as { tests: { alert_rule_test?: { alertname: string; exp_alerts: unknown[] }[] }[] }
  ).tests;
  const cases = tests.flatMap((c) => c.alert_rule_test ?? []);
  for (const a of alertsOf(await readRules())) {
    const mine = cases.filter((c) => c.alertname === a.alert);
    t.ok(
      mine.some((c) => c.exp_alerts.length > 0),
      `${a.alert}: a case where it fires`,
    );
    t.ok(
      mine.some((c) => c.exp_alerts.length === 0),
      `${a.alert}: a case where it does not`,
    );
  }
});

/**
 * A test that cannot fail proves nothing: each alert, made to never fire, to
 * fire for everything, and (when it has one) stripped of its `for:`, must
 * make `promtool test rules` fail, on that alert.
 */
t.test('the rule tests fail when a rule is broken', { skip: !hasPromtool && 'failed above: promtool is missing' }, async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'alert-rules-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await copyFile(rulesTestFile, path.join(dir, path.basename(rulesTestFile)));
  const original = await readRules();
  const breakages: [string, (r: AlertRule) => void][] = [
    ['never fires', (r) => void (r.expr = `(${r.expr}) and on() (vector(1) < 0)`)],
    ['fires for everything', (r) => void (r.expr = `(${r.expr}) or vector(1)`)],
    ['has no for', (r) => void delete r.for],
  ];
  for (const a of alertsOf(original)) {
    for (const [how, mutate] of breakages) {
      if (how === 'has no for' && !a.for) continue;
      const doc = structuredClone(original);
      const rule = alertsOf(doc).find((r) => r.alert === a.alert);
      if (!rule) throw new Error(`internal: ${a.alert} lost in the copy`);
      mutate(rule);
      await writeFile(path.join(dir, path.basename(rulesFile)), YAML.stringify(doc));
      const r = await promtool(['test', 'rules', path.basename(rulesTestFile)], dir);
      t.not(r.exitCode, 0, `${a.alert} ${how}: promtool test rules fails`);
      t.match(r.all, new RegExp(`alertname: ${a.alert},`), `${a.alert} ${how}: the failure names it`);
    }
  }
});

t.test('the metric reader finds names and nothing else', async (t) => {
  const cases: [string, string, string[]][] = [
    ['a counter rate', 'rate(dsvm_agent_logins_total{outcome="failed"}[5m])', ['dsvm_agent_logins_total']],
    ['grouping and offset', 'sum by (instance) (a) / on(instance) group_left(check) b offset 30m', ['a', 'b']],
    ['Grafana variables', 'histogram_quantile(0.95, sum by (le) (rate(x_bucket{instance=~"$instance"}[$__rate_interval])))', ['x_bucket']],
    ['numbers', '1e3 * node_boot_time_seconds > bool 0.5', ['node_boot_time_seconds']],
  ];
  for (const [name, expr, want] of cases) t.same(metricNames(expr), want, name);
  const agent = agentMetrics();
  t.ok(agent.names.has('dsvm_agent_login_duration_seconds_bucket'), "the histogram's buckets are known");
  t.match(problemsWith('time() - node_boot_time_seconds > 600', agent), ['node_boot_time_seconds is not a metric the agent writes']);
  t.match(problemsWith('dsvm_agent_check_states == 1', agent), [/dsvm_agent_check_states/]);
  t.match(problemsWith('dsvm_agent_check_state{check="domain-join"} == 1', agent), [/check="domain-join"/]);
  t.match(problemsWith('dsvm_agent_check_state{state="failed"} == 1', agent), [/state="failed"/]);
  t.match(problemsWith('dsvm_agent_repair_gave_up{check="sssd"} == 1', agent), [/no label check/]);
  t.same(problemsWith('dsvm_agent_check_state{check="domain-trust", state="fail"} == 1', agent), []);
});

t.test('the rules use only metrics the agent writes', async (t) => {
  const agent = agentMetrics();
  for (const r of (await readRules()).groups.flatMap((g) => g.rules)) {
    t.ok(metricNames(r.expr).length > 0, `${r.alert ?? r.record}: selects a metric`);
    t.same(problemsWith(r.expr, agent), [], `${r.alert ?? r.record}`);
  }
});

interface Dashboard {
  title: string;
  panels: { id: number; title: string; targets?: { expr: string }[] }[];
  templating: { list: { name: string; type: string; query?: string | { query: string } }[] };
}

t.test('the dashboard is JSON whose queries parse and use only metrics the agent writes', async (t) => {
  const dash = JSON.parse(await readFile(dashboardFile, 'utf8')) as Dashboard;
  t.ok(dash.panels.length > 0, dash.title);
  t.equal(new Set(dash.panels.map((p) => p.id)).size, dash.panels.length, 'panel ids are unique');
  const agent = agentMetrics();
  const exprs = dash.panels.flatMap((p) => (p.targets ?? []).map((q) => ({ where: p.title, expr: q.expr })));
  t.ok(exprs.length >= dash.panels.length, `${exprs.length} queries`);
  for (const { where, expr } of exprs) {
    t.ok(metricNames(expr).length > 0, `${where}: selects a metric`);
    t.same(problemsWith(expr, agent), [], where);
  }
  for (const v of dash.templating.list.filter((x) => x.type === 'query')) {
    const query = typeof v.query === 'string' ? v.query : (v.query?.query ?? '');
    const metric = /^label_values\((\w+),\s*\w+\)$/.exec(query)?.[1];
    t.ok(metric && agent.names.has(metric), `variable ${v.name}: ${query}`);
  }
  // promtool parses each query as a recording rule: PromQL syntax errors fail here.
  if (!hasPromtool) return;
  const dir = await mkdtemp(path.join(tmpdir(), 'dashboard-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const rules = exprs.map(({ expr }, i) => ({ record: `dashboard:query_${i}`, expr: substituteGrafanaVariables(expr) }));
  for (const r of rules) t.notMatch(r.expr, /\$/, `${r.record}: no Grafana variable left unreplaced`);
  const file = path.join(dir, 'dashboard.rules.yml');
  await writeFile(file, YAML.stringify({ groups: [{ name: 'dashboard', rules }] }));
  const r = await promtool(['check', 'rules', file]);
  t.equal(r.exitCode, 0, r.all);
});
