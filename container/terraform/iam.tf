# Two roles for the collector's task, and a policy for the application tasks'
# execution roles (the sidecar's secret and logs).
#
# - The task role is what the collector itself may do: publish its metrics, in its
#   namespace, and nothing else.
# - The execution role is what ECS does on the task's behalf before it starts:
#   pull the image, read the keys secret, create the log streams.

data "aws_iam_policy_document" "ecs_tasks_assume" {
  statement {
    sid     = "EcsTasksOfThisAccount"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }

    # Only ECS acting for this account may assume the roles (the confused deputy).
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

# --- the task role: cloudwatch:PutMetricData in var.namespace, nothing else ---------------

resource "aws_iam_role" "task" {
  name               = "${var.name_prefix}-collector-task"
  description        = "sgprobe collector: publish its metrics to CloudWatch, in its namespace only"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
  tags               = local.tags
}

# PutMetricData has no resource-level permissions (the resource is "*"); the
# cloudwatch:namespace condition key is what keeps a compromised collector from
# writing into another namespace, such as the one an application's alarms read.
data "aws_iam_policy_document" "task" {
  statement {
    sid       = "PutMetricDataInTheSgprobeNamespace"
    effect    = "Allow"
    actions   = ["cloudwatch:PutMetricData"]
    resources = ["*"]

    condition {
      test     = "StringEquals"
      variable = "cloudwatch:namespace"
      values   = [var.namespace]
    }
  }
}

resource "aws_iam_role_policy" "task" {
  name   = "put-metric-data"
  role   = aws_iam_role.task.id
  policy = data.aws_iam_policy_document.task.json
}

# --- the execution role: image, secrets, logs --------------------------------------------

resource "aws_iam_role" "execution" {
  name               = "${var.name_prefix}-collector-execution"
  description        = "ECS, for the sgprobe collector task: pull its image, read its keys secret, write its logs"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
  tags               = local.tags
}

data "aws_iam_policy_document" "execution" {
  # The registry token is account-wide: GetAuthorizationToken takes no resource.
  dynamic "statement" {
    for_each = length(var.image_repository_arns) > 0 ? [1] : []
    content {
      sid       = "EcrToken"
      actions   = ["ecr:GetAuthorizationToken"]
      resources = ["*"]
    }
  }

  dynamic "statement" {
    for_each = length(var.image_repository_arns) > 0 ? [1] : []
    content {
      sid       = "PullTheCollectorImage"
      actions   = ["ecr:BatchCheckLayerAvailability", "ecr:GetDownloadUrlForLayer", "ecr:BatchGetImage"]
      resources = var.image_repository_arns
    }
  }

  statement {
    sid       = "WriteTheCollectorLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.collector.arn}:*"]
  }

  statement {
    sid       = "ReadTheKeysSecret"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = compact([var.keys_secret_arn, var.tls_secret_arn])
  }

  dynamic "statement" {
    for_each = var.secrets_kms_key_arn == null ? [] : [1]
    content {
      sid       = "DecryptTheSecretsThroughSecretsManager"
      actions   = ["kms:Decrypt"]
      resources = [var.secrets_kms_key_arn]

      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["secretsmanager.${var.region}.amazonaws.com"]
      }
    }
  }
}

resource "aws_iam_role_policy" "execution" {
  name   = "pull-secrets-logs"
  role   = aws_iam_role.execution.id
  policy = data.aws_iam_policy_document.execution.json
}

# --- for the application tasks that carry the sidecar ----------------------------------
# Attach to each application's execution role: ECS reads the sidecar's SGPROBE_KEY
# secret and creates its log stream with that role.

data "aws_iam_policy_document" "agent_execution" {
  statement {
    sid       = "WriteTheSidecarLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.agent.arn}:*"]
  }

  dynamic "statement" {
    for_each = length(var.agent_key_secret_arns) > 0 ? [1] : []
    content {
      sid       = "ReadTheSidecarKeys"
      actions   = ["secretsmanager:GetSecretValue"]
      resources = var.agent_key_secret_arns
    }
  }

  dynamic "statement" {
    for_each = var.secrets_kms_key_arn != null && length(var.agent_key_secret_arns) > 0 ? [1] : []
    content {
      sid       = "DecryptTheSidecarKeysThroughSecretsManager"
      actions   = ["kms:Decrypt"]
      resources = [var.secrets_kms_key_arn]

      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["secretsmanager.${var.region}.amazonaws.com"]
      }
    }
  }
}

resource "aws_iam_policy" "agent_execution" {
  name        = "${var.name_prefix}-agent-execution"
  description = "For the execution roles of tasks running the sgprobe sidecar: its key secret and its log group"
  policy      = data.aws_iam_policy_document.agent_execution.json
  tags        = local.tags
}
