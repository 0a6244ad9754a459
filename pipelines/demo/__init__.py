"""The offline demo: sample data and a tiny base model."""
