#!/bin/bash
# The Terraform module in container/terraform/: check_terraform.js's checks as TAP
# (every file parsed by @cdktf/hcl2json; references, groups and their rules, the
# monitoring endpoint, the alarms, IAM, ECS), the same checker on broken copies,
# each of which it must reject, and, when terraform and the AWS provider are
# already on the machine (nothing is downloaded), `terraform fmt`, `validate` and
# `test` (container/terraform/tests, a mocked provider).
. "$(dirname "$0")/../lib.sh"
set -u

checker="$top/tests/integration/check_terraform.js"
work=$(mktemp -d /tmp/sgprobe-terraform.XXXXXX)
trap 'rm -rf "$work"' EXIT INT TERM

if ! command -v node >/dev/null 2>&1 ||
	[ ! -f "$top/tests/node/node_modules/@cdktf/hcl2json/package.json" ]; then
	not_ok "node and @cdktf/hcl2json are installed" "run: sh scripts/deps.sh"
	done_testing
	exit
fi

# tap_from FILE: the checker's lines as TAP.
tap_from() {
	while IFS=$'\t' read -r status name why; do
		case $status in
		ok) ok "$name" ;;
		*) not_ok "$name" "$why" ;;
		esac
	done <"$1"
}

node "$checker" --root "$top" >"$work/out" 2>"$work/err"
rc=$?
tap_from "$work/out"
eq "check_terraform.js exits 0 on the module" "$rc" 0
[ -s "$work/err" ] && sed 's/^/# /' "$work/err"

