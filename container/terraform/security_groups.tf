# sgprobe's own two groups, in the style of the AFIRGen design: each rule says why
# it exists, and nothing is open that sgprobe does not use. Terraform removes the
# allow-all egress rule AWS puts in every new group, so each group below has only
# the rules written here (no inline rules: one resource per rule, each described).
#
# The matrix must agree with these rules: every agent role is allowed to the
# collector role on the collector's port (examples/afirgen.matrix.json has
# "sgprobe-collector"), so that the agents check their own path too.

# --- sgprobe-agents --------------------------------------------------------------------

# Attached to every task that runs the sidecar, beside the task's own groups (a task
# in awsvpc mode takes up to five). Groups are a union: this one adds exactly one
# path to the task, towards the collector, and admits nothing, so the task's own
# groups still decide everything the sidecar probes.
resource "aws_security_group" "agents" {
  name        = "${var.name_prefix}-agents"
  description = "sgprobe agents (sidecars): report to the sgprobe collector"
  vpc_id      = var.vpc_id
  tags        = merge(local.tags, { Name = "${var.name_prefix}-agents" })
}

# No ingress rule on sgprobe-agents: nothing ever connects to an agent (it pulls
# its plan and pushes its reports).

resource "aws_vpc_security_group_egress_rule" "agents_to_collector" {
  count = var.load_balancer == null ? 1 : 0

  security_group_id            = aws_security_group.agents.id
  description                  = "Reports and plans to the sgprobe collector: the only connection a sidecar opens besides its probes"
  ip_protocol                  = "tcp"
  from_port                    = var.collector_port
  to_port                      = var.collector_port
  referenced_security_group_id = aws_security_group.collector.id
  tags                         = local.tags
}

# --- sgprobe-collector -----------------------------------------------------------------

resource "aws_security_group" "collector" {
  name        = "${var.name_prefix}-collector"
  description = "sgprobe collector: reports from agents, CloudWatch through the VPC endpoints"
  vpc_id      = var.vpc_id
  tags        = merge(local.tags, { Name = "${var.name_prefix}-collector" })
}

resource "aws_vpc_security_group_ingress_rule" "collector_from_agents" {
  count = var.load_balancer == null ? 1 : 0

  security_group_id            = aws_security_group.collector.id
  description                  = "Reports and plans from sgprobe agents: the groups, not addresses, because agent tasks come and go"
  ip_protocol                  = "tcp"
  from_port                    = var.collector_port
  to_port                      = var.collector_port
  referenced_security_group_id = aws_security_group.agents.id
  tags                         = local.tags
}

resource "aws_vpc_security_group_egress_rule" "collector_to_monitoring_endpoint" {
  security_group_id            = aws_security_group.collector.id
  description                  = "CloudWatch PutMetricData through the monitoring interface endpoint (HTTPS): the alarms read what the collector publishes"
  ip_protocol                  = "tcp"
  from_port                    = 443
  to_port                      = 443
  referenced_security_group_id = local.monitoring_endpoint_security_group_id
  tags                         = local.tags
}

# Fargate (platform 1.4.0 and later) pulls the image, reads the secrets of the task
# definition and ships the logs through the task's own ENI, so the collector's
# group must reach those services too. Without a NAT they are VPC endpoints. When
# the monitoring endpoint shares their group (AFIRGen's vpc-endpoints group), the
# monitoring rules already admit the collector there: a second pair would be a
# duplicate, which AWS refuses.
locals {
  service_endpoint_rules = var.endpoints_security_group_id != null && var.endpoints_security_group_id != var.existing_monitoring_endpoint_security_group_id ? 1 : 0
}

resource "aws_vpc_security_group_egress_rule" "collector_to_service_endpoints" {
  count = local.service_endpoint_rules

  security_group_id            = aws_security_group.collector.id
  description                  = "ECR image pull, the keys secret (Secrets Manager) and log delivery (CloudWatch Logs) through the VPC interface endpoints: Fargate uses the task ENI"
  ip_protocol                  = "tcp"
  from_port                    = 443
  to_port                      = 443
  referenced_security_group_id = var.endpoints_security_group_id
  tags                         = local.tags
}

