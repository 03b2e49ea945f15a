// An Azure Workbook over the app's Application Insights component: runs, per-VM timelines, snapshot
// lag and failures by error code. The workbook itself is infra/workbook/backup-chain.workbook.json
// (edit it there, or in the portal and paste the Advanced Editor's gallery JSON back); its queries are
// checked against what the app's telemetry emits by tests/docs/test_infra_queries.py.
// Shape: azure-rest-api-specs specification/applicationinsights/.../stable/2023-06-01/workbooks_API.json.

param location string
param tags object
@description('Name of the Application Insights component (in this resource group) the workbook reads.')
param applicationInsightsName string
@description('Seed of the workbook name (a workbook is named by a GUID); the same seed updates the same workbook.')
param nameSeed string

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource workbook 'Microsoft.Insights/workbooks@2023-06-01' = {
  name: guid(resourceGroup().id, nameSeed, 'backup-chain-workbook')
  location: location
  tags: tags
  kind: 'shared'
  properties: {
    displayName: 'Backup chain runs'
    category: 'workbook'
    version: 'Notebook/1.0'
    sourceId: applicationInsights.id
    serializedData: loadTextContent('../workbook/backup-chain.workbook.json')
  }
}

output workbookId string = workbook.id
