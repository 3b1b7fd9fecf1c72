"""deployer: ship a web application to AWS Lambda behind API Gateway with plain boto3 calls."""

__version__ = "0.1.0"
