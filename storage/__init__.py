"""Persistence below the engines: Redis task records and the object store."""
