# sgprobe's collector on ECS Fargate, its security groups, the CloudWatch interface
# endpoint it publishes through, its IAM roles and the alarms on what it publishes.
# See README.md for what each piece is for.

data "aws_caller_identity" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id

  # The agents report the cluster's short name (from the task metadata), and
  # Container Insights names it the same way: the Cluster and ClusterName
  # dimensions of the alarms.
  cluster_name = regex("cluster/([A-Za-z0-9_-]+)$", var.cluster_arn)[0]

  tags = merge(var.tags, { "sgprobe:cluster" = local.cluster_name })

  # Where the agents connect: the collector itself, or the sticky ALB in front of two.
  agents_target_security_group_id = var.load_balancer == null ? aws_security_group.collector.id : var.load_balancer.security_group_id
  agents_target_port              = var.load_balancer == null ? var.collector_port : var.load_balancer.listener_port

  # The monitoring endpoint's group: the one created here, or the VPC's own.
  monitoring_endpoint_security_group_id = var.existing_monitoring_endpoint_security_group_id != null ? var.existing_monitoring_endpoint_security_group_id : aws_security_group.monitoring_endpoint[0].id

  # Fargate's task sizes: CPU units -> the memory sizes (MiB) allowed with them.
  fargate_sizes = {
    "256"   = [512, 1024, 2048]
    "512"   = [for m in range(1024, 4097, 1024) : m]
    "1024"  = [for m in range(2048, 8193, 1024) : m]
    "2048"  = [for m in range(4096, 16385, 1024) : m]
    "4096"  = [for m in range(8192, 30721, 1024) : m]
    "8192"  = [for m in range(16384, 61441, 4096) : m]
    "16384" = [for m in range(32768, 122881, 8192) : m]
  }
}
