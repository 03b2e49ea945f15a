"""ARM errors and the Azure error codes the emulator returns.

Sources (paths in public repositories; cited so a reader can check each code):
- DOCS_VM = MicrosoftDocs/azure-docs articles/backup/backup-azure-vms-troubleshoot.md
- DOCS_AGENT = MicrosoftDocs/azure-docs
  articles/backup/backup-azure-troubleshoot-vm-backup-fails-snapshot-timeout.md
- DOCS_AFS = MicrosoftDocs/azure-docs articles/backup/troubleshoot-azure-files.md (BMSUserErrorObjectLocked)
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web


class ArmError(Exception):
    """An error answered as ``{"error": {"code", "message"}}`` with an HTTP status."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}

    def response(self) -> web.Response:
        return web.json_response(
            {"error": {"code": self.code, "message": self.message}},
            status=self.status,
            headers=self.headers,
        )


@dataclass(frozen=True)
class BackupError:
    """A job-level failure as Azure Backup reports it (code, message, recommended actions)."""

    code: str
    message: str
    recommendations: tuple[str, ...] = field(default=())
    # AzureIaaSVMErrorInfo.errorCode is an int in the spec; no Microsoft source pairs a symbolic
    # code with its number, so these are emulator-assigned stand-ins (jobs carry the symbolic code
    # only through the documented message, as on Azure).
    number: int = 0


# DOCS_AGENT: "UserErrorBackupOperationInProgress - Unable to initiate backup as another backup operation
# is currently in progress". It surfaces on the backup *operation*: the trigger is accepted (202) and the
# async operation / the job fails with this code.
BACKUP_IN_PROGRESS = BackupError(
    "UserErrorBackupOperationInProgress",
    "Unable to initiate backup as another backup operation is currently in progress.",
    ("Wait until the backup job in progress finishes (or cancel it), then trigger or schedule the next backup.",),
    400001,
)

# DOCS_AGENT: "UserErrorRpCollectionLimitReached - The Restore Point collection max limit
# has reached"; at most 18 instant RPs can be associated with a VM.
RP_COLLECTION_LIMIT = BackupError(
    "UserErrorRpCollectionLimitReached",
    "The Restore Point collection max limit has reached.",
    (
        "Remove the lock on the restore point resource group and retry the operation to trigger clean-up.",
        "Keep protection enabled so that the backup service can clean up expired restore points; "
        "trigger at most one backup per day.",
    ),
    400002,
)

# Not found verbatim in the sources searched: the code Azure uses for "backup now" on an item whose
# protection was stopped with retained data. The emulator answers with this stand-in (HTTP 400).
PROTECTION_STOPPED_CODE = "UserErrorBackupNotAllowedProtectionStopped"
PROTECTION_STOPPED_MESSAGE = (
    "Backup cannot be triggered because protection of the item is stopped. "
    "Resume protection with a backup policy and retry the operation."
)

# DOCS_VM: snapshot-phase failures (code, message, recommendation).
SNAPSHOT_ERRORS: dict[str, BackupError] = {
    e.code: e
    for e in (
        BackupError(
            "ExtensionFailedVssWriterInBadState",
            "Snapshot operation failed because VSS writers were in a bad state.",
            (
                "Restart VSS writers that are in a bad state: from an elevated command prompt run "
                "'vssadmin list writers' and restart the service of every writer not in '[1] Stable'.",
            ),
            400201,
        ),
        BackupError(
            "ExtensionFailedVssServiceInBadState",
            "Snapshot operation failed due to VSS (Volume Shadow Copy) service in bad state.",
            ("Restart the Volume Shadow Copy service ('net stop VSS' then 'net start VSS').",),
            400202,
        ),
        BackupError(
            "UserErrorFsFreezeFailed",
            "Failed to freeze one or more mount-points of the VM to take a file-system consistent snapshot.",
            (
                "Unmount the devices whose file system state was not cleaned, run fsck, mount them "
                "again and retry the backup.",
            ),
            400203,
        ),
        BackupError(
            "ExtensionFailedTimeoutVMNetworkUnresponsive",
            "Snapshot operation failed due to inadequate VM resources.",
            (
                "Create the snapshot through the host, move the backup schedule to a time of lower "
                "load, or increase the VM size.",
            ),
            400204,
        ),
        BackupError(
            "UserErrorVmNotInDesirableState",
            "VM is not in a state that allows backups.",
            ("Wait until the VM is Running, Stopped or Stopped (deallocated), then trigger the backup.",),
            400205,
        ),
        BackupError(
            "UserErrorGuestAgentStatusUnavailable",
            "VM Agent unable to communicate with Azure Backup.",
            ("Ensure the VM agent is installed, running and up to date, then retry the backup.",),
            400206,
        ),
        BackupError(
            "ExtensionFailedSnapshotLimitReachedError",
            "Snapshot operation failed as snapshot limit is exceeded for some of the disks attached.",
            ("Delete the disk blob-snapshots that are not required, then retry the operation.",),
            400207,
        ),
    )
}

