// Reader for the app identity on ONE resource group whose VMs chain targets select (`select`
// resourceGroups / tags). Azure Resource Graph answers only the resources its caller can read:
// without this, the VMs of the group are silently absent from every selection
// (learn.microsoft.com/azure/governance/resource-graph/overview#permissions-in-azure-resource-graph).

param principalId string

var readerRoleId = 'acdd72a7-3385-48ef-bd42-f606fba81ae7' // Reader (built-in)

resource readerAssignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(resourceGroup().id, principalId, readerRoleId)
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', readerRoleId)
  }
}
