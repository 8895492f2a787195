# `terraform test` with a mocked AWS provider: no credentials, nothing created.
# Run by tests/integration/test_terraform.sh when terraform and the AWS provider
# are at hand (it installs nothing). Each run applies the module against the mock
# and asserts what the deployment relies on.

mock_provider "aws" {
  mock_data "aws_caller_identity" {
    defaults = { account_id = "123456789012" }
  }
  mock_data "aws_iam_policy_document" {
    defaults = { json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}" }
  }
  # The provider still validates ARNs: the mocked ones must look real.
  mock_resource "aws_iam_role" {
    defaults = { arn = "arn:aws:iam::123456789012:role/mock" }
  }
  mock_resource "aws_iam_policy" {
    defaults = { arn = "arn:aws:iam::123456789012:policy/mock" }
  }
  mock_resource "aws_sns_topic" {
    defaults = { arn = "arn:aws:sns:us-east-1:123456789012:mock" }
  }
  mock_resource "aws_cloudwatch_log_group" {
    defaults = { arn = "arn:aws:logs:us-east-1:123456789012:log-group:mock" }
  }
  mock_resource "aws_service_discovery_service" {
    defaults = { arn = "arn:aws:servicediscovery:us-east-1:123456789012:service/srv-mock" }
  }
  mock_resource "aws_ecs_task_definition" {
    defaults = { arn = "arn:aws:ecs:us-east-1:123456789012:task-definition/sgprobe-collector:1" }
  }
}

variables {
  region                = "us-east-1"
  cluster_arn           = "arn:aws:ecs:us-east-1:123456789012:cluster/afirgen-prod"
  vpc_id                = "vpc-0a1b2c3d4e5f60718"
  subnet_ids            = ["subnet-0a1b2c3d4e5f61001", "subnet-0a1b2c3d4e5f61002"]
  collector_image       = "123456789012.dkr.ecr.us-east-1.amazonaws.com/sgprobe-collector:0.1.0"
  config_image          = "123456789012.dkr.ecr.us-east-1.amazonaws.com/ecr-public/docker/library/busybox:1.36"
  image_repository_arns = ["arn:aws:ecr:us-east-1:123456789012:repository/sgprobe-collector", "arn:aws:ecr:us-east-1:123456789012:repository/ecr-public/docker/library/busybox"]
  matrix_json           = "{\"version\": 1, \"name\": \"t\", \"roles\": {}, \"allow\": []}"
  keys_secret_arn       = "arn:aws:secretsmanager:us-east-1:123456789012:secret:sgprobe/collector/keys-AbCdEf"
  agent_roles = {
    "main-backend" = "afirgen-main-backend"
    "nginx"        = "afirgen-nginx"
  }
  service_discovery = {
    namespace_id   = "ns-0a1b2c3d4e5f6a7b8"
    namespace_name = "afirgen.internal"
  }
}

run "defaults" {
  command = apply

  assert {
    condition     = aws_security_group.agents.name == "sgprobe-agents" && aws_security_group.collector.name == "sgprobe-collector"
    error_message = "the groups are sgprobe-agents and sgprobe-collector"
  }
  assert {
    condition     = aws_vpc_security_group_egress_rule.agents_to_collector[0].referenced_security_group_id == aws_security_group.collector.id && aws_vpc_security_group_egress_rule.agents_to_collector[0].from_port == 9443
    error_message = "sgprobe-agents reaches sgprobe-collector on 9443"
  }
  assert {
    condition     = aws_vpc_security_group_ingress_rule.collector_from_agents[0].referenced_security_group_id == aws_security_group.agents.id
    error_message = "sgprobe-collector admits sgprobe-agents"
  }
  assert {
    condition     = aws_vpc_security_group_egress_rule.collector_to_monitoring_endpoint.referenced_security_group_id == aws_security_group.monitoring_endpoint[0].id
    error_message = "the collector reaches the monitoring endpoint's group on 443"
  }
  assert {
    condition     = aws_vpc_security_group_ingress_rule.monitoring_endpoint_from_collector.security_group_id == aws_security_group.monitoring_endpoint[0].id && aws_vpc_security_group_ingress_rule.monitoring_endpoint_from_collector.referenced_security_group_id == aws_security_group.collector.id
    error_message = "the monitoring endpoint's group admits the collector"
  }
  assert {
    condition     = aws_vpc_endpoint.monitoring[0].service_name == "com.amazonaws.us-east-1.monitoring" && aws_vpc_endpoint.monitoring[0].private_dns_enabled
    error_message = "the monitoring endpoint, with private DNS"
  }
  assert {
    condition     = length(aws_vpc_security_group_ingress_rule.collector_admin) == 0 && length(aws_vpc_security_group_egress_rule.agents_to_load_balancer) == 0
    error_message = "no admin exposure and no ALB rules by default"
  }
  assert {
    condition     = length(aws_cloudwatch_metric_alarm.missing_sidecar) == 2 && one([for q in aws_cloudwatch_metric_alarm.missing_sidecar["nginx"].metric_query : q.metric[0].dimensions["ServiceName"] if q.id == "running"]) == "afirgen-nginx"
    error_message = "one missing-sidecar alarm per agent role, on its service"
  }
  assert {
    condition     = aws_cloudwatch_metric_alarm.unexpected_open_paths.dimensions["Cluster"] == "afirgen-prod" && aws_cloudwatch_metric_alarm.unexpected_open_paths.period == 60
    error_message = "the alarms' Cluster is the cluster's name, their period one flush"
  }
  assert {
    condition     = [for e in jsondecode(aws_ecs_task_definition.collector.container_definitions)[1].environment : e.value if e.name == "SGPROBE_ADMIN_LISTEN"][0] == "127.0.0.1:9090"
    error_message = "the admin listener stays on loopback by default"
  }
  assert {
    condition     = length(jsondecode(aws_ecs_task_definition.collector.container_definitions)[1].portMappings) == 1
    error_message = "only the agents' port is mapped by default"
  }
  assert {
    condition     = output.collector_url == "http://collector.afirgen.internal:9443"
    error_message = "the collector URL for the sidecars"
  }
  assert {
    condition     = aws_ecs_service.collector.network_configuration[0].assign_public_ip == false && aws_ecs_service.collector.desired_count == 1
    error_message = "one collector, no public IP"
  }
}

