"""Every Redis name algo-mcp uses, in one place (like arq's ``constants``).

The layout is public: dashboards and operators read these keys directly, so a
change here is a breaking change. Nothing outside ``storage/`` builds a name.

==============================  ========  ===================================================
name                            type      what it holds
==============================  ========  ===================================================
``{prefix}:task:{id}``          hash      one task record (see ``TaskRecord``), or a recorded
                                          synchronous call; expires ``task_ttl_s`` after it
                                          reaches a terminal state
``{prefix}:tasks``              stream    every submission (``task_id``, ``model``/``algorithm``,
                                          ``payload``, ``status``, ``ts``), kept for audit and
                                          replay for ``task_ttl_s``; consumer group ``workers``
                                          on it is the work queue
``{prefix}:done:{id}``          list      one element, pushed when the task becomes terminal;
                                          waiters block on it (BLMOVE) instead of polling
``{prefix}:heartbeat:{worker}`` string    the worker's last beat (unix seconds), with a TTL:
                                          alive while it exists
``{prefix}:worker:{worker}``    string    JSON worker info (kind, pid, …), with the same TTL
``{prefix}:events:{id}``        channel   pub/sub: the task's status or progress changed
``{prefix}:cancel``             channel   pub/sub: a task id, published when it is cancelled
``{prefix}:actor:{id}``         hash      a bound actor: template, constructor arguments, options,
                                          its state (or ``state_ref``, an object-store key)
``{prefix}:actors``             zset      every bound actor id, by bind time
``{prefix}:actor-lease:{id}``   string    ``<host> <token>``: the host the actor is active on,
                                          with a TTL the host renews
``{prefix}:actor-fence``        string    the fencing counter: each activation's token
``{prefix}:actor-calls:{id}``   hash      recent writing calls' results by call id (answers
                                          to calls retried after their answer was lost)
``{prefix}:actor-call-times:{id}`` zset   when each of them was written (older ones trimmed)
``{prefix}:pipeline:{name}``    hash      a pipeline: ``spec`` (JSON), ``status`` (running |
                                          stopped), ``source`` (registry | api), ``consumers``
                                          (how many its supervisor keeps), ``created_at``,
                                          ``updated_at``, ``error``
``{prefix}:pipelines``          set       every pipeline's name
``{prefix}:pipeline-stats:{name}:{member}`` string  JSON: one consumer's counters, lag per
                                          partition, latency; with a TTL (gone: it stopped)
``{prefix}:pipeline-dead:{name}`` list    the last dead letters (JSON), newest first
``{prefix}:pipeline-out:{name}`` list     the last output messages (JSON), newest first
``{prefix}:pipeline-supervisor`` string   the gateway that supervises pipelines, with a TTL
``{prefix}:task-stats``         hash      counters of ended tasks: ``ended:{status}``, and their
                                          latency (submission to end) by algorithm:
                                          ``latency:{algorithm}:{bucket}`` (the first bucket it fits,
                                          upper bounds in seconds, or ``inf``), ``latency-sum:{algorithm}``
``{prefix}:actor-stats``        hash      ``activations:{template}``: actor activations so far
``{prefix}:limits``             hash      algorithm name → JSON: its limits changed at run time
                                          (``max_concurrency``, ``num_workers``, ``max_queued``,
                                          ``batch``), applied over the registry file's
``{prefix}:limits-log``         list      JSON: the last changes (who, when, what), newest first
==============================  ========  ===================================================

With the prefix ``ray_service`` this is the seed Ray Service's own layout: its
hash fields ``task_id``, ``model``, ``payload``, ``status``, ``result`` and ``ts``,
its stream entries and its heartbeat values are all there, so its dashboards
keep working.

Task hash fields (strings; JSON where noted): ``task_id``, ``algorithm`` (and
``model``, the seed's name for it), ``payload`` (JSON), ``status`` (queued |
running | completed | failed | cancelled), ``progress`` (0..1),
``progress_message``, ``result`` (JSON), ``error`` (JSON ``{type, message}``),
``attempts``, ``max_attempts``, ``timeout_s``, ``callback_url``, ``result_topic``,
``kind`` (absent: a call; ``backfill``: a topic range), ``worker_id``,
``created_at``/``started_at``/``finished_at`` (unix seconds, the server's clock),
``ts`` (the last status change), ``message_id`` (its stream entry).
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_PREFIX = "algo_mcp"
WORKER_GROUP = "workers"


@dataclass(frozen=True)
class KeyLayout:
    """Names under one prefix, so several deployments can share a Redis."""

    prefix: str = DEFAULT_PREFIX

    def __post_init__(self) -> None:
        if not self.prefix or any(c in self.prefix for c in " *?[]"):
            raise ValueError(f"Redis key prefix {self.prefix!r} must be non-empty, without spaces or glob characters")

    def task(self, task_id: str) -> str:
        return f"{self.prefix}:task:{task_id}"

    @property
    def stream(self) -> str:
        return f"{self.prefix}:tasks"

    @property
    def group(self) -> str:
        return WORKER_GROUP

    def done(self, task_id: str) -> str:
        return f"{self.prefix}:done:{task_id}"

    def heartbeat(self, worker_id: str) -> str:
        return f"{self.prefix}:heartbeat:{worker_id}"

    @property
    def heartbeat_pattern(self) -> str:
        return f"{self.prefix}:heartbeat:*"

    def worker(self, worker_id: str) -> str:
        return f"{self.prefix}:worker:{worker_id}"

    def events(self, task_id: str) -> str:
        return f"{self.prefix}:events:{task_id}"

    @property
    def cancel_channel(self) -> str:
        return f"{self.prefix}:cancel"

    def actor(self, actor_id: str) -> str:
        return f"{self.prefix}:actor:{actor_id}"

    @property
    def actors(self) -> str:
        return f"{self.prefix}:actors"

    def actor_lease(self, actor_id: str) -> str:
        return f"{self.prefix}:actor-lease:{actor_id}"

    @property
    def actor_fence(self) -> str:
        return f"{self.prefix}:actor-fence"

    def actor_calls(self, actor_id: str) -> str:
        return f"{self.prefix}:actor-calls:{actor_id}"

    def actor_call_times(self, actor_id: str) -> str:
        return f"{self.prefix}:actor-call-times:{actor_id}"

    def pipeline(self, name: str) -> str:
        return f"{self.prefix}:pipeline:{name}"

    @property
    def pipelines(self) -> str:
        return f"{self.prefix}:pipelines"

    def pipeline_stats(self, name: str, member: str) -> str:
        return f"{self.prefix}:pipeline-stats:{name}:{member}"

    def pipeline_stats_pattern(self, name: str) -> str:
        return f"{self.prefix}:pipeline-stats:{name}:*"

    def pipeline_dead(self, name: str) -> str:
        return f"{self.prefix}:pipeline-dead:{name}"

    def pipeline_out(self, name: str) -> str:
        return f"{self.prefix}:pipeline-out:{name}"

    @property
    def pipeline_supervisor(self) -> str:
        return f"{self.prefix}:pipeline-supervisor"

    @property
    def actor_stats(self) -> str:
        return f"{self.prefix}:actor-stats"

    @property
    def task_stats(self) -> str:
        return f"{self.prefix}:task-stats"

    @property
    def limits(self) -> str:
        return f"{self.prefix}:limits"

    @property
    def limits_log(self) -> str:
        return f"{self.prefix}:limits-log"
