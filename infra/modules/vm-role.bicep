// Optional VM-scoped role, only for gc mode 'weekend-window' and only when the operator opts in
// (grantVmWriteForResume). Azure Backup documents Microsoft.Compute/virtualMachines/write on the
// VM as the minimum for *enabling* protection of a VM; resuming protection re-sends the same
// configure-protection request (PUT protectedItems with the VM as sourceResourceId). Whether
// Azure applies that linked check to a resume of an already-protected item can only be observed in
// Azure: if the weekly resume fails with LinkedAuthorizationFailed, turn the flag on. Off by
// default, because VM write is a broad permission.

param assignableScopes array
param roleName string

resource vmRole 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(resourceGroup().id, roleName)
  properties: {
    roleName: roleName
    description: 'BackupChain app: linked access on a protected VM, needed to resume its backup protection.'
    type: 'CustomRole'
    assignableScopes: assignableScopes
    permissions: [
      {
        actions: [
          'Microsoft.Compute/virtualMachines/read'
          'Microsoft.Compute/virtualMachines/write'
        ]
        notActions: []
        dataActions: []
        notDataActions: []
      }
    ]
  }
}

output roleDefinitionGuid string = vmRole.name
