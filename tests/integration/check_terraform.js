#!/usr/bin/env node
/*
 * Checks the Terraform module in container/terraform/ without Terraform: every
 * .tf file is parsed to JSON by @cdktf/hcl2json (tests/node, installed by
 * scripts/deps.sh), and the result is checked for what the deployment relies on.
 *
 *   node check_terraform.js [--root DIR]
 *
 * Prints one line per check, tab-separated, for test_terraform.sh to turn into TAP:
 *   ok<TAB>NAME    or    not ok<TAB>NAME<TAB>WHY
 * and exits 0 when none failed, 1 otherwise.
 *
 * What is checked:
 * - every .tf file parses;
 * - every var.X referenced is declared, every declared variable is used and has a
 *   description and a type; the same for locals; every resource or data source
 *   referenced (aws_x.y, data.aws_x.y) is declared; outputs have a description and
 *   reference only what exists;
 * - the groups: sgprobe-agents has no ingress and one egress, to sgprobe-collector
 *   on the collector's port; sgprobe-collector admits sgprobe-agents there and
 *   reaches the monitoring endpoint's group on 443, which admits it; every rule
 *   is one TCP port, never 0.0.0.0/0, and has a description (in the characters
 *   AWS accepts) saying why it exists; no inline rules;
 * - the monitoring interface endpoint (service name, private DNS, its group);
 * - the alarms: metric names the collector really publishes (collector/publisher.c),
 *   namespace var.namespace, dimension Cluster, thresholds, comparison operators,
 *   evaluation periods 1/3/3/3, treat_missing_data chosen on every alarm and
 *   explained by a comment just above it, SNS actions; the per-role metric-math
 *   alarm over var.agent_roles joining Container Insights' RunningTaskCount and
 *   ReportingAgents;
 * - IAM: the collector's task role has one policy, with one statement allowing
 *   exactly cloudwatch:PutMetricData on "*" under StringEquals cloudwatch:namespace
 *   = var.namespace; the execution role reads the keys secret, pulls from the given
 *   repositories and writes the log group, with no wildcard action;
 * - ECS: a Fargate awsvpc task definition with the roles, the collector's health
 *   subcommand as its health check, only SGPROBE_* variables the binaries read,
 *   the same variables as container/ecs/collector-task-definition.json; a service
 *   in the collector's group without a public IP, and the desired_count guard.
 */
"use strict";
const fs = require("fs");
const path = require("path");

const args = process.argv.slice(2);
const root = args[0] === "--root" ? path.resolve(args[1]) : path.resolve(__dirname, "../..");
const tfDir = path.join(root, "container/terraform");
const hcl2json = require(path.join(__dirname, "../node/node_modules/@cdktf/hcl2json"));

const results = [];
function check(name, cond, why) {
  results.push([!!cond, name, cond ? "" : why || ""]);
  return !!cond;
}

// --- the parsed module --------------------------------------------------------------

const m = { resource: {}, data: {}, variable: {}, output: {}, locals: {}, terraform: [] };
const texts = {};

function merge(j) {
  for (const kind of ["resource", "data"]) {
    for (const [type, byName] of Object.entries(j[kind] || {})) {
      m[kind][type] = m[kind][type] || {};
      for (const [name, bodies] of Object.entries(byName)) {
        check(`${kind} ${type}.${name} is declared once`, !m[kind][type][name], "declared twice");
        m[kind][type][name] = bodies[0];
      }
    }
  }
  for (const kind of ["variable", "output"]) {
    for (const [name, bodies] of Object.entries(j[kind] || {})) {
      check(`${kind} ${name} is declared once`, !m[kind][name], "declared twice");
      m[kind][name] = bodies[0];
    }
  }
  for (const block of j.locals || []) {
    for (const [name, value] of Object.entries(block)) {
      check(`local ${name} is declared once`, !(name in m.locals), "declared twice");
      m.locals[name] = value;
    }
  }
  for (const t of j.terraform || []) m.terraform.push(t);
}

// Every string anywhere in a value, for the references inside them.
function strings(v, out = []) {
  if (typeof v === "string") out.push(v);
  else if (Array.isArray(v)) v.forEach((x) => strings(x, out));
  else if (v && typeof v === "object") Object.values(v).forEach((x) => strings(x, out));
  return out;
}