resource "aws_vpc_security_group_ingress_rule" "service_endpoints_from_collector" {
  count = local.service_endpoint_rules

  security_group_id            = var.endpoints_security_group_id
  description                  = "HTTPS from the sgprobe collector: its image pull, keys secret and logs (Fargate task ENI)"
  ip_protocol                  = "tcp"
  from_port                    = 443
  to_port                      = 443
  referenced_security_group_id = aws_security_group.collector.id
  tags                         = local.tags
}

resource "aws_vpc_security_group_egress_rule" "collector_to_s3" {
  count = var.s3_prefix_list_id == null ? 0 : 1

  security_group_id = aws_security_group.collector.id
  description       = "Image layers from S3 through the gateway endpoint (ECR stores layers in S3)"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  prefix_list_id    = var.s3_prefix_list_id
  tags              = local.tags
}

# The admin listener (dashboard, matrix view, Prometheus) shows where the holes are:
# it stays on loopback unless groups are named here, one rule each.
resource "aws_vpc_security_group_ingress_rule" "collector_admin" {
  count = length(var.admin_client_security_group_ids)

  security_group_id            = aws_security_group.collector.id
  description                  = "sgprobe admin listener (dashboard, matrix, metrics) for an ops client: a deliberate exposure, listed in admin_client_security_group_ids"
  ip_protocol                  = "tcp"
  from_port                    = var.admin_port
  to_port                      = var.admin_port
  referenced_security_group_id = var.admin_client_security_group_ids[count.index]
  tags                         = local.tags
}

# --- two collectors behind a sticky internal ALB (load_balancer set) ---------------------
# The agents then connect to the ALB, and only the ALB to the collectors.

resource "aws_vpc_security_group_egress_rule" "agents_to_load_balancer" {
  count = var.load_balancer == null ? 0 : 1

  security_group_id            = aws_security_group.agents.id
  description                  = "Reports and plans to the sgprobe collectors ALB, which keeps each agent on one collector (stickiness)"
  ip_protocol                  = "tcp"
  from_port                    = local.agents_target_port
  to_port                      = local.agents_target_port
  referenced_security_group_id = local.agents_target_security_group_id
  tags                         = local.tags
}

resource "aws_vpc_security_group_ingress_rule" "load_balancer_from_agents" {
  count = var.load_balancer == null ? 0 : 1

  security_group_id            = var.load_balancer.security_group_id
  description                  = "Reports and plans from sgprobe agents, for the collectors behind this ALB"
  ip_protocol                  = "tcp"
  from_port                    = var.load_balancer.listener_port
  to_port                      = var.load_balancer.listener_port
  referenced_security_group_id = aws_security_group.agents.id
  tags                         = local.tags
}

resource "aws_vpc_security_group_egress_rule" "load_balancer_to_collector" {
  count = var.load_balancer == null ? 0 : 1

  security_group_id            = var.load_balancer.security_group_id
  description                  = "Forwarded reports and plans, and target health checks, to the sgprobe collectors"
  ip_protocol                  = "tcp"
  from_port                    = var.collector_port
  to_port                      = var.collector_port
  referenced_security_group_id = aws_security_group.collector.id
  tags                         = local.tags
}

resource "aws_vpc_security_group_ingress_rule" "collector_from_load_balancer" {
  count = var.load_balancer == null ? 0 : 1

  security_group_id            = aws_security_group.collector.id
  description                  = "Reports and plans from sgprobe agents through the collectors ALB, and its health checks"
  ip_protocol                  = "tcp"
  from_port                    = var.collector_port
  to_port                      = var.collector_port
  referenced_security_group_id = var.load_balancer.security_group_id
  tags                         = local.tags
}
