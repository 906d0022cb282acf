"""Actors over REST: the Actorless seed's routes, bodies as its clients send them, and typed routes.

``POST /invoke {actor_id, actor_type, func_name, params, keep_alive}`` →
``{"result": …}``; ``POST /delete {actor_id, actor_type}``; ``POST /register
{template_name, actor_id, init_args, init_kwargs}``; ``GET /health``;
``GET /templates``. Errors are non-2xx with ``detail`` as the seed's were (404
for an unknown id), beside our ``error`` object. Each method also has a typed
route, ``POST /actors/{template}/{actor_id}/{method}`` with its arguments as
the body, so ``/docs`` shows its schema.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any

from fastapi import FastAPI, Request
from pydantic import BaseModel, Field

from engines.actors.client import Actors
from engines.actors.template import ActorTemplate, Method
from engines.errors import AlgoError, AlreadyBound, UnknownActor
from mcp_server.errors import http_error

Route = Callable[..., Awaitable[Any]]


class SeedInvoke(BaseModel):
    actor_id: str = Field(description="the actor's id")
    actor_type: str = Field(description="its template")
    func_name: str = Field(description="the method to call")
    keep_alive: bool = Field(False, description="keep the actor active (never passivated)")
    params: list[Any] | dict[str, Any] = Field(default_factory=list,
                                               description="the method's arguments, by position or by name")


class SeedDelete(BaseModel):
    actor_id: str
    actor_type: str


class SeedRegister(BaseModel):
    template_name: str
    actor_id: str
    init_args: list[Any] = Field(default_factory=list)
    init_kwargs: dict[str, Any] = Field(default_factory=dict)


def _seed_errors(route: Route) -> Route:
    """Errors as the seed answered them: non-2xx with ``detail`` (and our ``error`` beside it)."""
    @wraps(route)
    async def answered(*args: Any, **kwargs: Any) -> Any:
        try:
            return await route(*args, **kwargs)
        except AlgoError as err:
            return http_error(err, detail=True)

    return answered


def _typed_route(actors: Actors, template: ActorTemplate, method: Method) -> Route:
    async def call(actor_id: str, body: Any) -> dict[str, Any]:
        return {"result": await actors.invoke(actor_id, method.name, kwargs=body.model_dump(),
                                              template=template.name)}

    call.__signature__ = inspect.Signature([  # type: ignore[attr-defined]
        inspect.Parameter("actor_id", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=str),
        inspect.Parameter("body", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=method.input),
    ])
    return _seed_errors(call)


def add_actor_routes(app: FastAPI, actors: Actors) -> None:
    if not actors.templates:
        return

    @app.post("/invoke", tags=["actors"], summary="call an actor's method (the Actorless seed's route)")
    @_seed_errors
    async def invoke(request: SeedInvoke) -> dict[str, Any]:
        args, kwargs = (request.params, {}) if isinstance(request.params, list) else ([], request.params)
        return {"result": await actors.invoke(request.actor_id, request.func_name, args, kwargs,
                                              keep_alive=request.keep_alive, template=request.actor_type)}

    @app.post("/delete", tags=["actors"], summary="end an actor and its state (404 if unknown)")
    @_seed_errors
    async def delete(request: SeedDelete) -> dict[str, Any]:
        if not await actors.delete(request.actor_id):
            raise UnknownActor(request.actor_id)
        return {"result": f"Actor {request.actor_id} deleted"}

    @app.post("/register", tags=["actors"], summary="bind an actor (nothing runs until its first call)")
    @_seed_errors
    async def register(request: SeedRegister) -> dict[str, Any]:
        if await actors.store.get(request.actor_id) is not None:
            raise AlreadyBound(f"actor {request.actor_id!r} already exists")
        await actors.bind(request.template_name, request.actor_id, request.init_args, request.init_kwargs)
        return {"result": "registered", "actor_id": request.actor_id, "template_name": request.template_name}

    @app.get("/health", tags=["actors"], summary="the seed's health check")
    async def health(request: Request) -> dict[str, Any]:
        return {"status": "ok", "service": "algo-mcp", "actors_bound": await actors.store.count()}

    @app.get("/templates", tags=["actors"], summary="the actor templates and their methods")
    async def templates() -> list[dict[str, Any]]:
        return [{"name": t.name, "description": t.description, "methods": list(t.methods)}
                for t in actors.templates.values()]

    for template in actors.templates.values():
        for method in template.methods.values():
            app.post(f"/actors/{template.name}/{{actor_id}}/{method.name}", tags=["actors"],
                     name=f"{template.name}.{method.name}", summary=method.doc or None,
                     )(_typed_route(actors, template, method))
