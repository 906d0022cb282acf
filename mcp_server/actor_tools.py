"""Actors over MCP: a tool per template method (``Account.deposit``, taking ``actor_id`` and the method's
arguments), tools to bind, inspect, list and delete actors, and ``actor://{template}/{actor_id}``.

An agent binds an actor once (``actor_bind``) and then calls its methods by id;
nothing runs until the first call. Errors are tool errors with their type.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Awaitable
from typing import Annotated, Any

from fastmcp.resources import ResourceTemplate
from fastmcp.tools import Tool, ToolResult
from mcp_types import ToolAnnotations
from pydantic import Field, PrivateAttr

from engines.actors.client import ACTOR_ID_MAX_LENGTH, ACTOR_ID_PATTERN, Actors
from engines.actors.template import ActorTemplate, Method
from engines.errors import AlgoError
from mcp_server.answers import answer
from mcp_server.errors import resource_error, tool_error
from storage.objects import ObjectStore

ActorId = Annotated[str, Field(min_length=1, max_length=ACTOR_ID_MAX_LENGTH, pattern=ACTOR_ID_PATTERN,
                               description="the actor's id, as bound with actor_bind", examples=["account1"])]
ACTOR_ID_SCHEMA = {"type": "string", "minLength": 1, "maxLength": ACTOR_ID_MAX_LENGTH, "pattern": ACTOR_ID_PATTERN,
                   "description": "the actor's id, as bound with actor_bind", "examples": ["account1"]}
READ_ONLY = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False)


def _input_schema(template: ActorTemplate, method: Method) -> dict[str, Any]:
    """The method's arguments plus ``actor_id``; every field described (a bare parameter says what it is)."""
    schema = copy.deepcopy(method.input.model_json_schema())
    properties = schema.setdefault("properties", {})
    for name, prop in properties.items():
        prop.setdefault("description", f"the {name} argument of {template.name}.{method.name}")
    schema["properties"] = {"actor_id": ACTOR_ID_SCHEMA, **properties}
    schema["required"] = ["actor_id", *schema.get("required", [])]
    schema.pop("title", None)
    return schema


class ActorMethodTool(Tool):
    """Calls one method of a template on the actor its ``actor_id`` names."""

    _actors: Actors = PrivateAttr()
    _objects: ObjectStore = PrivateAttr()
    _template: str = PrivateAttr()
    _method: str = PrivateAttr()

    @classmethod
    def of(cls, template: ActorTemplate, method: Method, actors: Actors, objects: ObjectStore) -> ActorMethodTool:
        tool = cls(
            name=f"{template.name}.{method.name}",
            title=f"{template.name}: {method.name.replace('_', ' ')}",
            description=(method.doc or f"Call {method.name} on a {template.name} actor") +
            f" (on the {template.name} actor named by actor_id; bind one first with actor_bind)",
            parameters=_input_schema(template, method),
            output_schema={"type": "object", "properties": {
                "actor_id": {"type": "string"}, "result": method.output.json_schema()}},
            annotations=ToolAnnotations(read_only_hint=method.read_only, open_world_hint=False),
        )
        tool._actors, tool._objects, tool._template, tool._method = actors, objects, template.name, method.name
        return tool

    async def run(self, arguments: dict[str, Any]) -> ToolResult:
        kwargs = dict(arguments)
        actor_id = kwargs.pop("actor_id", None)
        try:
            result = await self._actors.invoke(actor_id, self._method, kwargs=kwargs, template=self._template)
        except AlgoError as err:
            return tool_error(err)
        return await answer({"actor_id": actor_id, "result": result}, self._objects)


class ActorTools:
    """The method tools of every template, the generic actor tools, and ``actor://``."""

    def __init__(self, actors: Actors, objects: ObjectStore) -> None:
        self.actors, self.objects = actors, objects

    def tools(self) -> list[Tool]:
        if not self.actors.templates:
            return []
        methods = [ActorMethodTool.of(t, m, self.actors, self.objects)
                   for t in self.actors.templates.values() for m in t.methods.values()]
        return [*methods,
                Tool.from_function(self.actor_bind, title="Bind an actor"),
                Tool.from_function(self.actor_get, title="Look at an actor", annotations=READ_ONLY),
                Tool.from_function(self.actor_list, title="List actors", annotations=READ_ONLY),
                Tool.from_function(self.actor_delete, title="Delete an actor",
                                   annotations=ToolAnnotations(destructive_hint=True, idempotent_hint=True))]

    def templates(self) -> list[ResourceTemplate]:
        if not self.actors.templates:
            return []
        return [ResourceTemplate.from_function(
            self.actor_resource, "actor://{template}/{actor_id}", name="actor", title="An actor's state",
            mime_type="application/json", description="An actor's record and its state (live when active).")]

    async def _answer(self, work: Awaitable[dict[str, Any]]) -> ToolResult:
        try:
            return await answer(await work, self.objects)
        except AlgoError as err:
            return tool_error(err)

    async def actor_bind(
            self, template: Annotated[str, Field(description="the template (Account, GamePlayer, …)",
                                                  examples=["Account"])],
            actor_id: ActorId,
            args: Annotated[list[Any], Field(description="its constructor's positional arguments",
                                             examples=[["Alice"]])] = [],  # noqa: B006 - a schema default
            kwargs: Annotated[dict[str, Any], Field(description="its constructor's keyword arguments",
                                                    examples=[{"balance": 100}])] = {},  # noqa: B006
    ) -> ToolResult:
        """Record an actor of a template under an id; nothing runs until its first call. Binding the same id
        again with the same arguments changes nothing; with others it is an error."""
        async def bind() -> dict[str, Any]:
            return (await self.actors.bind(template, actor_id, args, kwargs)).public()

        return await self._answer(bind())

    async def actor_get(self, actor_id: ActorId) -> ToolResult:
        """An actor's record and state: live where it is active, else as last checkpointed."""
        return await self._answer(self._inspect(actor_id))

    async def actor_list(
            self, template: Annotated[str | None, Field(description="only actors of this template")] = None,
            limit: Annotated[int, Field(ge=1, le=200, description="at most this many, newest first")] = 20,
    ) -> ToolResult:
        """Bound actors, newest first."""
        async def listing() -> dict[str, Any]:
            return {"actors": [r.public() for r in await self.actors.recent(template, limit)]}

        return await self._answer(listing())

    async def actor_delete(self, actor_id: ActorId) -> ToolResult:
        """End an actor: its activation, its record and its stored state."""
        async def delete() -> dict[str, Any]:
            return {"actor_id": actor_id, "deleted": await self.actors.delete(actor_id)}

        return await self._answer(delete())

    async def _inspect(self, actor_id: str) -> dict[str, Any]:
        record = await self.actors.get(actor_id)
        live = await self.actors.live(actor_id)
        state = live["state"] if live else record.state
        if live is None and record.state_ref:
            data, _ = await self.objects.get(record.state_ref)
            state = json.loads(data)
        return {**record.public(), "active": live is not None, "state": state}

    async def actor_resource(self, template: str, actor_id: str) -> str:
        try:
            found = await self._inspect(actor_id)
        except AlgoError as err:
            raise resource_error(err) from None
        return json.dumps(found)
