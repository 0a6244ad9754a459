"""Deploy and operate: the deploy pipeline (staging → smoke + benchmarks → baseline → blue/green production), the monitor pipeline, rollback, status, EventBridge triggers."""
