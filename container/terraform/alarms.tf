# The alarms on what the collector publishes (docs/metrics.md), to two SNS topics:
# "page" wakes someone (a hole, a broken path, agents gone quiet), "warn" opens a
# ticket. Every alarm has the period of one flush and takes the Sum of the
# period's values: a collector sends one value per flush, so the Sum is that
# value, and with two collectors behind the ALB (each counting its own agents) it
# adds the two, where a Maximum would count half the agents of each role and
# fire the missing-sidecar alarms for ever. A period that gets a second value from
# the same collector (its last flush at a stop, a deployment's overlap) is
# overstated once; for these thresholds that can delay an alarm by a period, never
# raise a false one.
#
# Each treat_missing_data is chosen per alarm. Missing data means the collector
# published nothing: that is never evidence of a hole or a broken path, and it is
# exactly what the ReportingAgents alarm exists to catch, so that alarm alone
# treats it as breaching.

resource "aws_sns_topic" "page" {
  name              = "${var.name_prefix}-${local.cluster_name}-page"
  kms_master_key_id = var.sns_kms_key_id
  tags              = local.tags
}

resource "aws_sns_topic" "warn" {
  name              = "${var.name_prefix}-${local.cluster_name}-warn"
  kms_master_key_id = var.sns_kms_key_id
  tags              = local.tags
}

locals {
  alarm_prefix = "${var.name_prefix}-${local.cluster_name}"
  runbook      = "docs/deploy.md, section The alarms"

  # The warn-level cell counts: > 0 for three periods each.
  warn_metrics = {
    NoListenerPaths   = "an allowed path is open but nothing listens (RST): the service is down or on another port, not the network"
    TlsFailedPaths    = "an allowed TLS path connects but the handshake or certificate check fails (expired, wrong name, unknown CA)"
    InconclusivePaths = "agents hit local errors (DNS failures, no route, out of descriptors): those paths are not being checked"
  }
}

resource "aws_cloudwatch_metric_alarm" "unexpected_open_paths" {
  alarm_name          = "${local.alarm_prefix}-unexpected-open-paths"
  alarm_description   = "PAGE. ${local.cluster_name}: a path the matrix denies let a connection through (violation: open, reset or rejected by the destination). A security group admits more than the design. The per-cell metrics UnexpectedOpenPaths [Cluster, SourceRole, DestinationRole, Port] name the path. Runbook: ${local.runbook}."
  namespace           = var.namespace
  metric_name         = "UnexpectedOpenPaths"
  dimensions          = { Cluster = local.cluster_name }
  statistic           = "Sum"
  period              = var.flush_interval_s
  evaluation_periods  = 1
  datapoints_to_alarm = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  # notBreaching: missing data is no verdict, not a violation; the collector's
  # silence pages through the ReportingAgents alarm instead of twice.
  treat_missing_data = "notBreaching"
  alarm_actions      = [aws_sns_topic.page.arn]
  ok_actions         = [aws_sns_topic.page.arn]
  tags               = local.tags
}

resource "aws_cloudwatch_metric_alarm" "blocked_paths" {
  alarm_name          = "${local.alarm_prefix}-blocked-paths"
  alarm_description   = "PAGE. ${local.cluster_name}: an intended path has timed out or been refused by the network for three flushes (blocked): a group, a NACL or a route breaks the design. One lost round does not fire it. Runbook: ${local.runbook}."
  namespace           = var.namespace
  metric_name         = "BlockedPaths"
  dimensions          = { Cluster = local.cluster_name }
  statistic           = "Sum"
  period              = var.flush_interval_s
  evaluation_periods  = 3
  datapoints_to_alarm = 3
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  # notBreaching: no data is no evidence of a broken path; the ReportingAgents
  # alarm covers a silent collector.
  treat_missing_data = "notBreaching"
  alarm_actions      = [aws_sns_topic.page.arn]
  ok_actions         = [aws_sns_topic.page.arn]
  tags               = local.tags
}

resource "aws_cloudwatch_metric_alarm" "stale_agents" {
  alarm_name          = "${local.alarm_prefix}-stale-agents"
  alarm_description   = "PAGE. ${local.cluster_name}: agents have been silent for three of their periods for three flushes (stale): their paths are no longer checked. StaleAgents [Cluster, SourceRole] names the role. Runbook: ${local.runbook}."
  namespace           = var.namespace
  metric_name         = "StaleAgents"
  dimensions          = { Cluster = local.cluster_name }
  statistic           = "Sum"
  period              = var.flush_interval_s
  evaluation_periods  = 3
  datapoints_to_alarm = 3
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  # notBreaching: with no data there is no stale count to judge; the whole fleet
  # or the collector going quiet is the ReportingAgents alarm's.
  treat_missing_data = "notBreaching"
  alarm_actions      = [aws_sns_topic.page.arn]
  ok_actions         = [aws_sns_topic.page.arn]
  tags               = local.tags
}

