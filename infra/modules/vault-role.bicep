// Custom role for the app identity on the configured Recovery Services vaults.
//
// Why a custom role and not a built-in one: the documented minimum for an on-demand VM backup is
// "Backup Operator" and for stopping protection "Backup Contributor" (Azure Backup, "Use Azure
// RBAC to manage Azure Backup recovery points"). Both also allow restores (recoveryPoints/restore,
// instant item recovery), registering containers, enabling protection for any VM, exporting jobs,
// writing vault config and opening support tickets; Backup Contributor even manages policies and
// deletes backup data. The app needs none of that, so it gets exactly the RBAC operations behind
// the REST calls it makes (Microsoft.RecoveryServices operations list):
//   POST protectedItems/{item}/backup                      -> protectedItems/backup/action
//   GET  protectedItems/{item}/operationsStatus|Results/*  -> protectedItems/operationsStatus|operationResults/read
//   GET  backupOperations/{id}, backupOperationResults/{id}-> Vaults/backupOperations|backupOperationResults/read
//   GET  protectedItems/{item}, backupProtectedItems        -> protectedItems/read, backupProtectedItems/read
//   GET  backupJobs, backupJobs/{name}                     -> Vaults/backupJobs/read
//   GET  backupPolicies/{name}                             -> Vaults/backupPolicies/read
//   GET  protectedItems/{item}/recoveryPoints              -> protectedItems/recoveryPoints/read
// and, only in gc mode 'weekend-window' (docs/gc.md: stop protection with retained data on
// weekdays, resume it for the weekly GC window):
//   PUT  protectedItems/{item}                             -> protectedItems/write
// Job cancellation, restore, delete and policy writes are deliberately absent.

@allowed([
  'weekly-policy'
  'weekend-window'
])
param gcMode string

@description('Scopes the role may be assigned at: the resource groups holding the configured vaults.')
param assignableScopes array

@description('Unique name shown in the portal for this deployment\'s role.')
param roleName string

var readAndTriggerActions = [
  'Microsoft.RecoveryServices/Vaults/backupFabrics/protectionContainers/protectedItems/backup/action'
  'Microsoft.RecoveryServices/Vaults/backupFabrics/protectionContainers/protectedItems/operationsStatus/read'
  'Microsoft.RecoveryServices/Vaults/backupFabrics/protectionContainers/protectedItems/operationResults/read'
  'Microsoft.RecoveryServices/Vaults/backupFabrics/protectionContainers/protectedItems/read'
  'Microsoft.RecoveryServices/Vaults/backupFabrics/protectionContainers/protectedItems/recoveryPoints/read'
  'Microsoft.RecoveryServices/Vaults/backupProtectedItems/read'
  'Microsoft.RecoveryServices/Vaults/backupJobs/read'
  'Microsoft.RecoveryServices/Vaults/backupPolicies/read'
  'Microsoft.RecoveryServices/Vaults/backupOperations/read'
  'Microsoft.RecoveryServices/Vaults/backupOperationResults/read'
]

var protectionActions = [
  'Microsoft.RecoveryServices/Vaults/backupFabrics/protectionContainers/protectedItems/write'
]

@description('gc.remediate of the chain configuration: the weekly check resumes protection it finds stopped, which needs protectedItems/write in weekly-policy mode too.')
param remediate bool = false

var protectionWrite = (gcMode == 'weekend-window') || remediate
var actions = protectionWrite ? concat(readAndTriggerActions, protectionActions) : readAndTriggerActions

resource vaultRole 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(resourceGroup().id, roleName)
  properties: {
    roleName: roleName
    description: 'BackupChain app: trigger on-demand VM backups and read jobs, items, policies and recovery points${protectionWrite ? '; stop/resume protection (weekend-window GC or remediate)' : ''}.'
    type: 'CustomRole'
    assignableScopes: assignableScopes
    permissions: [
      {
        actions: actions
        notActions: []
        dataActions: []
        notDataActions: []
      }
    ]
  }
}

output roleDefinitionGuid string = vaultRole.name
