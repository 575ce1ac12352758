"""Text a person typed -> IdentityRef(namespace, value). Pure: no I/O."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class IdentityRef:
    """One identity to look up: an AEP identity namespace code and the value in that namespace."""

    namespace: str
    value: str

    def __str__(self) -> str:
        return f"{self.namespace}:{self.value}"
