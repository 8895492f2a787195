# The collector's task definition and service: the same shape as
# container/ecs/collector-task-definition.json and collector-service.json, from
# this module's variables.

resource "aws_cloudwatch_log_group" "collector" {
  name              = "/ecs/${var.name_prefix}/collector"
  retention_in_days = var.log_retention_days
  tags              = local.tags
}

# The sidecars' log group (awslogs-group of container/ecs/agent-sidecar.json).
resource "aws_cloudwatch_log_group" "agent" {
  name              = "/ecs/${var.name_prefix}/agent"
  retention_in_days = var.log_retention_days
  tags              = local.tags
}

locals {
  # The task's scratch volume: the image declares VOLUME /run/sgprobe owned by
  # 10001, so that Fargate's bind mount is writable by the unprivileged user
  # while the root filesystem stays read-only.
  run_dir      = "/run/sgprobe"
  tls          = var.tls_secret_arn != null
  admin_listen = length(var.admin_client_security_group_ids) > 0 ? "0.0.0.0:${var.admin_port}" : "127.0.0.1:${var.admin_port}"

  log_options = {
    "awslogs-group"  = aws_cloudwatch_log_group.collector.name
    "awslogs-region" = var.region
  }

  # The config container turns what ECS can deliver (variables, secrets) into the
  # files the collector reads, for the collector's user alone. The sgprobe images
  # have no shell (FROM scratch), so it runs var.config_image. A bad matrix or
  # keys document stops the collector at its start (exit 2, naming the field):
  # the deployment's circuit breaker then rolls back.
  config_files = compact([
    "${local.run_dir}/matrix.json",
    "${local.run_dir}/keys.json",
    local.tls ? "${local.run_dir}/tls.crt" : "",
    local.tls ? "${local.run_dir}/tls.key" : "",
  ])
  config_script = join("; ", compact([
    "set -eu",
    "umask 077",
    "printf '%s' \"$MATRIX_JSON\" > ${local.run_dir}/matrix.json",
    "printf '%s' \"$KEYS_JSON\" > ${local.run_dir}/keys.json",
    local.tls ? "printf '%s\\n' \"$TLS_CERT_PEM\" > ${local.run_dir}/tls.crt" : "",
    local.tls ? "printf '%s\\n' \"$TLS_KEY_PEM\" > ${local.run_dir}/tls.key" : "",
    "chmod 0400 ${join(" ", local.config_files)}",
    "chown 10001:10001 ${join(" ", local.config_files)}",
  ]))

  # Root in the config container may only hand files to uid 10001 (CHOWN) in a
  # folder that is 10001's (DAC_OVERRIDE): every other default capability goes.
  config_dropped_capabilities = [
    "AUDIT_WRITE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE", "NET_RAW",
    "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
  ]

  config_secrets = concat(
    [{ name = "KEYS_JSON", valueFrom = var.keys_secret_arn }],
    local.tls ? [
      { name = "TLS_CERT_PEM", valueFrom = "${var.tls_secret_arn}:cert::" },
      { name = "TLS_KEY_PEM", valueFrom = "${var.tls_secret_arn}:key::" },
    ] : [],
  )

  collector_environment = concat(
    [
      { name = "SGPROBE_MATRIX", value = "${local.run_dir}/matrix.json" },
      { name = "SGPROBE_KEYS", value = "${local.run_dir}/keys.json" },
      { name = "SGPROBE_LISTEN", value = "0.0.0.0:${var.collector_port}" },
      { name = "SGPROBE_ADMIN_LISTEN", value = local.admin_listen },
      { name = "SGPROBE_METRICS_SINK", value = "cloudwatch" },
      { name = "SGPROBE_REGION", value = var.region },
      { name = "SGPROBE_NAMESPACE", value = var.namespace },
      { name = "SGPROBE_FLUSH_INTERVAL", value = tostring(var.flush_interval_s) },
    ],
    local.tls ? [
      { name = "SGPROBE_TLS_CERT", value = "${local.run_dir}/tls.crt" },
      { name = "SGPROBE_TLS_KEY", value = "${local.run_dir}/tls.key" },
    ] : [],
  )

  port_mappings = concat(
    [{ name = "agents", containerPort = var.collector_port, hostPort = var.collector_port, protocol = "tcp" }],
    length(var.admin_client_security_group_ids) > 0 ? [
      { name = "admin", containerPort = var.admin_port, hostPort = var.admin_port, protocol = "tcp" },
    ] : [],
  )

  container_definitions = [
    {
      name                   = "sgprobe-config"
      image                  = var.config_image
      essential              = false
      memoryReservation      = 16
      user                   = "0"
      readonlyRootFilesystem = true
      entryPoint             = ["/bin/sh", "-c"]
      command                = [local.config_script]
      environment            = [{ name = "MATRIX_JSON", value = var.matrix_json }]
      secrets                = local.config_secrets
      mountPoints            = [{ sourceVolume = "sgprobe-run", containerPath = local.run_dir, readOnly = false }]
      linuxParameters        = { capabilities = { drop = local.config_dropped_capabilities } }
      logConfiguration = {
        logDriver = "awslogs"
        options   = merge(local.log_options, { "awslogs-stream-prefix" = "sgprobe-config" })
      }
    },
    {
      name                   = "sgprobe-collector"
      image                  = var.collector_image
      essential              = true
      memoryReservation      = floor(var.memory / 2)
      user                   = "10001:10001"
      readonlyRootFilesystem = true
      dependsOn              = [{ containerName = "sgprobe-config", condition = "SUCCESS" }]
      portMappings           = local.port_mappings
      environment            = local.collector_environment
      mountPoints            = [{ sourceVolume = "sgprobe-run", containerPath = local.run_dir, readOnly = true }]
      # Every agent keeps a connection open (keep-alive): thousands of descriptors.
      ulimits         = [{ name = "nofile", softLimit = 65535, hardLimit = 65535 }]
      linuxParameters = { capabilities = { drop = ["ALL"] } }
      healthCheck = {
        command     = ["CMD", "sgprobe-collector", "health", "--admin-listen", "127.0.0.1:${var.admin_port}"]
        interval    = 15
        timeout     = 5
        retries     = 3
        startPeriod = 30
      }
      # SIGTERM: stop accepting, finish requests in flight, flush the metrics once
      # more (up to 5 s for CloudWatch), exit. 30 s leaves that ample room.
      stopTimeout = 30
      logConfiguration = {
        logDriver = "awslogs"
        options   = merge(local.log_options, { "awslogs-stream-prefix" = "sgprobe-collector" })
      }
    },
  ]
}