# A copy of what the checker reads, to break one thing at a time.
copy="$work/root"
mkdir -p "$copy/container" "$copy/agent" "$copy/collector"
cp -r "$top/container/terraform" "$top/container/ecs" "$copy/container/"
cp "$top"/agent/*.c "$copy/agent/"
cp "$top"/collector/*.c "$copy/collector/"

# rejects WHAT FILE OLD NEW EXPECTED: with the first OLD replaced by NEW in FILE (in
# container/terraform), the checker must fail, on a check whose name holds EXPECTED.
rejects() {
	what=$1 file=$2 old=$3 new=$4 expected=$5
	f="$copy/container/terraform/$file"
	cp "$f" "$work/saved"
	if ! OLD=$old NEW=$new python3 - "$f" <<'EOF'; then
import os, sys
p = sys.argv[1]
s = open(p).read()
if os.environ["OLD"] not in s:
    sys.exit(1)
open(p, "w").write(s.replace(os.environ["OLD"], os.environ["NEW"], 1))
EOF
		not_ok "rejects $what" "the text to break is not in $file: $old"
		return
	fi
	node "$checker" --root "$copy" >"$work/bad" 2>&1
	brc=$?
	if [ "$brc" -eq 1 ] && grep '^not ok' "$work/bad" | grep -F -q -- "$expected"; then
		ok "rejects $what"
	else
		not_ok "rejects $what" "exit $brc; failures: $(grep '^not ok' "$work/bad" | cut -f2 | tr '\n' ';')"
	fi
	cp "$work/saved" "$f"
}

rejects "a file that does not parse" main.tf 'locals {' 'locals {{' "main.tf parses"
rejects "UnexpectedOpenPaths over two periods" alarms.tf \
	'evaluation_periods  = 1' 'evaluation_periods  = 2' "UnexpectedOpenPaths: evaluation_periods 1"
rejects "BlockedPaths over one period" alarms.tf \
	'evaluation_periods  = 3' 'evaluation_periods  = 1' "BlockedPaths: evaluation_periods 3"
rejects "a ReportingAgents alarm blind to silence" alarms.tf \
	'treat_missing_data = "breaching"' 'treat_missing_data = "notBreaching"' "ReportingAgents: treat_missing_data breaching"
rejects "a ReportingAgents alarm on > instead of <" alarms.tf \
	'comparison_operator = "LessThanThreshold"' 'comparison_operator = "LessThanOrEqualToThreshold"' "ReportingAgents: LessThanThreshold 1"
rejects "an alarm without treat_missing_data" alarms.tf \
	'  treat_missing_data = "notBreaching"
  alarm_actions      = [aws_sns_topic.page.arn]' '  alarm_actions      = [aws_sns_topic.page.arn]' "treat_missing_data is set"
rejects "a treat_missing_data with no comment" alarms.tf \
	'  # breaching: the collector publishes this series on every flush, zeros
  # included, so its absence is the silence this alarm is for.
' '' "is explained by a comment above it"
rejects "a metric the collector does not publish" alarms.tf \
	'metric_name         = "StaleAgents"' 'metric_name         = "StaleAgent"' "an alarm on StaleAgents"
rejects "a math alarm that subtracts nothing" alarms.tf \
	'expression  = "running - reporting"' 'expression  = "running"' "running minus reporting"
rejects "a math alarm on the wrong namespace" alarms.tf \
	'namespace   = "ECS/ContainerInsights"' 'namespace   = "AWS/ECS"' "RunningTaskCount of ECS/ContainerInsights"
rejects "alarms without ok_actions" alarms.tf \
	'  ok_actions         = [aws_sns_topic.page.arn]
  tags               = local.tags
}

resource "aws_cloudwatch_metric_alarm" "blocked_paths"' '  tags               = local.tags
}

resource "aws_cloudwatch_metric_alarm" "blocked_paths"' "alarm_actions and ok_actions go to an SNS topic"
rejects "a second action in the task role" iam.tf \
	'actions   = ["cloudwatch:PutMetricData"]' 'actions   = ["cloudwatch:PutMetricData", "cloudwatch:GetMetricData"]' "exactly cloudwatch:PutMetricData"
rejects "a task role without the namespace condition" iam.tf \
	'variable = "cloudwatch:namespace"' 'variable = "aws:RequestedRegion"' "cloudwatch:namespace = var.namespace"
rejects "a wildcard action in the execution role" iam.tf \
	'"ecr:BatchGetImage"]' '"ecr:*"]' "no wildcard action"
rejects "a rule without a description" security_groups.tf \
	'  description                  = "Reports and plans to the sgprobe collector: the only connection a sidecar opens besides its probes"
' '' "has a description saying why it exists"
rejects "a description AWS refuses (an apostrophe)" security_groups.tf \
	'the only connection a sidecar' "the sidecar's only connection" "has a description saying why it exists"
rejects "agents reaching anywhere" security_groups.tf \
	'  referenced_security_group_id = aws_security_group.collector.id
  tags                         = local.tags
}

# --- sgprobe-collector' '  cidr_ipv4 = "0.0.0.0/0"
  tags      = local.tags
}

# --- sgprobe-collector' "never 0.0.0.0/0"
rejects "an ingress rule on sgprobe-agents" security_groups.tf \
	'resource "aws_vpc_security_group_ingress_rule" "collector_from_agents" {
  count = var.load_balancer == null ? 1 : 0

  security_group_id            = aws_security_group.collector.id' 'resource "aws_vpc_security_group_ingress_rule" "collector_from_agents" {
  count = var.load_balancer == null ? 1 : 0

  security_group_id            = aws_security_group.agents.id' "sgprobe-agents has no ingress rule"
rejects "a port range" security_groups.tf \
	'  to_port                      = var.collector_port' '  to_port                      = 65535' "one port, not a range"
rejects "all protocols" security_groups.tf \
	'ip_protocol                  = "tcp"' 'ip_protocol                  = "-1"' "TCP"
rejects "an inline rule" security_groups.tf \
	'  vpc_id      = var.vpc_id
  tags        = merge(local.tags, { Name = "${var.name_prefix}-agents" })' '  vpc_id      = var.vpc_id
  egress {
    from_port = 0
    to_port   = 0
    protocol  = "-1"
  }
  tags        = merge(local.tags, { Name = "${var.name_prefix}-agents" })' "no inline rules"
rejects "another endpoint than monitoring" endpoint.tf \
	'.monitoring"' '.logs"' "monitoring"
rejects "an endpoint without private DNS" endpoint.tf \
	'private_dns_enabled = true' 'private_dns_enabled = false' "private DNS"
rejects "an undeclared variable" main.tf \
	'var.cluster_arn)[0]' 'var.cluster_arm)[0]' "var.cluster_arm is declared"
rejects "an unused variable" variables.tf \
	'variable "tags" {' 'variable "unused" {
  description = "A variable nothing reads."
  type        = string
  default     = ""
}

variable "tags" {' "variable unused is used"
rejects "a variable without a description" variables.tf \
	'  description = "Tags for every resource that takes them."
' '' "variable tags has a description"
rejects "a reference to a resource that does not exist" security_groups.tf \
	'referenced_security_group_id = aws_security_group.agents.id' 'referenced_security_group_id = aws_security_group.agent.id' \
	"aws_security_group.agent is a declared resource"
rejects "an output referencing nothing that exists" outputs.tf \
	'value       = aws_ecs_service.collector.name' 'value       = aws_ecs_service.collectors.name' "output service_name references what exists"
rejects "a collector variable the binary does not read" service.tf \
	'{ name = "SGPROBE_METRICS_SINK", value = "cloudwatch" },' '{ name = "SGPROBE_SINK", value = "cloudwatch" },' \
	"SGPROBE_SINK is a variable sgprobe-collector reads"
rejects "a health check that is not the collector's health subcommand" service.tf \
	'command     = ["CMD", "sgprobe-collector", "health",' 'command     = ["CMD", "sgprobe-collector", "healthz",' \
	"health check is \`sgprobe-collector health"
rejects "a collector with a public IP" service.tf \
	'assign_public_ip = false' 'assign_public_ip = true' "no public IP"
rejects "two collectors without the load-balancer guard" service.tf \
	'condition     = var.desired_count == 1 || var.load_balancer != null' 'condition     = var.desired_count >= 1' \
	"only behind a load balancer"

# terraform itself, only when it is already installed with the AWS provider.
tf=$(command -v terraform || true)
mirror=""
for d in ${TF_PLUGIN_MIRROR:-} /opt/tf-plugins "$HOME/.terraform.d/plugins" /usr/share/terraform/plugins \
	/usr/local/share/terraform/plugins; do
	if [ -d "$d/registry.terraform.io/hashicorp/aws" ]; then
		mirror=$d
		break
	fi
done
if [ -z "$tf" ] || [ -z "$mirror" ]; then
	for t in "terraform fmt" "terraform validate" "terraform test"; do
		ok "$t # SKIP no terraform with the AWS provider on this machine"
	done
else
	mod="$work/module"
	cp -r "$top/container/terraform" "$mod"
	# Providers from the local mirror only: init never goes to the network.
	cat >"$work/terraformrc" <<EOF
provider_installation {
  filesystem_mirror {
    path = "$mirror"
  }
}
EOF
	export TF_CLI_CONFIG_FILE="$work/terraformrc" TF_DATA_DIR="$work/tfdata" CHECKPOINT_DISABLE=1 \
		TF_IN_AUTOMATION=1
	check "terraform fmt: the module is in canonical format" \
		"$tf" -chdir="$mod" fmt -check -recursive -no-color
	if "$tf" -chdir="$mod" init -backend=false -input=false -no-color >"$work/init.log" 2>&1; then
		if "$tf" -chdir="$mod" validate -no-color >"$work/validate.log" 2>&1; then
			ok "terraform validate"
		else
			not_ok "terraform validate" "$(tr '\n' ' ' <"$work/validate.log" | cut -c1-400)"
		fi
		if "$tf" -chdir="$mod" test -no-color >"$work/test.log" 2>&1; then
			ok "terraform test: $(grep -E '^Success!' "$work/test.log")"
		else
			not_ok "terraform test" "$(grep -E 'fail|Error' "$work/test.log" | tr '\n' ' ' | cut -c1-600)"
		fi
	else
		not_ok "terraform init from the local provider mirror ($mirror)" "$(tail -5 "$work/init.log" | tr '\n' ' ')"
	fi
fi

done_testing
