"""The local AWS stack: kinesis-mock and moto's server on loopback, the template deployed
onto them through CloudFormation. See docs/local-stack.md."""