// The expressions (the insides of ${...}) of a string, braces balanced.
function expressions(s) {
  const out = [];
  let i = 0;
  while ((i = s.indexOf("${", i)) >= 0) {
    if (i > 0 && s[i - 1] === "$") {
      i += 2; // $${ is a literal
      continue;
    }
    let depth = 0;
    let j = i + 1;
    for (; j < s.length; j++) {
      if (s[j] === "{") depth++;
      else if (s[j] === "}" && --depth === 0) break;
    }
    out.push(s.slice(i + 2, j));
    i = j + 1;
  }
  return out;
}

function refs(v) {
  const found = { var: new Set(), local: new Set(), resource: new Set(), data: new Set() };
  for (const s of strings(v)) {
    for (const e of expressions(s)) {
      for (const x of e.matchAll(/\bvar\.([A-Za-z_][\w-]*)/g)) found.var.add(x[1]);
      for (const x of e.matchAll(/\blocal\.([A-Za-z_][\w-]*)/g)) found.local.add(x[1]);
      for (const x of e.matchAll(/\bdata\.([a-z0-9_]+)\.([A-Za-z_][\w-]*)/g)) found.data.add(`${x[1]}.${x[2]}`);
      for (const x of e.matchAll(/(?<![\w.])(aws_[a-z0-9_]+)\.([A-Za-z_][\w-]*)/g)) found.resource.add(`${x[1]}.${x[2]}`);
    }
  }
  return found;
}

// A value with local.X replaced by the local's own text, so that a reference
// through a local is seen (one level is all the module uses).
function throughLocals(v) {
  let s = JSON.stringify(v) || "";
  for (const x of s.matchAll(/\blocal\.([A-Za-z_][\w-]*)/g)) {
    if (x[1] in m.locals) s += " " + JSON.stringify(m.locals[x[1]]);
  }
  return s;
}

// A string with ${var.X} (default) and ${local.X} (plain strings) put in; null if
// anything else is left.
function evaluate(s) {
  if (typeof s !== "string") return s;
  let out = s;
  for (let n = 0; n < 5 && out.includes("${"); n++) {
    out = out.replace(/\$\{var\.([\w-]+)\}/g, (all, v) =>
      m.variable[v] && typeof m.variable[v].default === "string" ? m.variable[v].default : all);
    out = out.replace(/\$\{local\.([\w-]+)\}/g, (all, l) =>
      typeof m.locals[l] === "string" ? m.locals[l] : all);
  }
  return out.includes("${") ? null : out;
}

const res = (type) => m.resource[type] || {};
const isRef = (value, target) => typeof value === "string" && new RegExp(`\\b${target.replace(/[.[\]]/g, "\\$&")}\\b`).test(value);

