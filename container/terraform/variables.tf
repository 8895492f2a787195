# --- where the collector runs -------------------------------------------------------------

variable "name_prefix" {
  description = "Prefix of every name the module creates: groups (<prefix>-agents, <prefix>-collector), roles, log groups, the service, alarms. A second collector in the same account (one per cluster) needs its own prefix: IAM names are account-wide, log group names region-wide."
  type        = string
  default     = "sgprobe"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}$", var.name_prefix))
    error_message = "name_prefix: 2 to 31 lower-case letters, digits or hyphens, starting with a letter."
  }
}

variable "region" {
  description = "The AWS region of the cluster: CloudWatch's (SGPROBE_REGION), the monitoring endpoint's and the logs'."
  type        = string

  validation {
    condition     = can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]+$", var.region))
    error_message = "region: an AWS region name such as us-east-1."
  }
}

variable "cluster_arn" {
  description = "ARN of the ECS cluster the collector runs in and whose agents it serves (one collector per cluster). Its name is the Cluster dimension of the alarms: the agents report the cluster's name from the task metadata."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:ecs:[a-z0-9-]+:[0-9]{12}:cluster/[A-Za-z0-9_-]{1,255}$", var.cluster_arn))
    error_message = "cluster_arn: arn:PARTITION:ecs:REGION:ACCOUNT:cluster/NAME."
  }
}

variable "vpc_id" {
  description = "The VPC of the cluster: the groups and the monitoring endpoint are created in it."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets for the collector's task (no public IP is assigned), and for the monitoring endpoint unless endpoint_subnet_ids is given."
  type        = list(string)

  validation {
    condition     = length(var.subnet_ids) > 0
    error_message = "subnet_ids: at least one subnet."
  }
}

variable "endpoint_subnet_ids" {
  description = "Subnets for the monitoring interface endpoint, at most one per availability zone; [] uses subnet_ids."
  type        = list(string)
  default     = []
}

# --- the collector's task -----------------------------------------------------------------

variable "collector_image" {
  description = "The sgprobe-collector image (container/collector.Dockerfile; an ECR URI with a tag or digest): entry point sgprobe-collector, user 10001:10001, VOLUME /run/sgprobe owned by that user."
  type        = string
}

variable "config_image" {
  description = "An image with a POSIX sh, printf, chmod and chown, for the config container that writes the matrix and keys into the task's volume before the collector starts (the sgprobe images are FROM scratch, without a shell). busybox, e.g. through an ECR pull-through cache of ECR Public when the VPC has no NAT: ACCOUNT.dkr.ecr.REGION.amazonaws.com/ecr-public/docker/library/busybox:1.36."
  type        = string
}

variable "image_repository_arns" {
  description = "ARNs of the ECR repositories the collector and config images are pulled from: the execution role may pull from these only. [] for images outside ECR."
  type        = list(string)
}

variable "cpu" {
  description = "The collector task's CPU units (Fargate: 256, 512, 1024, ...). One core takes tens of thousands of reports a second; 256 serves thousands of agents."
  type        = number
  default     = 256
}

variable "memory" {
  description = "The collector task's memory in MiB, a valid Fargate size for cpu. The collector holds the latest observation per agent, address and port, and up to 100,000 unsent metric values."
  type        = number
  default     = 512
}

variable "cpu_architecture" {
  description = "X86_64 or ARM64: the architecture the collector image is built for."
  type        = string
  default     = "X86_64"

  validation {
    condition     = contains(["X86_64", "ARM64"], var.cpu_architecture)
    error_message = "cpu_architecture: X86_64 or ARM64."
  }
}

variable "desired_count" {
  description = "Collectors to run. 1 unless load_balancer is set: two collectors without a sticky load balancer would each see part of every role's agents, and mark the others stale."
  type        = number
  default     = 1

  validation {
    condition     = var.desired_count >= 1 && floor(var.desired_count) == var.desired_count
    error_message = "desired_count: a whole number, at least 1."
  }
}

variable "collector_port" {
  description = "The port of the collector's agent listener (SGPROBE_LISTEN): reports and plans."
  type        = number
  default     = 9443

  validation {
    condition     = var.collector_port >= 1024 && var.collector_port <= 65535
    error_message = "collector_port: 1024-65535 (the collector runs unprivileged)."
  }
}

variable "admin_port" {
  description = "The port of the collector's admin listener (dashboard, matrix view, Prometheus, /healthz). It listens on loopback only unless admin_client_security_group_ids is given."
  type        = number
  default     = 9090

  validation {
    condition     = var.admin_port >= 1024 && var.admin_port <= 65535
    error_message = "admin_port: 1024-65535."
  }
}

variable "admin_client_security_group_ids" {
  description = "Groups admitted to the admin listener (an ops bastion, Prometheus, an ALB with OIDC). [] keeps it on loopback: it shows where the holes are, so exposing it is a deliberate choice."
  type        = list(string)
  default     = []
}

variable "matrix_json" {
  description = "The intended matrix, as JSON text (e.g. file(\"afirgen.matrix.json\")). It goes into the task definition, so a matrix change is a new revision and a deployment, visible in ECS's history."
  type        = string

  validation {
    condition     = can(jsondecode(var.matrix_json)) && length(var.matrix_json) <= 32768
    error_message = "matrix_json: JSON text of at most 32 KiB (a task definition holds 64 KiB)."
  }
}

variable "keys_secret_arn" {
  description = "ARN of the Secrets Manager secret whose value is the agents' keys document ({\"keys\": [{\"id\", \"secret\", \"roles\"}]}, secrets inline). Created outside Terraform so that no key lands in the state."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:.+$", var.keys_secret_arn))
    error_message = "keys_secret_arn: a Secrets Manager secret ARN."
  }
}

