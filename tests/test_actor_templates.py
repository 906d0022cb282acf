"""``@actorless`` in-process: what a template is made of, how its state is kept, and the registry's
checks on actor entries (no Ray)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated

import pytest
import yaml
from pydantic import Field

from engines.actors import actorless
from engines.actors.persistence import Persistence
from engines.algorithms.registry import Registry
from engines.errors import RegistryError, UnknownMethod, ValidationFailed


@actorless(name="Cart", read_only=["total"])
class Cart:
    """A shopping cart."""

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self.items: dict[str, int] = {}
        self._cache = object()  # private: never part of the state

    def add(self, sku: Annotated[str, Field(min_length=1, description="what")], qty: int = 1) -> int:
        """Put qty of sku in the cart; how many of it there are now."""
        self.items[sku] = self.items.get(sku, 0) + qty
        return self.items[sku]

    def total(self) -> int:
        return sum(self.items.values())


@actorless
def visits(state: dict, page: str = "/") -> int:
    """Count a visit to page."""
    state[page] = state.get(page, 0) + 1
    return state[page]


class Hooked:
    def __init__(self) -> None:
        self.secret = "not stored"
        self.kept = 1

    def bump(self) -> int:
        self.kept += 1
        return self.kept

    def _store_states(self) -> dict:
        return {"kept": self.kept}

    def _recover_states(self, state: dict) -> None:
        self.kept = state["kept"]


HookedTemplate = actorless(Hooked, name="Hooked")


def test_public_methods_are_operations_with_exact_schemas():
    assert set(Cart.methods) == {"add", "total"} and Cart.methods["total"].read_only
    schema = Cart.methods["add"].input.model_json_schema()
    assert schema["required"] == ["sku"] and schema["properties"]["qty"]["default"] == 1
    assert schema["additionalProperties"] is False and Cart.methods["add"].output.json_schema() == {"type": "integer"}
    assert Cart.methods["add"].arguments(["socks"], {"qty": 2}, "Cart.add") == {"sku": "socks", "qty": 2}
    with pytest.raises(ValidationFailed, match=r"Cart\.add\.sku: at least 1 character"):
        Cart.methods["add"].arguments([""], {}, "Cart.add")
    with pytest.raises(ValidationFailed, match=r"Cart\.add\.sku: given both by position and by name"):
        Cart.methods["add"].arguments(["a"], {"sku": "b"}, "Cart.add")
    with pytest.raises(UnknownMethod, match=r"no method named 'Cart\.ad'; did you mean 'Cart\.add'"):
        Cart.method("ad")


def test_the_state_is_the_public_attributes_replayed_on_the_constructor():
    cart = Cart.instantiate(["ana"], {}, None)
    Cart.bound_call(cart, Cart.methods["add"])(sku="tea", qty=3)
    state = json.loads(Cart.state_json(cart))
    assert state == {"owner": "ana", "items": {"tea": 3}}
    again = Cart.instantiate(["ana"], {}, state)
    assert again.items == {"tea": 3} and Cart.bound_call(again, Cart.methods["total"])() == 3


def test_a_function_template_keeps_its_state_dict_and_hooks_choose_what_is_kept():
    state = visits.instantiate([], {}, {"/": 4})
    assert visits.bound_call(state, visits.methods["visits"])(page="/") == 5
    assert json.loads(visits.state_json(state)) == {"/": 5}
    hooked = HookedTemplate.instantiate([], {}, {"kept": 9})
    assert HookedTemplate.bound_call(hooked, HookedTemplate.methods["bump"])() == 10
    assert json.loads(HookedTemplate.state_json(hooked)) == {"kept": 10} and hooked.secret == "not stored"


def test_a_state_that_is_not_json_is_refused_naming_the_template():
    cart = Cart.instantiate(["ana"], {}, None)
    cart.items = {"socks": object()}
    with pytest.raises(ValidationFailed, match=r"Cart: its state is not JSON data"):
        json.loads(Cart.state_json(cart))


def test_bad_templates_are_refused_where_they_are_declared():
    with pytest.raises(RegistryError, match=r"read_only names no method: \['peek'\]"):
        actorless(name="Bad", read_only=["peek"])(Cart.target)

    class Splat:
        def go(self, *args: int) -> None: ...

    with pytest.raises(RegistryError, match=r"\*args and \*\*kwargs have no schema"):
        actorless(Splat)


@pytest.mark.parametrize(("entry", "problem"), [
    ({"target": "tests.test_actor_templates:Hooked"}, "is not an @actorless template"),
    ({"target": "tests.test_actor_templates:Cart", "name": "Basket"}, "differs from the template's own name 'Cart'"),
    ({"target": "tests.test_actor_templates:Cart", "hosts": 0}, "hosts: must be >= 1 (got 0)"),
    ({"target": "nowhere:Cart"}, "target: cannot import 'nowhere:Cart'"),
])
def test_a_wrong_actor_entry_names_the_entry_and_the_field(tmp_path: Path, entry: dict, problem: str):
    path = tmp_path / "algorithms.yaml"
    path.write_text(yaml.safe_dump([{"name": "Cart", "kind": "actor", **entry}]))
    with pytest.raises(RegistryError, match="entry 1 \\(.*\\): .*" + problem.replace("(", r"\(").replace(")", r"\)")
                       .replace("[", r"\[").replace("]", r"\]")):
        Registry.load(path)


def test_templates_in_listed_modules_join_with_the_default_placement(tmp_path: Path):
    path = tmp_path / "algorithms.yaml"
    path.write_text(yaml.safe_dump({"modules": ["tests.test_actor_templates"], "algorithms": [
        {"name": "Cart", "kind": "actor", "target": "tests.test_actor_templates:Cart", "hosts": 3}]}))
    actors = Registry.load(path).actors
    assert {"Cart", "visits", "Hooked"} <= set(actors)
    assert actors["Cart"].spec.hosts == 3 and actors["visits"].spec.hosts == 2


@pytest.mark.parametrize(("options", "problem"), [
    ({"checkpoint": "periodic"}, "checkpoint 'periodic' needs checkpoint_every (calls) or checkpoint_every_s"),
    ({"checkpoint_every_s": 5}, "checkpoint_every and checkpoint_every_s apply only to checkpoint 'periodic' "
                                 "(got 'every_call')"),
    ({"checkpoint": "periodic", "checkpoint_every": 0}, "checkpoint_every must be at least 1 (got 0)"),
    ({"idle_timeout_s": 0}, "idle_timeout_s must be positive (got 0)"),
])
def test_a_persistence_that_cannot_work_is_refused_naming_the_rule(options: dict, problem: str):
    with pytest.raises(RegistryError, match=r"@actorless Bad: " + re.escape(problem)):
        actorless(name="Bad", **options)(Cart.target)


def test_a_registry_entry_overrides_the_templates_persistence(tmp_path: Path):
    path = tmp_path / "algorithms.yaml"
    entry = {"name": "Cart", "kind": "actor", "target": "tests.test_actor_templates:Cart"}
    path.write_text(yaml.safe_dump([{**entry, "checkpoint": "periodic", "checkpoint_every_s": 2,
                                     "idle_timeout_s": 30}]))
    chosen = Registry.load(path).actors["Cart"].template.persistence
    assert chosen == Persistence("periodic", None, 2.0, 30.0) and Cart.persistence == Persistence()
    assert not chosen.after_call(unsaved=100) and chosen.overdue(2.0) and not chosen.overdue(1.9)
    path.write_text(yaml.safe_dump([{**entry, "checkpoint": "periodic"}]))
    with pytest.raises(RegistryError, match=r"entry 1 \(.*\): checkpoint 'periodic' needs checkpoint_every"):
        Registry.load(path)
    path.write_text(yaml.safe_dump([{**entry, "checkpoint": "sometimes"}]))
    with pytest.raises(RegistryError, match=r"checkpoint: must be one of 'every_call', 'periodic' or "
                                            r"'on_passivation' \(got 'sometimes'\)"):
        Registry.load(path)