run "two_collectors_behind_a_sticky_alb" {
  command = apply

  variables {
    desired_count = 2
    load_balancer = {
      target_group_arn  = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/sgprobe/0123456789abcdef"
      security_group_id = "sg-0123456789abcdef0"
      listener_port     = 443
    }
    tls_secret_arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:sgprobe/collector/tls-AbCdEf"
  }

  assert {
    condition     = length(aws_vpc_security_group_egress_rule.agents_to_collector) == 0 && length(aws_vpc_security_group_ingress_rule.collector_from_agents) == 0
    error_message = "agents no longer reach the collectors directly"
  }
  assert {
    condition     = aws_vpc_security_group_egress_rule.agents_to_load_balancer[0].referenced_security_group_id == "sg-0123456789abcdef0" && aws_vpc_security_group_egress_rule.agents_to_load_balancer[0].from_port == 443
    error_message = "agents reach the ALB on its listener port"
  }
  assert {
    condition     = aws_vpc_security_group_ingress_rule.collector_from_load_balancer[0].referenced_security_group_id == "sg-0123456789abcdef0"
    error_message = "the collectors admit the ALB"
  }
  assert {
    condition     = length([for s in jsondecode(aws_ecs_task_definition.collector.container_definitions)[0].secrets : s if s.name == "TLS_KEY_PEM"]) == 1
    error_message = "the TLS key comes through the config container's secrets"
  }
  assert {
    condition     = strcontains(jsondecode(aws_ecs_task_definition.collector.container_definitions)[0].command[0], "chown 10001:10001 /run/sgprobe/matrix.json /run/sgprobe/keys.json /run/sgprobe/tls.crt /run/sgprobe/tls.key")
    error_message = "the config container hands the TLS files to the collector's user too"
  }
}

run "two_collectors_without_a_load_balancer_are_refused" {
  command = plan

  variables {
    desired_count = 2
  }

  expect_failures = [aws_ecs_service.collector]
}

run "a_size_fargate_does_not_have_is_refused" {
  command = plan

  variables {
    memory = 768
  }

  expect_failures = [aws_ecs_task_definition.collector]
}

run "an_existing_monitoring_endpoint_is_used_not_duplicated" {
  command = apply

  variables {
    existing_monitoring_endpoint_security_group_id = "sg-04d0f2b4c6e8a19fa"
    admin_client_security_group_ids                = ["sg-0ops0000000000001"]
  }

  assert {
    condition     = length(aws_vpc_endpoint.monitoring) == 0 && length(aws_security_group.monitoring_endpoint) == 0
    error_message = "no second endpoint"
  }
  assert {
    condition     = aws_vpc_security_group_ingress_rule.monitoring_endpoint_from_collector.security_group_id == "sg-04d0f2b4c6e8a19fa" && aws_vpc_security_group_egress_rule.collector_to_monitoring_endpoint.referenced_security_group_id == "sg-04d0f2b4c6e8a19fa"
    error_message = "the existing endpoint's group admits the collector"
  }
  assert {
    condition     = aws_vpc_security_group_ingress_rule.collector_admin[0].from_port == 9090 && [for e in jsondecode(aws_ecs_task_definition.collector.container_definitions)[1].environment : e.value if e.name == "SGPROBE_ADMIN_LISTEN"][0] == "0.0.0.0:9090"
    error_message = "a named admin client opens the admin listener, to that group only"
  }
}

run "a_bad_matrix_is_refused" {
  command = plan

  variables {
    matrix_json = "{not json"
  }

  expect_failures = [var.matrix_json]
}

run "one_group_for_every_endpoint_as_in_afirgen" {
  command = apply

  variables {
    existing_monitoring_endpoint_security_group_id = "sg-04d0f2b4c6e8a19fa"
    endpoints_security_group_id                    = "sg-04d0f2b4c6e8a19fa"
    s3_prefix_list_id                              = "pl-63a5400a"
  }

  assert {
    condition     = length(aws_vpc_security_group_egress_rule.collector_to_service_endpoints) == 0 && length(aws_vpc_security_group_ingress_rule.service_endpoints_from_collector) == 0
    error_message = "no duplicate of the monitoring rules when every endpoint shares one group"
  }
  assert {
    condition     = aws_vpc_security_group_egress_rule.collector_to_s3[0].prefix_list_id == "pl-63a5400a"
    error_message = "image layers from the S3 gateway endpoint"
  }
}

run "separate_service_endpoints" {
  command = apply

  variables {
    endpoints_security_group_id = "sg-0e0e0e0e0e0e0e0e0"
  }

  assert {
    condition     = aws_vpc_security_group_egress_rule.collector_to_service_endpoints[0].referenced_security_group_id == "sg-0e0e0e0e0e0e0e0e0" && aws_vpc_security_group_ingress_rule.service_endpoints_from_collector[0].security_group_id == "sg-0e0e0e0e0e0e0e0e0"
    error_message = "the collector reaches the service endpoints' group, which admits it"
  }
}
