"""Azure resource ids of VMs and Recovery Services vaults, and the names Azure Backup derives
from them for IaaS VM containers and protected items."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

_GUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
# Azure's naming rules: a resource group is 1-90 letters or digits (as .NET's Char.IsLetterOrDigit
# sees them: Unicode categories L* and Nd, so no numerals such as '²' or 'Ⅷ'), '_', '-', '.', '('
# or ')', not ending in '.'; a VM name is 1-64 ASCII letters, digits, '_', '-' or '.', not
# starting with '_' nor ending in '.' or '-'. Anything else (';', '/', spaces, ...) would make the
# container and protected item names derived below ambiguous or break the ARM URLs built from them.
# Only the fixed segments match case-insensitively, and in ASCII: under re.IGNORECASE a class such
# as [A-Za-z] also matches the Kelvin sign or the long s, which fold onto 'k' and 's'.
_NAME = r"[-\w.()]{0,89}[-\w()]"
_VM_NAME = r"[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,62}[A-Za-z0-9_])?"
_VM = re.compile(
    rf"(?ai:/subscriptions/)(?P<sub>{_GUID})(?ai:/resourceGroups/)(?P<rg>{_NAME})"
    rf"(?ai:/providers/Microsoft\.Compute/virtualMachines/)(?P<name>{_VM_NAME})"
)
_VAULT = re.compile(
    rf"(?ai:/subscriptions/)(?P<sub>{_GUID})(?ai:/resourceGroups/)(?P<rg>{_NAME})"
    rf"(?ai:/providers/Microsoft\.RecoveryServices/vaults/)(?P<name>[A-Za-z][A-Za-z0-9-]{{1,49}})"
)
_LETTER_OR_DIGIT = ("Lu", "Ll", "Lt", "Lm", "Lo", "Nd")


def _resource_group_ok(name: str) -> bool:
    """Python's \\w also matches numerals (No, Nl) that Azure refuses in resource group names."""
    return all(c in "-_.()" or unicodedata.category(c) in _LETTER_OR_DIGIT for c in name)


class ResourceIdError(ValueError):
    pass


@dataclass(frozen=True)
class VmId:
    subscription: str
    resource_group: str
    name: str

    @classmethod
    def parse(cls, text: str) -> VmId:
        match = _VM.fullmatch(text.strip()) if isinstance(text, str) else None
        if match is None or not _resource_group_ok(match["rg"]):
            raise ResourceIdError(
                f"{text!r} is not a VM resource id; expected "
                "/subscriptions/<guid>/resourceGroups/<rg>/providers/Microsoft.Compute/virtualMachines/<name>"
            )
        return cls(match["sub"].lower(), match["rg"], match["name"])

    @property
    def id(self) -> str:
        return (
            f"/subscriptions/{self.subscription}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.Compute/virtualMachines/{self.name}"
        )

    @property
    def key(self) -> str:
        """Case-insensitive identity (Azure resource ids are case-insensitive)."""
        return self.id.lower()

    @property
    def container_name(self) -> str:
        return f"iaasvmcontainer;iaasvmcontainerv2;{self.resource_group.lower()};{self.name.lower()}"

    @property
    def protected_item_name(self) -> str:
        return f"vm;iaasvmcontainerv2;{self.resource_group.lower()};{self.name.lower()}"


@dataclass(frozen=True)
class VaultId:
    subscription: str
    resource_group: str
    name: str

    @classmethod
    def parse(cls, text: str) -> VaultId:
        match = _VAULT.fullmatch(text.strip()) if isinstance(text, str) else None
        if match is None or not _resource_group_ok(match["rg"]):
            raise ResourceIdError(
                f"{text!r} is not a Recovery Services vault resource id; expected "
                "/subscriptions/<guid>/resourceGroups/<rg>/providers/Microsoft.RecoveryServices/vaults/<name>"
            )
        return cls(match["sub"].lower(), match["rg"], match["name"])

    @property
    def id(self) -> str:
        return (
            f"/subscriptions/{self.subscription}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.RecoveryServices/vaults/{self.name}"
        )

    @property
    def key(self) -> str:
        return self.id.lower()


def policy_name(policy_id: str | None) -> str | None:
    """A protected item's policy, from its ``policyId`` (``.../vaults/{vault}/backupPolicies/{name}``):
    the spec's protected-item examples carry ``policyId`` but not ``policyName``. None: no policy."""
    name = str(policy_id or "").rstrip("/").rsplit("/", 1)[-1]
    return name or None
