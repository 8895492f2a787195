output "agents_security_group_id" {
  description = "sgprobe-agents: add it to the securityGroups of every service whose tasks run the sidecar."
  value       = aws_security_group.agents.id
}

output "collector_security_group_id" {
  description = "sgprobe-collector: the collector service's only group."
  value       = aws_security_group.collector.id
}

output "monitoring_endpoint_security_group_id" {
  description = "The monitoring endpoint's group (created here, or the one given)."
  value       = local.monitoring_endpoint_security_group_id
}

output "monitoring_endpoint_id" {
  description = "The monitoring interface endpoint created here; null when the VPC's own is used."
  value       = one(aws_vpc_endpoint.monitoring[*].id)
}

output "page_topic_arn" {
  description = "SNS topic of the paging alarms (UnexpectedOpenPaths, BlockedPaths, StaleAgents, ReportingAgents): subscribe the on-call."
  value       = aws_sns_topic.page.arn
}

output "warn_topic_arn" {
  description = "SNS topic of the warning alarms (NoListenerPaths, TlsFailedPaths, InconclusivePaths, missing sidecars): subscribe a ticket queue."
  value       = aws_sns_topic.warn.arn
}

output "service_name" {
  description = "The collector's ECS service."
  value       = aws_ecs_service.collector.name
}

output "task_definition_arn" {
  description = "The collector's task definition (family:revision)."
  value       = aws_ecs_task_definition.collector.arn
}

output "task_role_arn" {
  description = "The collector's task role: cloudwatch:PutMetricData in the namespace, nothing else."
  value       = aws_iam_role.task.arn
}

output "execution_role_arn" {
  description = "The collector's execution role: image pull, keys secret, logs."
  value       = aws_iam_role.execution.arn
}

output "agent_execution_policy_arn" {
  description = "Attach to the execution role of every task definition that carries the sidecar: its key secret and its log group."
  value       = aws_iam_policy.agent_execution.arn
}

output "agent_log_group_name" {
  description = "The awslogs-group for the sidecar fragment."
  value       = aws_cloudwatch_log_group.agent.name
}

output "collector_url" {
  description = "SGPROBE_COLLECTOR for the sidecars, when service_discovery is given; null otherwise."
  value       = var.service_discovery == null ? null : "${local.tls ? "https" : "http"}://${var.service_discovery.name}.${var.service_discovery.namespace_name}:${var.collector_port}"
}
