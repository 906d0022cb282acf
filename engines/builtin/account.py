"""``Account``: the Actorless seed's example actor, a bank account per id."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from engines.actors import actorless


@actorless(name="Account", read_only=["get_info"])
class Account:
    """A bank account: deposit, withdraw, and read its balance; one per actor id."""

    def __init__(self, name: str, CardID: str = "", balance: float = 0) -> None:  # CardID: the seed's spelling
        self.name = name
        self.CardID = CardID
        self.balance = balance

    def get_info(self) -> str:
        """The account holder, card and balance."""
        return f"Name: {self.name}, CardID: {self.CardID}, Balance: {self.balance}"

    def deposit(self, amount: Annotated[float, Field(description="how much to add", examples=[50])]) -> float:
        """Add ``amount``; the new balance."""
        self.balance += amount
        return self.balance

    def withdraw(self, amount: Annotated[float, Field(description="how much to take out", examples=[20])]
                 ) -> float | str:
        """Take ``amount`` out if the balance covers it; the new balance, or "Insufficient balance"."""
        if self.balance < amount:
            return "Insufficient balance"
        self.balance -= amount
        return self.balance