resource "aws_cloudwatch_metric_alarm" "no_reporting_agents" {
  alarm_name          = "${local.alarm_prefix}-no-reporting-agents"
  alarm_description   = "PAGE. ${local.cluster_name}: no live agent for three flushes, or no data at all: the collector is down or cannot reach CloudWatch, or every sidecar of the cluster is gone. Until it clears, no other sgprobe alarm can fire. Runbook: ${local.runbook}."
  namespace           = var.namespace
  metric_name         = "ReportingAgents"
  dimensions          = { Cluster = local.cluster_name }
  statistic           = "Sum"
  period              = var.flush_interval_s
  evaluation_periods  = 3
  datapoints_to_alarm = 3
  comparison_operator = "LessThanThreshold"
  threshold           = 1
  # breaching: the collector publishes this series on every flush, zeros
  # included, so its absence is the silence this alarm is for.
  treat_missing_data = "breaching"
  alarm_actions      = [aws_sns_topic.page.arn]
  ok_actions         = [aws_sns_topic.page.arn]
  tags               = local.tags
}

resource "aws_cloudwatch_metric_alarm" "warn" {
  for_each = local.warn_metrics

  alarm_name          = "${local.alarm_prefix}-${lower(each.key)}"
  alarm_description   = "WARN. ${local.cluster_name}: ${each.value}, for three flushes. The per-cell ${each.key} [Cluster, SourceRole, DestinationRole, Port] name the paths. Runbook: ${local.runbook}."
  namespace           = var.namespace
  metric_name         = each.key
  dimensions          = { Cluster = local.cluster_name }
  statistic           = "Sum"
  period              = var.flush_interval_s
  evaluation_periods  = 3
  datapoints_to_alarm = 3
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  # notBreaching: missing data is no verdict; the ReportingAgents alarm pages
  # for a silent collector.
  treat_missing_data = "notBreaching"
  alarm_actions      = [aws_sns_topic.warn.arn]
  ok_actions         = [aws_sns_topic.warn.arn]
  tags               = local.tags
}

# A task running without a reporting sidecar is invisible to sgprobe itself: ECS
# Container Insights counts the tasks of the role's service, the collector counts
# the role's live agents, and the difference must be zero. Container Insights
# must be enabled on the cluster (its containerInsights setting).
resource "aws_cloudwatch_metric_alarm" "missing_sidecar" {
  for_each = var.agent_roles

  alarm_name          = "${local.alarm_prefix}-missing-sidecar-${each.key}"
  alarm_description   = "WARN. ${local.cluster_name}: service ${each.value} runs more tasks than role ${each.key} has reporting agents, for ${var.missing_sidecar_evaluation_periods} flushes: a task without the sidecar, or whose sidecar died or cannot reach the collector. Its paths are not checked. Runbook: ${local.runbook}."
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  evaluation_periods  = var.missing_sidecar_evaluation_periods
  datapoints_to_alarm = var.missing_sidecar_evaluation_periods
  # notBreaching: without either series there is no difference to judge; a
  # silent collector pages through the ReportingAgents alarm, and a cluster
  # without Container Insights is a setup error the README names.
  treat_missing_data = "notBreaching"
  alarm_actions      = [aws_sns_topic.warn.arn]
  ok_actions         = [aws_sns_topic.warn.arn]
  tags               = local.tags

  metric_query {
    id          = "missing"
    expression  = "running - reporting"
    label       = "${each.key}: tasks without a reporting sidecar"
    return_data = true
  }

  # The fewest running tasks of the period against the reporting agents (the Sum
  # over the collectors, as above): only a deficit that lasts the whole period
  # counts, not the moment a task starts.
  metric_query {
    id          = "running"
    return_data = false

    metric {
      namespace   = "ECS/ContainerInsights"
      metric_name = "RunningTaskCount"
      dimensions  = { ClusterName = local.cluster_name, ServiceName = each.value }
      period      = var.flush_interval_s
      stat        = "Minimum"
    }
  }

  metric_query {
    id          = "reporting"
    return_data = false

    metric {
      namespace   = var.namespace
      metric_name = "ReportingAgents"
      dimensions  = { Cluster = local.cluster_name, SourceRole = each.key }
      period      = var.flush_interval_s
      stat        = "Sum"
    }
  }
}
