"""Kafka → algorithm → Kafka pipelines: specs, the per-member consumer on Ray, and the supervisor that
keeps each pipeline's members running and scales them on lag."""