variable "tls_secret_arn" {
  description = "ARN of a Secrets Manager secret holding {\"cert\": PEM, \"key\": PEM} for TLS on the agents' listener; null for plain HTTP (reports and plans are HMAC-signed either way). With TLS the agents need the issuing CA (SGPROBE_CA_FILE) and an https:// collector URL."
  type        = string
  default     = null

  validation {
    condition     = var.tls_secret_arn == null || can(regex("^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:.+$", var.tls_secret_arn))
    error_message = "tls_secret_arn: a Secrets Manager secret ARN, or null."
  }
}

variable "secrets_kms_key_arn" {
  description = "The customer-managed KMS key encrypting the keys, TLS and agent secrets, if any: the execution roles may decrypt with it through Secrets Manager only. null for the AWS-managed key."
  type        = string
  default     = null
}

variable "log_retention_days" {
  description = "Retention of the collector's and the agents' log groups, in days."
  type        = number
  default     = 30
}

# --- how agents find the collector ---------------------------------------------------------

variable "service_discovery" {
  description = "A Cloud Map private DNS namespace to register the collector in (name.namespace_name, e.g. collector.afirgen.internal): the agents' SGPROBE_COLLECTOR. null when the caller registers the service itself or uses load_balancer."
  type = object({
    namespace_id   = string
    namespace_name = string
    name           = optional(string, "collector")
  })
  default = null
}

variable "load_balancer" {
  description = "For two collectors (high availability): an internal ALB target group (HTTP or HTTPS to collector_port, stickiness on: the agents keep their cookie, so each agent's reports land on one collector), the ALB's security group and its listener port. The module then routes agents -> ALB -> collector in the groups."
  type = object({
    target_group_arn  = string
    security_group_id = string
    listener_port     = number
  })
  default = null
}

# --- the VPC's other endpoints (Fargate pulls, secrets and logs go through the task's ENI) ---

variable "existing_monitoring_endpoint_security_group_id" {
  description = "The group of a monitoring (CloudWatch) interface endpoint the VPC already has: the module then admits the collector to it instead of creating a second endpoint (two endpoints cannot both hold the private DNS name)."
  type        = string
  default     = null
}

variable "monitoring_endpoint_client_security_group_ids" {
  description = "Other groups to admit to the monitoring endpoint on 443. Private DNS sends every client in the VPC that calls the CloudWatch API to the endpoint: a workload that did so through a NAT must be listed here."
  type        = list(string)
  default     = []
}

variable "endpoints_security_group_id" {
  description = "The group of the VPC's interface endpoints for ECR (api, dkr), Secrets Manager and CloudWatch Logs, when there is no NAT: the collector's group gets egress 443 to it and it admits the collector. null when those are reached through a NAT (then add an egress rule to the collector group yourself)."
  type        = string
  default     = null
}

variable "s3_prefix_list_id" {
  description = "The prefix list of the VPC's S3 gateway endpoint (image layers come from S3): the collector's group gets egress 443 to it. null when S3 is reached through a NAT."
  type        = string
  default     = null
}

# --- CloudWatch -----------------------------------------------------------------------------

variable "namespace" {
  description = "The CloudWatch namespace the collector publishes in (SGPROBE_NAMESPACE); the task role may publish in this namespace only."
  type        = string
  default     = "SGProbe"

  validation {
    condition     = can(regex("^[A-Za-z0-9_./#:-]{1,255}$", var.namespace)) && !startswith(var.namespace, "AWS/")
    error_message = "namespace: 1-255 characters of A-Z a-z 0-9 _ . / # : -, not in AWS/."
  }
}

variable "flush_interval_s" {
  description = "Seconds between the collector's flushes (SGPROBE_FLUSH_INTERVAL), and the alarms' period: one value per period."
  type        = number
  default     = 60

  validation {
    condition     = var.flush_interval_s >= 60 && var.flush_interval_s <= 3600 && var.flush_interval_s % 60 == 0
    error_message = "flush_interval_s: a multiple of 60 from 60 to 3600 (a standard-resolution alarm period)."
  }
}

variable "agent_roles" {
  description = "The matrix's agent roles (\"agent\": true) in this cluster, each with the name of the ECS service whose tasks run that role's sidecar: one missing-sidecar alarm each (Container Insights' RunningTaskCount minus ReportingAgents)."
  type        = map(string)
  default     = {}
}

variable "missing_sidecar_evaluation_periods" {
  description = "Periods in a row a role must have more running tasks than reporting agents before its missing-sidecar alarm fires: a new task's sidecar reports after its first round, and deployments run old and new tasks side by side."
  type        = number
  default     = 5

  validation {
    condition     = var.missing_sidecar_evaluation_periods >= 2 && var.missing_sidecar_evaluation_periods <= 60
    error_message = "missing_sidecar_evaluation_periods: 2 to 60."
  }
}

variable "agent_key_secret_arns" {
  description = "ARNs of the agents' HMAC key secrets (SGPROBE_KEY through ECS secrets): the agent execution policy this module outputs lets the application tasks' execution roles read exactly these."
  type        = list(string)
  default     = []
}

variable "sns_kms_key_id" {
  description = "A customer-managed KMS key for the alarm topics, whose key policy lets cloudwatch.amazonaws.com use it; null for no encryption. Not alias/aws/sns: CloudWatch cannot publish to a topic under the AWS-managed key."
  type        = string
  default     = null
}

variable "tags" {
  description = "Tags for every resource that takes them."
  type        = map(string)
  default     = {}
}
