"""The read side: queries over the workers' DynamoDB tables and the S3 archive."""
