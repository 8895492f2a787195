# Terraform 1.5 for lifecycle preconditions on resources with optional() object
# attributes; the AWS provider 5 for the standalone security-group rule resources
# (aws_vpc_security_group_ingress_rule / _egress_rule), one rule per resource, each
# with its own description.
terraform {
  required_version = ">= 1.5.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.0"
    }
  }
}