async function main() {
  const files = fs.existsSync(tfDir) ? fs.readdirSync(tfDir).filter((f) => f.endsWith(".tf")).sort() : [];
  check("container/terraform has .tf files", files.length > 0, tfDir);
  for (const f of files) {
    const text = fs.readFileSync(path.join(tfDir, f), "utf8");
    texts[f] = text;
    try {
      merge(await hcl2json.parse(f, text));
      check(`${f} parses`, true);
    } catch (e) {
      check(`${f} parses`, false, String(e).split("\n")[0]);
    }
  }
  const allText = Object.values(texts).join("\n");

  // --- terraform and providers ---
  const rp = m.terraform.flatMap((t) => t.required_providers || []);
  check("required_providers pins hashicorp/aws", rp.some((p) => p.aws && p.aws.source === "hashicorp/aws"),
    JSON.stringify(rp));
  check("required_version is set", m.terraform.some((t) => t.required_version));

  // --- references ---
  const everything = [m.resource, m.data, m.output, m.locals, m.variable];
  const used = refs(everything);
  for (const v of used.var) check(`var.${v} is declared`, v in m.variable, "used but not declared");
  for (const [name, body] of Object.entries(m.variable)) {
    check(`variable ${name} is used`, used.var.has(name), "declared but never used");
    check(`variable ${name} has a description`, typeof body.description === "string" && body.description.length > 10);
    check(`variable ${name} has a type`, typeof body.type === "string", JSON.stringify(body.type));
  }
  for (const l of used.local) check(`local.${l} is declared`, l in m.locals, "used but not declared");
  for (const name of Object.keys(m.locals)) check(`local ${name} is used`, used.local.has(name), "never used");
  for (const r of used.resource) {
    const [type, name] = r.split(".");
    check(`${r} is a declared resource`, res(type)[name], "referenced but not declared");
  }
  for (const d of used.data) {
    const [type, name] = d.split(".");
    check(`data.${d} is declared`, (m.data[type] || {})[name], "referenced but not declared");
  }
  for (const [name, body] of Object.entries(m.output)) {
    check(`output ${name} has a description and a value`, body.description && "value" in body);
    const r = refs(body.value);
    const ok = [...r.resource].every((x) => res(x.split(".")[0])[x.split(".")[1]]) &&
      [...r.var].every((x) => x in m.variable) && [...r.local].every((x) => x in m.locals);
    check(`output ${name} references what exists`, ok && r.resource.size + r.var.size + r.local.size > 0,
      JSON.stringify(body.value));
  }
  for (const name of ["agents_security_group_id", "collector_security_group_id", "page_topic_arn", "service_name"]) {
    check(`output ${name} exists`, name in m.output);
  }

  // --- security groups ---
  const sgs = res("aws_security_group");
  const sgByName = {};
  for (const [key, body] of Object.entries(sgs)) {
    const name = evaluate(body.name);
    sgByName[name] = key;
    check(`aws_security_group.${key}: has no inline rules (one resource per rule)`,
      !("ingress" in body) && !("egress" in body));
    check(`aws_security_group.${key}: has a description`, validDescription(body.description),
      JSON.stringify(body.description));
    check(`aws_security_group.${key}: is in var.vpc_id`, body.vpc_id === "${var.vpc_id}");
  }
  const agents = sgByName["sgprobe-agents"];
  const collector = sgByName["sgprobe-collector"];
  check("a group named sgprobe-agents (with the default prefix)", agents, JSON.stringify(Object.keys(sgByName)));
  check("a group named sgprobe-collector (with the default prefix)", collector, JSON.stringify(Object.keys(sgByName)));
  const endpointSg = Object.keys(sgs).find((k) => k !== agents && k !== collector && /monitoring/.test(k));
  check("a group for the monitoring endpoint", endpointSg);

  const rules = [];
  for (const [kind, type] of [["ingress", "aws_vpc_security_group_ingress_rule"], ["egress", "aws_vpc_security_group_egress_rule"]]) {
    for (const [key, body] of Object.entries(res(type))) rules.push({ kind, key: `${type}.${key}`, body });
  }
  for (const [key, body] of Object.entries(res("aws_security_group_rule"))) {
    rules.push({ kind: body.type, key: `aws_security_group_rule.${key}`, body: Object.assign({}, body, {
      ip_protocol: body.protocol, referenced_security_group_id: body.source_security_group_id,
      cidr_ipv4: (body.cidr_blocks || [])[0] }) });
  }
  check("security-group rules exist", rules.length > 0);
  for (const { kind, key, body } of rules) {
    check(`${key}: has a description saying why it exists`, validDescription(body.description) &&
      body.description.length >= 30, JSON.stringify(body.description));
    check(`${key}: TCP`, body.ip_protocol === "tcp", JSON.stringify(body.ip_protocol));
    check(`${key}: one port, not a range`, body.from_port !== undefined && body.from_port === body.to_port,
      `${body.from_port}-${body.to_port}`);
    const peers = ["referenced_security_group_id", "prefix_list_id", "cidr_ipv4", "cidr_ipv6"].filter((p) => p in body);
    check(`${key}: exactly one peer`, peers.length === 1, JSON.stringify(peers));
    check(`${key}: never 0.0.0.0/0 or ::/0`, body.cidr_ipv4 !== "0.0.0.0/0" && body.cidr_ipv6 !== "::/0");
    check(`${key}: the peer is a group or a prefix list, not addresses`,
      "referenced_security_group_id" in body || "prefix_list_id" in body);
    check(`${key}: ${kind} rule on a group`, body.security_group_id, "no security_group_id");
  }
  const on = (body, key) => isRef(throughLocals(body.security_group_id), `aws_security_group.${key}`);
  const to = (body, key) => isRef(throughLocals(body.referenced_security_group_id), `aws_security_group.${key}`);
  if (agents && collector) {
    check("sgprobe-agents has no ingress rule (nothing connects to an agent)",
      !rules.some((r) => r.kind === "ingress" && r.body.security_group_id === `\${aws_security_group.${agents}.id}`));
    const agentEgress = rules.filter((r) => r.kind === "egress" && on(r.body, agents));
    const toCollector = agentEgress.filter((r) => to(r.body, collector) && r.body.from_port === "${var.collector_port}");
    check("sgprobe-agents: one egress rule, to sgprobe-collector on var.collector_port", toCollector.length === 1,
      JSON.stringify(agentEgress.map((r) => r.key)));
    check("sgprobe-agents: every other egress goes to the collectors' load balancer only",
      agentEgress.every((r) => toCollector.includes(r) || /load_balancer/.test(throughLocals(r.body.referenced_security_group_id))),
      JSON.stringify(agentEgress.map((r) => r.key)));
    const collectorIn = rules.filter((r) => r.kind === "ingress" && on(r.body, collector) && to(r.body, agents));
    check("sgprobe-collector: admits sgprobe-agents on var.collector_port", collectorIn.length === 1 &&
      collectorIn[0].body.from_port === "${var.collector_port}");
    check("sgprobe-agents -> sgprobe-collector and its ingress exist under the same condition",
      toCollector.length === 1 && collectorIn.length === 1 && toCollector[0].body.count === collectorIn[0].body.count);
    if (endpointSg) {
      const cwOut = rules.filter((r) => r.kind === "egress" && on(r.body, collector) && to(r.body, endpointSg));
      check("sgprobe-collector: egress 443 to the monitoring endpoint's group", cwOut.length === 1 &&
        cwOut[0].body.from_port === 443 && !("count" in cwOut[0].body));
      const epIn = rules.filter((r) => r.kind === "ingress" && on(r.body, endpointSg) && to(r.body, collector));
      check("the monitoring endpoint's group admits sgprobe-collector on 443", epIn.length === 1 &&
        epIn[0].body.from_port === 443 && !("count" in epIn[0].body));
      check("the monitoring endpoint's group has no egress rule (an endpoint never connects out)",
        !rules.some((r) => r.kind === "egress" && on(r.body, endpointSg)));
    }
    check("sgprobe-collector: every egress is on 443 (AWS APIs) or to the collector port",
      rules.filter((r) => r.kind === "egress" && on(r.body, collector)).every((r) => r.body.from_port === 443));
  }

  // --- the monitoring endpoint ---
  const eps = Object.entries(res("aws_vpc_endpoint"));
  const mon = eps.find(([, b]) => b.service_name === "com.amazonaws.${var.region}.monitoring");
  check("aws_vpc_endpoint for com.amazonaws.${var.region}.monitoring", mon, JSON.stringify(eps.map(([, b]) => b.service_name)));
  if (mon) {
    const b = mon[1];
    check("the monitoring endpoint is an Interface endpoint", b.vpc_endpoint_type === "Interface");
    check("the monitoring endpoint has private DNS (monitoring.<region>.amazonaws.com resolves to it)", b.private_dns_enabled === true);
    check("the monitoring endpoint is in its own group", endpointSg && isRef(JSON.stringify(b.security_group_ids), `aws_security_group.${endpointSg}`));
    check("the monitoring endpoint is in var.vpc_id", b.vpc_id === "${var.vpc_id}");
  }

  // --- alarms ---
  const publisher = fs.readFileSync(path.join(root, "collector/publisher.c"), "utf8");
  const published = (name) => publisher.includes(`"${name}"`);
  const alarms = res("aws_cloudwatch_metric_alarm");
  const topics = Object.keys(res("aws_sns_topic"));
  check("an SNS topic for the alarms", topics.length > 0);
  for (const [key, a] of Object.entries(alarms)) {
    const w = `aws_cloudwatch_metric_alarm.${key}`;
    check(`${w}: treat_missing_data is set`, ["breaching", "notBreaching", "ignore", "missing"].includes(a.treat_missing_data),
      JSON.stringify(a.treat_missing_data));
    check(`${w}: alarm_actions and ok_actions go to an SNS topic`,
      ["alarm_actions", "ok_actions"].every((k) => Array.isArray(a[k]) && a[k].length === 1 &&
        topics.some((t) => a[k][0] === `\${aws_sns_topic.${t}.arn}`)), JSON.stringify([a.alarm_actions, a.ok_actions]));
    check(`${w}: has a description for the on-call`, typeof a.alarm_description === "string" && a.alarm_description.length > 40);
    check(`${w}: datapoints_to_alarm equals evaluation_periods`, a.datapoints_to_alarm === a.evaluation_periods);
    const metrics = a.metric_name ? [a] : (a.metric_query || []).flatMap((q) => q.metric || []);
    for (const mt of metrics) {
      check(`${w}: period is one flush (var.flush_interval_s)`, mt.period === "${var.flush_interval_s}", JSON.stringify(mt.period));
      if (mt.namespace === "${var.namespace}" && !/each\./.test(mt.metric_name)) {
        check(`${w}: ${mt.metric_name} is a metric the collector publishes`, published(mt.metric_name));
      }
      for (const d of Object.keys(mt.dimensions || {})) {
        if (mt.namespace === "${var.namespace}") check(`${w}: dimension ${d} is one the collector publishes`, published(d));
      }
    }
  }
  // treat_missing_data explained by a comment just above it, in every file.
  for (const [f, text] of Object.entries(texts)) {
    const lines = text.split("\n");
    lines.forEach((line, i) => {
      if (!/^\s*treat_missing_data\s*=/.test(line)) return;
      let j = i - 1;
      while (j >= 0 && lines[j].trim() === "") j--;
      check(`${f}:${i + 1}: treat_missing_data is explained by a comment above it`,
        j >= 0 && /^\s*(#|\/\/)/.test(lines[j]), lines[j]);
    });
  }
  const byMetric = (name) => Object.entries(alarms).filter(([, a]) => a.metric_name === name &&
    a.namespace === "${var.namespace}" && JSON.stringify(Object.keys(a.dimensions || {})) === '["Cluster"]');
  const want = [
    ["UnexpectedOpenPaths", "GreaterThanThreshold", 0, 1, "notBreaching"],
    ["BlockedPaths", "GreaterThanThreshold", 0, 3, "notBreaching"],
    ["StaleAgents", "GreaterThanThreshold", 0, 3, "notBreaching"],
    ["ReportingAgents", "LessThanThreshold", 1, 3, "breaching"],
  ];
  for (const [metric, op, threshold, periods, missing] of want) {
    const found = byMetric(metric);
    if (!check(`an alarm on ${metric} [Cluster] in var.namespace`, found.length === 1, `${found.length} found`)) continue;
    const [key, a] = found[0];
    check(`${metric}: ${op} ${threshold}`, a.comparison_operator === op && a.threshold === threshold,
      `${a.comparison_operator} ${a.threshold}`);
    check(`${metric}: evaluation_periods ${periods}`, a.evaluation_periods === periods, JSON.stringify(a.evaluation_periods));
    check(`${metric}: treat_missing_data ${missing}`, a.treat_missing_data === missing, a.treat_missing_data);
    check(`${metric}: Cluster is the cluster's name`, a.dimensions.Cluster === "${local.cluster_name}", a.dimensions.Cluster);
    check(`${metric}: alarms on the Sum of the period (two collectors add up)`, a.statistic === "Sum", a.statistic);
    check(`${metric}: pages (the page topic)`, /aws_sns_topic\.page\./.test(a.alarm_actions[0]), a.alarm_actions[0]);
    void key;
  }
  // The warn-level cell counts.
  const warn = Object.entries(alarms).find(([, a]) => a.metric_name === "${each.key}" && a.for_each);
  const warnKeys = warn ? Object.keys(m.locals[(warn[1].for_each.match(/local\.(\w+)/) || [])[1]] || {}) : [];
  check("warn alarms on NoListenerPaths, TlsFailedPaths, InconclusivePaths", ["NoListenerPaths", "TlsFailedPaths", "InconclusivePaths"]
    .every((x) => warnKeys.includes(x)) && warnKeys.every(published), JSON.stringify(warnKeys));
  if (warn) {
    const a = warn[1];
    check("warn alarms: > 0 for 3 periods, notBreaching, to the warn topic", a.comparison_operator === "GreaterThanThreshold" &&
      a.threshold === 0 && a.evaluation_periods === 3 && a.treat_missing_data === "notBreaching" && /aws_sns_topic\.warn\./.test(a.alarm_actions[0]));
  }
  // The per-role metric-math alarm.
  const math = Object.entries(alarms).find(([, a]) => a.metric_query);
  if (check("a metric-math alarm (RunningTaskCount - ReportingAgents)", math)) {
    const [key, a] = math;
    const w = `aws_cloudwatch_metric_alarm.${key}`;
    check(`${w}: one per agent role (for_each = var.agent_roles)`, a.for_each === "${var.agent_roles}", a.for_each);
    const qs = a.metric_query;
    const expr = qs.filter((q) => q.expression);
    const running = qs.find((q) => q.metric && q.metric[0].metric_name === "RunningTaskCount");
    const reporting = qs.find((q) => q.metric && q.metric[0].metric_name === "ReportingAgents");
    check(`${w}: RunningTaskCount of ECS/ContainerInsights by ClusterName and ServiceName = each.value`, running &&
      running.metric[0].namespace === "ECS/ContainerInsights" &&
      running.metric[0].dimensions.ClusterName === "${local.cluster_name}" &&
      running.metric[0].dimensions.ServiceName === "${each.value}" &&
      Object.keys(running.metric[0].dimensions).length === 2, JSON.stringify(running));
    check(`${w}: ReportingAgents summed over the collectors`, reporting && reporting.metric[0].stat === "Sum");
    check(`${w}: ReportingAgents of var.namespace by Cluster and SourceRole = each.key`, reporting &&
      reporting.metric[0].namespace === "${var.namespace}" &&
      reporting.metric[0].dimensions.Cluster === "${local.cluster_name}" &&
      reporting.metric[0].dimensions.SourceRole === "${each.key}" &&
      Object.keys(reporting.metric[0].dimensions).length === 2, JSON.stringify(reporting));
    check(`${w}: one expression, running minus reporting, the only data returned`, expr.length === 1 && running && reporting &&
      new RegExp(`^\\s*${running.id}\\s*-\\s*${reporting.id}\\s*$`).test(expr[0].expression) &&
      expr[0].return_data === true && qs.filter((q) => q.return_data === true).length === 1,
      JSON.stringify(expr));
    check(`${w}: > 0`, a.comparison_operator === "GreaterThanThreshold" && a.threshold === 0);
    check(`${w}: no metric_name of its own (math alarms take metric_query only)`, !a.metric_name && !a.namespace);
  }

  // --- IAM ---
  const tds = Object.entries(res("aws_ecs_task_definition"));
  check("one ECS task definition", tds.length === 1);
  const td = tds.length ? tds[0][1] : {};
  const roleOf = (expr) => ((expr || "").match(/^\$\{aws_iam_role\.([\w-]+)\.arn\}$/) || [])[1];
  const taskRole = roleOf(td.task_role_arn);
  const execRole = roleOf(td.execution_role_arn);
  check("the task definition's task role is a role of the module", taskRole && res("aws_iam_role")[taskRole], td.task_role_arn);
  check("the task definition's execution role is another role of the module", execRole && execRole !== taskRole &&
    res("aws_iam_role")[execRole], td.execution_role_arn);
  const policiesOf = (role) => Object.entries(res("aws_iam_role_policy")).filter(([, p]) =>
    new RegExp(`^\\$\\{aws_iam_role\\.${role}\\.(id|name)\\}$`).test(p.role));
  const attachmentsOf = (role) => Object.entries(res("aws_iam_role_policy_attachment")).filter(([, p]) =>
    isRef(p.role, `aws_iam_role.${role}`));
  const docOf = (p) => {
    const name = ((p.policy || "").match(/^\$\{data\.aws_iam_policy_document\.([\w-]+)\.json\}$/) || [])[1];
    return name && (m.data.aws_iam_policy_document || {})[name];
  };
  for (const role of [taskRole, execRole].filter(Boolean)) {
    const trust = ((res("aws_iam_role")[role].assume_role_policy || "").match(/aws_iam_policy_document\.([\w-]+)\./) || [])[1];
    const doc = trust && m.data.aws_iam_policy_document[trust];
    check(`aws_iam_role.${role}: assumed by ecs-tasks.amazonaws.com only`, doc && doc.statement.length === 1 && !doc.dynamic &&
      JSON.stringify(doc.statement[0].actions) === '["sts:AssumeRole"]' &&
      JSON.stringify(doc.statement[0].principals) === '[{"identifiers":["ecs-tasks.amazonaws.com"],"type":"Service"}]');
  }
  if (taskRole) {
    const pols = policiesOf(taskRole);
    check(`the task role (${taskRole}) has exactly one inline policy and no attached one`,
      pols.length === 1 && attachmentsOf(taskRole).length === 0, JSON.stringify(pols.map(([k]) => k)));
    const doc = pols.length === 1 ? docOf(pols[0][1]) : null;
    if (check("the task role's policy is an aws_iam_policy_document", doc)) {
      const st = doc.statement || [];
      check("the task role's policy has one statement and no dynamic one", st.length === 1 && !doc.dynamic);
      const s = st[0] || {};
      check("the task role may do exactly cloudwatch:PutMetricData", JSON.stringify(s.actions) === '["cloudwatch:PutMetricData"]' &&
        !s.not_actions && (s.effect || "Allow") === "Allow", JSON.stringify(s.actions));
      check("on \"*\" (PutMetricData has no resource-level permissions)", JSON.stringify(s.resources) === '["*"]');
      check("under StringEquals cloudwatch:namespace = var.namespace", JSON.stringify(s.condition) ===
        JSON.stringify([{ test: "StringEquals", values: ["${var.namespace}"], variable: "cloudwatch:namespace" }]),
        JSON.stringify(s.condition));
    }
  }
  if (execRole) {
    const pols = policiesOf(execRole);
    const doc = pols.length === 1 ? docOf(pols[0][1]) : null;
    if (check(`the execution role (${execRole}) has one policy document`, doc && attachmentsOf(execRole).length === 0)) {
      const st = (doc.statement || []).concat(Object.values(doc.dynamic || {}).flat().flatMap((d) => d.content || []));
      const allows = (action, resource) => st.some((s) => (s.actions || []).includes(action) &&
        JSON.stringify(s.resources).includes(resource));
      check("the execution role reads the keys secret", allows("secretsmanager:GetSecretValue", "var.keys_secret_arn"));
      check("the execution role pulls from the given repositories", allows("ecr:BatchGetImage", "var.image_repository_arns") &&
        allows("ecr:GetDownloadUrlForLayer", "var.image_repository_arns") && allows("ecr:GetAuthorizationToken", "*"));
      check("the execution role writes the collector's log group", allows("logs:PutLogEvents", "aws_cloudwatch_log_group.") &&
        allows("logs:CreateLogStream", "aws_cloudwatch_log_group."));
      check("the execution role has no wildcard action", st.every((s) => (s.actions || []).every((x) => !x.includes("*"))));
    }
  }

  // --- ECS ---
  check("the task definition: FARGATE, awsvpc", JSON.stringify(td.requires_compatibilities) === '["FARGATE"]' &&
    td.network_mode === "awsvpc");
  check("the task definition: task-level cpu and memory from variables", /var\.cpu/.test(td.cpu || "") && /var\.memory/.test(td.memory || ""));
  check("the task definition checks the Fargate size", JSON.stringify(td.lifecycle || "").includes("fargate_sizes"));
  const cdLocal = ((td.container_definitions || "").match(/^\$\{jsonencode\(local\.([\w-]+)\)\}$/) || [])[1];
  const cds = cdLocal ? m.locals[cdLocal] : null;
  if (check("container_definitions is jsonencode of a local list", Array.isArray(cds), td.container_definitions)) {
    const coll = cds.find((c) => c.name === "sgprobe-collector");
    check("the collector container's health check is `sgprobe-collector health --admin-listen 127.0.0.1:<admin port>`",
      coll && JSON.stringify(coll.healthCheck.command) === JSON.stringify(["CMD", "sgprobe-collector", "health", "--admin-listen", "127.0.0.1:${var.admin_port}"]),
      coll && JSON.stringify(coll.healthCheck.command));
    check("the collector container stops within 30 s (its last flush takes up to 5)", coll && coll.stopTimeout >= 10 && coll.stopTimeout <= 120);
    check("the collector container is unprivileged with a read-only root", coll && coll.user === "10001:10001" && coll.readonlyRootFilesystem === true);
    const cfg = cds.find((c) => c.name !== "sgprobe-collector");
    if (check("a config container writes the collector's files first", cfg && coll &&
      JSON.stringify(coll.dependsOn) === JSON.stringify([{ condition: "SUCCESS", containerName: cfg.name }]))) {
      const dropRef = ((JSON.stringify(cfg.linuxParameters || {}).match(/local\.([\w-]+)/) || [])[1]);
      const dropped = new Set(dropRef ? m.locals[dropRef] || [] : (((cfg.linuxParameters || {}).capabilities || {}).drop || []));
      const defaults = ["AUDIT_WRITE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE", "NET_RAW",
        "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"];
      check("the config container: root only with CHOWN and DAC_OVERRIDE, not essential",
        cfg.essential === false && (cfg.user !== "0" || defaults.every((c) => dropped.has(c))), JSON.stringify([...dropped]));
      const script = JSON.stringify(m.locals.config_script || "");
      check("the config container writes the matrix and the keys the collector reads, for uid 10001",
        /matrix\.json/.test(script) && /keys\.json/.test(script) && /chown 10001:10001/.test(script) &&
        /\$MATRIX_JSON/.test(script) && /\$KEYS_JSON/.test(script));
      check("the config container's image is var.config_image (the sgprobe images have no shell)",
        cfg.image === "${var.config_image}", cfg.image);
    }
    check("the volumes the containers mount are the task's", cds.every((c) => (c.mountPoints || []).every((mp) =>
      [].concat(td.volume || []).some((v) => v.name === mp.sourceVolume))));
  }
  const agentVars = new Set();
  for (const f of fs.readdirSync(path.join(root, "agent")).filter((x) => x.endsWith(".c"))) {
    for (const x of fs.readFileSync(path.join(root, "agent", f), "utf8").matchAll(/"(SGPROBE_[A-Z0-9_]+)"/g)) agentVars.add(x[1]);
  }
  const collectorVars = new Set([...fs.readFileSync(path.join(root, "collector/main.c"), "utf8").matchAll(/"(SGPROBE_[A-Z0-9_]+)"/g)].map((x) => x[1]));
  const tfVars = new Set([...(m.locals.collector_environment || "").matchAll(/"(SGPROBE_[A-Z0-9_]+)"/g)].map((x) => x[1]));
  check("the collector's environment is in local.collector_environment", tfVars.size > 0);
  for (const v of tfVars) check(`${v} is a variable sgprobe-collector reads`, collectorVars.has(v));
  for (const x of new Set([...allText.matchAll(/\bSGPROBE_[A-Z0-9_]+/g)].map((y) => y[0]))) {
    check(`${x}, named in the module, is a variable of the binaries`, collectorVars.has(x) || agentVars.has(x));
  }
  const ecsJson = path.join(root, "container/ecs/collector-task-definition.json");
  if (fs.existsSync(ecsJson)) {
    const j = JSON.parse(fs.readFileSync(ecsJson, "utf8"));
    const c = j.containerDefinitions.find((x) => x.name === "sgprobe-collector") || {};
    const names = (c.environment || []).map((e) => e.name);
    check("the module sets every variable container/ecs/collector-task-definition.json sets",
      names.every((n) => tfVars.has(n)), JSON.stringify(names.filter((n) => !tfVars.has(n))));
  }
  const sidecar = path.join(root, "container/ecs/agent-sidecar.json");
  const agentLog = res("aws_cloudwatch_log_group").agent;
  if (fs.existsSync(sidecar) && agentLog) {
    const s = JSON.parse(fs.readFileSync(sidecar, "utf8"));
    check("the sidecars' log group is the fragment's awslogs-group (default prefix)",
      evaluate(agentLog.name) === s.logConfiguration.options["awslogs-group"], `${evaluate(agentLog.name)}`);
  }
  const svcs = Object.entries(res("aws_ecs_service"));
  check("one ECS service", svcs.length === 1);
  if (svcs.length) {
    const s = svcs[0][1];
    const nc = (s.network_configuration || [])[0] || {};
    check("the service: FARGATE", s.launch_type === "FARGATE");
    check("the service runs the task definition", /aws_ecs_task_definition\.[\w-]+\.arn/.test(s.task_definition || ""));
    check("the service runs in var.cluster_arn", s.cluster === "${var.cluster_arn}");
    check("the service: desired_count from var.desired_count", s.desired_count === "${var.desired_count}");
    check("the service: in sgprobe-collector only, no public IP", collector &&
      JSON.stringify(nc.security_groups) === JSON.stringify([`\${aws_security_group.${collector}.id}`]) &&
      nc.assign_public_ip === false && nc.subnets === "${var.subnet_ids}", JSON.stringify(nc));
    check("the service: more than one collector only behind a load balancer (a precondition)",
      /desired_count\s*==\s*1\s*\|\|\s*var\.load_balancer\s*!=\s*null/.test(JSON.stringify(s.lifecycle || "")));
    check("the service: rolls back a failed deployment", JSON.stringify(s.deployment_circuit_breaker) ===
      '[{"enable":true,"rollback":true}]');
    check("the service: no ECS Exec", s.enable_execute_command === false);
  }

  report();
}

function report() {
  for (const [ok, name, why] of results) {
    const w = String(why).replace(/[\t\n]/g, " ").slice(0, 400);
    console.log(ok ? `ok\t${name}` : `not ok\t${name}\t${w}`);
  }
  process.exitCode = results.some((r) => !r[0]) ? 1 : 0;
}

// AWS's characters for group and rule descriptions, at most 255 of them.
function validDescription(d) {
  return typeof d === "string" && d.length > 0 && d.length <= 255 && /^[a-zA-Z0-9 ._\-:/()#,@[\]+=&;{}!$*]+$/.test(d);
}

// A module of an unexpected shape must fail a check, not end the run unreported.
main().catch((e) => {
  check("check_terraform.js ran to the end", false, String(e.stack || e).replace(/\s+/g, " "));
  report();
});
