# The monitoring (CloudWatch API) interface endpoint, which the AFIRGen endpoints lack:
# with private DNS, monitoring.<region>.amazonaws.com resolves to it inside the VPC,
# so the collector needs neither a NAT nor a rule towards 0.0.0.0/0.
# Skipped when the VPC already has one (existing_monitoring_endpoint_security_group_id):
# a second endpoint for the same service could not take the private DNS name.

resource "aws_security_group" "monitoring_endpoint" {
  count = var.existing_monitoring_endpoint_security_group_id == null ? 1 : 0

  name        = "${var.name_prefix}-monitoring-endpoint"
  description = "CloudWatch monitoring interface endpoint: HTTPS from the sgprobe collector"
  vpc_id      = var.vpc_id
  tags        = merge(local.tags, { Name = "${var.name_prefix}-monitoring-endpoint" })
}

# No egress rule: an interface endpoint never opens a connection, it only answers.

resource "aws_vpc_security_group_ingress_rule" "monitoring_endpoint_from_collector" {
  security_group_id            = local.monitoring_endpoint_security_group_id
  description                  = "HTTPS from the sgprobe collector (monitoring endpoint: CloudWatch PutMetricData)"
  ip_protocol                  = "tcp"
  from_port                    = 443
  to_port                      = 443
  referenced_security_group_id = aws_security_group.collector.id
  tags                         = local.tags
}

# Private DNS applies to the whole VPC: any other workload calling the CloudWatch
# API now lands on this endpoint and must be admitted by name.
resource "aws_vpc_security_group_ingress_rule" "monitoring_endpoint_from_clients" {
  count = length(var.monitoring_endpoint_client_security_group_ids)

  security_group_id            = local.monitoring_endpoint_security_group_id
  description                  = "HTTPS to the CloudWatch API from another workload of the VPC: private DNS sends it to this endpoint"
  ip_protocol                  = "tcp"
  from_port                    = 443
  to_port                      = 443
  referenced_security_group_id = var.monitoring_endpoint_client_security_group_ids[count.index]
  tags                         = local.tags
}

resource "aws_vpc_endpoint" "monitoring" {
  count = var.existing_monitoring_endpoint_security_group_id == null ? 1 : 0

  vpc_id              = var.vpc_id
  service_name        = "com.amazonaws.${var.region}.monitoring"
  vpc_endpoint_type   = "Interface"
  subnet_ids          = length(var.endpoint_subnet_ids) > 0 ? var.endpoint_subnet_ids : var.subnet_ids
  security_group_ids  = [aws_security_group.monitoring_endpoint[0].id]
  private_dns_enabled = true
  tags                = merge(local.tags, { Name = "${var.name_prefix}-monitoring" })
}
