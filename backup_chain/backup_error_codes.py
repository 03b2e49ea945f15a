"""Azure Backup's documented job error codes, to name the symbolic code of a failed job.

A job's ``errorDetails`` entry (``AzureIaaSVMErrorInfo`` in azure-rest-api-specs
recoveryservicesbackup bms.json) carries ``errorCode`` as an *int*, ``errorTitle`` ("title:
typically, the entity that the error pertains to"), ``errorString`` and ``recommendations``. The
symbolic code an operator searches for (``UserErrorFsFreezeFailed``) is what Microsoft's
troubleshooting pages list as "Error code" with its "Error message", and what a failed ARM
operation carries as ``error.code``; no Microsoft source found pairs a symbolic code with its int
``errorCode``, so ``number`` is ``None`` throughout and a job's symbolic code is found by its
message. Sources:
- DOCS_VM = MicrosoftDocs/azure-docs articles/backup/backup-azure-vms-troubleshoot.md
- DOCS_AGENT = MicrosoftDocs/azure-docs
  articles/backup/backup-azure-troubleshoot-vm-backup-fails-snapshot-timeout.md
"""

from __future__ import annotations

from dataclasses import dataclass

DOCS_VM = "MicrosoftDocs/azure-docs articles/backup/backup-azure-vms-troubleshoot.md"
DOCS_AGENT = "MicrosoftDocs/azure-docs articles/backup/backup-azure-troubleshoot-vm-backup-fails-snapshot-timeout.md"


@dataclass(frozen=True)
class BackupErrorCode:
    code: str
    message: str
    source: str
    number: int | None = None  # Azure's int errorCode, where a Microsoft source states it


CODES: tuple[BackupErrorCode, ...] = (
    BackupErrorCode(
        "UserErrorBackupOperationInProgress",
        "Unable to initiate backup as another backup operation is currently in progress.",
        DOCS_AGENT,
    ),
    BackupErrorCode(
        "UserErrorRpCollectionLimitReached", "The Restore Point collection max limit has reached.", DOCS_AGENT
    ),
    BackupErrorCode(
        "UserErrorGuestAgentStatusUnavailable", "VM Agent unable to communicate with Azure Backup.", DOCS_AGENT
    ),
    BackupErrorCode(
        "ExtensionFailedTimeoutVMNetworkUnresponsive",
        "Snapshot operation failed due to inadequate VM resources.",
        DOCS_AGENT,
    ),
    BackupErrorCode(
        "ExtensionFailedVssWriterInBadState",
        "Snapshot operation failed because VSS writers were in a bad state.",
        DOCS_VM,
    ),
    BackupErrorCode(
        "ExtensionFailedVssServiceInBadState",
        "Snapshot operation failed due to VSS (Volume Shadow Copy) service in bad state.",
        DOCS_VM,
    ),
    BackupErrorCode(
        "UserErrorFsFreezeFailed",
        "Failed to freeze one or more mount-points of the VM to take a file-system consistent snapshot.",
        DOCS_VM,
    ),
    BackupErrorCode("UserErrorVmNotInDesirableState", "VM is not in a state that allows backups.", DOCS_VM),
    BackupErrorCode(
        "ExtensionFailedSnapshotLimitReachedError",
        "Snapshot operation failed as snapshot limit is exceeded for some of the disks attached",
        DOCS_VM,
    ),
    BackupErrorCode("CopyingVHDsFromBackUpVaultTakingLongTime", "Copying backed up data from vault timed out", DOCS_VM),
)


def _normalized(message: str) -> str:
    # The docs print some messages with a final period and some without.
    return " ".join(message.split()).rstrip(".").casefold()


_BY_MESSAGE = {_normalized(c.message): c for c in CODES}
_BY_NUMBER = {c.number: c for c in CODES if c.number is not None}


def symbolic_code(number: int | None, message: str | None) -> str | None:
    """The documented symbolic code of a job error, by its int code where a source states it,
    else by its message; ``None`` when neither is in the table."""
    if number is not None and number in _BY_NUMBER:
        return _BY_NUMBER[number].code
    if message:
        found = _BY_MESSAGE.get(_normalized(message))
        if found is not None:
            return found.code
    return None
