"""Role-based access from config: who may see, submit and change which contracts.

Roles:
- **commissioner**: sees every contract (or a listed set), may submit and correct figures,
  approve and query returns, and is the only role that may change contract terms;
- **provider**: sees and submits only its own contracts;
- **viewer**: sees a listed set (or all), changes nothing.

Users are matched by platform id (Slack ``U…``, Teams AAD object id), e-mail, or group. Channels
can be bound to a contract so the contract argument defaults to it.

>>> policy = AccessPolicy.model_validate({"users": {"U1": {"role": "provider", "contracts": ["c1"]}}})
>>> policy.can(policy.identify("U1"), "submit", "c1"), policy.can(policy.identify("U1"), "view", "c2")
(True, False)
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

Role = Literal["commissioner", "provider", "viewer", "none"]
Action = Literal["view", "submit", "amend_terms", "approve", "incident", "admin", "waive"]

_ALLOWED: dict[str, set[str]] = {
    "commissioner": {"view", "submit", "amend_terms", "approve", "incident", "admin", "waive"},
    "provider": {"view", "submit", "incident"},
    "viewer": {"view"},
    "none": set(),
}


class Grant(BaseModel):
    """One user's or group's role and contracts ('all' or a list of contract ids)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    role: Role
    name: str | None = None
    contracts: list[str] | Literal["all"] = "all"
    email: str | None = None
    groups: list[str] = Field(default_factory=list)


class Identity(BaseModel):
    """Who is asking, as resolved from config."""

    model_config = ConfigDict(frozen=True)

    user: str
    role: Role
    name: str
    contracts: list[str] | Literal["all"]

    def sees(self, contract_id: str) -> bool:
        return self.contracts == "all" or contract_id in self.contracts


class AccessPolicy(BaseModel):
    """The access file: users, groups, channel bindings and who grants access."""

    model_config = ConfigDict(extra="forbid")

    grantor: str = "your contract manager"
    default_role: Role = "none"
    users: dict[str, Grant] = Field(default_factory=dict)
    groups: dict[str, Grant] = Field(default_factory=dict)
    channels: dict[str, str] = Field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> AccessPolicy:
        """Read the access YAML; a missing file gives an empty policy (nobody has access)."""
        if not path.exists():
            return cls()
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        return cls.model_validate(data)

    def identify(
        self,
        user: str,
        email: str | None = None,
        groups: list[str] | None = None,
        name: str | None = None,
    ) -> Identity:
        """Resolve a platform user to an identity: by id, then e-mail, then group membership."""
        grant = self.users.get(user)
        if grant is None and email:
            grant = next(
                (
                    g
                    for key, g in self.users.items()
                    if key.lower() == email.lower() or (g.email or "").lower() == email.lower()
                ),
                None,
            )
        if grant is None:
            for group in groups or []:
                if group in self.groups:
                    grant = self.groups[group]
                    break
        if grant is None:
            for key, g in self.users.items():
                if any(grp in self.groups for grp in g.groups) and key == user:
                    grant = g
        if grant is None:
            return Identity(
                user=user,
                role=self.default_role,
                name=name or user,
                contracts="all" if self.default_role == "viewer" else [],
            )
        return Identity(
            user=user, role=grant.role, name=grant.name or name or user, contracts=grant.contracts
        )

    def can(self, who: Identity, action: Action, contract_id: str | None) -> bool:
        if action not in _ALLOWED[who.role]:
            return False
        return contract_id is None or who.sees(contract_id)

    def bound_contract(self, channel: str | None) -> str | None:
        return self.channels.get(channel) if channel else None

    def bind(self, channel: str, contract_id: str) -> None:
        self.channels[channel] = contract_id

    def visible(self, who: Identity, contract_ids: list[str]) -> list[str]:
        return [c for c in contract_ids if self.can(who, "view", c)]
