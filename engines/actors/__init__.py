"""Stateful virtual actors (the Actorless seed): ``@actorless`` templates, one activation per id,
state checkpointed to Redis or the object store, hosted many to a process on a few actor hosts."""

from engines.actors.template import ActorTemplate, actorless

__all__ = ["ActorTemplate", "actorless"]