resource "aws_ecs_task_definition" "collector" {
  family                   = "${var.name_prefix}-collector"
  network_mode             = "awsvpc"
  requires_compatibilities = ["FARGATE"]
  cpu                      = tostring(var.cpu)
  memory                   = tostring(var.memory)
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.task.arn
  container_definitions    = jsonencode(local.container_definitions)
  tags                     = local.tags

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = var.cpu_architecture
  }

  # A bind mount with no host path: task storage on Fargate, gone with the task.
  volume {
    name = "sgprobe-run"
  }

  lifecycle {
    precondition {
      condition     = contains(lookup(local.fargate_sizes, tostring(var.cpu), []), var.memory)
      error_message = "cpu/memory: not a Fargate task size (256 CPU takes 512, 1024 or 2048 MiB; 512 takes 1024-4096; 1024 takes 2048-8192; ...)."
    }
  }
}

# Agents find the collector by name (SGPROBE_COLLECTOR=http://collector.<namespace>:port):
# a Fargate task's address changes with every deployment.
resource "aws_service_discovery_service" "collector" {
  count = var.service_discovery == null ? 0 : 1

  name = var.service_discovery.name

  dns_config {
    namespace_id   = var.service_discovery.namespace_id
    routing_policy = "MULTIVALUE"

    # Short: after a deployment the agents move to the new task within seconds.
    dns_records {
      type = "A"
      ttl  = 10
    }
  }

  # ECS reports the task's health (its container health check) to Cloud Map.
  health_check_custom_config {
    failure_threshold = 1
  }

  tags = local.tags
}

resource "aws_ecs_service" "collector" {
  name             = "${var.name_prefix}-collector"
  cluster          = var.cluster_arn
  task_definition  = aws_ecs_task_definition.collector.arn
  desired_count    = var.desired_count
  launch_type      = "FARGATE"
  platform_version = "LATEST"

  # The new collector starts before the old one stops (no gap in the metrics; the
  # agents rebuild its view within one interval); a deployment whose collector
  # never becomes healthy is rolled back.
  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  # The collector holds every agent's key: no ECS Exec into it.
  enable_execute_command  = false
  enable_ecs_managed_tags = true
  propagate_tags          = "SERVICE"

  network_configuration {
    subnets          = var.subnet_ids
    security_groups  = [aws_security_group.collector.id]
    assign_public_ip = false
  }

  dynamic "service_registries" {
    for_each = var.service_discovery == null ? [] : [1]
    content {
      registry_arn = aws_service_discovery_service.collector[0].arn
    }
  }

  dynamic "load_balancer" {
    for_each = var.load_balancer == null ? [] : [var.load_balancer]
    content {
      target_group_arn = load_balancer.value.target_group_arn
      container_name   = "sgprobe-collector"
      container_port   = var.collector_port
    }
  }

  health_check_grace_period_seconds = var.load_balancer == null ? null : 60

  tags = local.tags

  # The roles' policies must be there before the first task asks for them.
  depends_on = [aws_iam_role_policy.execution, aws_iam_role_policy.task]

  lifecycle {
    precondition {
      condition     = var.desired_count == 1 || var.load_balancer != null
      error_message = "desired_count > 1 needs load_balancer (an ALB with stickiness): without it each collector sees part of every role's agents and marks the rest stale."
    }
  }
}
