"""``GamePlayer``: an online game's player state, the shape of the RayPlus GamePlayer workload.

Each player carries a position, a velocity, health, skills and an inventory
(``items`` entries, a few hundred bytes each), so its state is sizeable, as a
real session's is; moves and skills are writes, ``get_info`` reads.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field

from engines.actors import actorless


class Vector(BaseModel):
    x: float = 0.0
    y: float = 0.0
    z: float = 0.0


@actorless(name="GamePlayer", read_only=["get_info"], idle_timeout_s=300)
class GamePlayer:
    """A game player: position, velocity, health, skills and inventory, one per player id."""

    def __init__(self, player_id: str, items: int = 300) -> None:
        self.player_id = player_id
        self.position = Vector().model_dump()
        self.velocity = Vector().model_dump()
        self.health = 100.0
        self.skills: dict[str, dict] = {}
        self.inventory = [{"item_id": f"item_{i:06d}", "durability": 100.0, "enhancement": i % 5,
                           "modifiers": ["fire", "ice", "lightning"][: i % 3 + 1]} for i in range(items)]

    def get_info(self) -> dict:
        """The player's id, health and position."""
        return {"player_id": self.player_id, "health": self.health, "position": self.position}

    def update_position(self, new_pos: Annotated[Vector, Field(description="where the player is now",
                                                               examples=[{"x": 1.0, "y": 2.0, "z": 0.0}])],
                        new_vel: Annotated[Vector, Field(description="how fast it moves, per axis",
                                                         examples=[{"x": 0.5, "y": 0.0, "z": 0.0}])]) -> bool:
        """Move the player."""
        self.position, self.velocity = new_pos.model_dump(), new_vel.model_dump()
        return True

    def use_skill(self, skill_id: Annotated[str, Field(min_length=1, max_length=64, description="the skill's id",
                                                       examples=["fireball"])]) -> dict:
        """Use a skill (it levels up); its state."""
        skill = self.skills.setdefault(skill_id, {"cooldown": 5.0, "level": 1, "uses": 0})
        skill["uses"] += 1
        skill["level"] = 1 + skill["uses"] // 10
        return skill

    def take_damage(self, amount: Annotated[float, Field(gt=0, le=1000, description="health lost",
                                                         examples=[10])]) -> float:
        """Lose health (never below 0); what is left."""
        self.health = max(0.0, self.health - amount)
        return self.health