# DOCS_VM: transfer-phase failure.
TRANSFER_ERRORS: dict[str, BackupError] = {
    "CopyingVHDsFromBackUpVaultTakingLongTime": BackupError(
        "CopyingVHDsFromBackUpVaultTakingLongTime",
        "Copying backed up data from vault timed out.",
        (
            "This can happen due to transient storage errors or insufficient storage account IOPS. "
            "Follow the VM backup best practices and retry the backup operation.",
        ),
        400301,
    )
}

# ARM-level errors (resource manager front door).
AUTH_MISSING = ("AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing.")
AUTH_BAD = (
    "InvalidAuthenticationToken",
    "The access token is invalid.",
)
MISSING_API_VERSION = (
    "MissingApiVersionParameter",
    "The api-version query parameter (?api-version=) is required for all requests.",
)
NO_PROVIDER = "NoRegisteredProviderFound"
THROTTLED = "SubscriptionRequestsThrottled"
# Azure/azure-powershell issue #2252 shows this Recovery Services internal error code and text.
INTERNAL = (
    "CloudInternalError",
    "Microsoft Azure Backup encountered an internal error. Wait for a few minutes and then try the "
    "operation again. If the issue persists, please contact Microsoft Support.",
)
UNAVAILABLE = ("ServiceUnavailable", "The service is temporarily unavailable. Please retry the request.")
# DOCS_AFS: "BMSUserErrorObjectLocked - Another operation is in progress on the selected item." Answered
# synchronously to the trigger POST; its status (400, as Azure Backup's other BMSUserError* answers) is a
# stand-in: no source shows it.
OBJECT_LOCKED = ("BMSUserErrorObjectLocked", "Another operation is in progress on the selected item.")
# DOCS_VM "Jobs" table: "The job isn't in a cancelable state" (the code is the emulator's stand-in).
JOB_NOT_CANCELLABLE = (
    "BMSUserErrorJobNotInCancellableState",
    "The job isn't in a cancelable state. Wait until the job finishes.",
)
# backup-support-matrix-iaas.md "Cancel backup jobs: Supported during snapshot process. Not supported
# when the snapshot is being transferred to the vault"; Azure/azure-rest-api-specs#5306: the cancel
# POST is accepted and its operation result then answers 400. The code is the emulator's stand-in.
JOB_NOT_CANCELLABLE_IN_TRANSFER = (
    "BMSUserErrorJobNotInCancellableState",
    "The job isn't in a cancelable state: the snapshot is being transferred to the vault. Wait until the job finishes.",
)
# backup-support-matrix-iaas.md: "The Azure Backup service supports up to nine on-demand backups per
# day". The code and text are those Azure Backup answered for its 24-hour operation limit in
# Azure/azure-content#5067 (CloudDosAbsoluteLimitReached); the status (400) is a stand-in.
ON_DEMAND_LIMIT = (
    "CloudDosAbsoluteLimitReached",
    "Operation is blocked as you have reached the limit on number of operations permitted in 24 hours.",
)

# A stand-in: Microsoft's sources found (multi-user-authorization.md: "The request fails with an
# error informing them about not having sufficient permissions on the Resource Guard") give no code
# or status. The emulator refuses synchronously with 403 and this code; the app also recognises the
# refusal by "Resource Guard" in the message.
RESOURCE_GUARD_CODE = "UserErrorResourceGuardOperationNotAuthorized"


def resource_guard_refusal(guard: str, operation: str) -> ArmError:
    return ArmError(
        403,
        RESOURCE_GUARD_CODE,
        f"The operation '{operation}' is a critical operation protected by Resource Guard '{guard}' "
        "(multi-user authorization) and the caller does not have sufficient permissions on the Resource "
        "Guard. Get access to the Resource Guard, then retry the operation with its "
        "resourceGuardOperationRequests.",
    )


def not_found(resource_id: str) -> ArmError:
    return ArmError(404, "ResourceNotFound", f"The Resource '{resource_id}' was not found.")


def bad_request(message: str, code: str = "BadRequest") -> ArmError:
    return ArmError(400, code, message)
