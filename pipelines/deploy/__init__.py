"""The deploy pipeline: resolve the latest Approved version → endpoint with data capture → smoke test."""
