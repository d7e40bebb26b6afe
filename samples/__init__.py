"""Sample logs, configurations and write bodies (data; installed as `ingestor.samples`)."""
