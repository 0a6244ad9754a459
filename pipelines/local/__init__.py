"""The embedded local runtime: AWS stand-ins (S3 folder, SQLite Model Registry, SageMaker API, endpoints)."""
