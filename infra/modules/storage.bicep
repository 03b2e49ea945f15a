// The function app's own storage account: AzureWebJobsStorage (host leases, timers), the Durable
// Functions Azure Storage task hub (queues, tables, blobs) and the Flex Consumption deployment
// package container. Shared-key access is disabled: the Flex Consumption plan supports
// identity-based AzureWebJobsStorage and an identity-authenticated deployment container, so no
// account key or connection string exists anywhere in the app's settings.

param location string
param tags object
param storageAccountName string
param deploymentContainerName string

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_35:Flex Consumption instances without VNet integration are not trusted services, so a default-deny firewall would lock the host out of AzureWebJobsStorage; access is Entra-only (shared keys disabled). Add VNet integration + private endpoints to deny by default.
  // checkov:skip=CKV_AZURE_43:The name is computed in main.bicep as 'st' + uniqueString(...) (15 lowercase letters/digits), which checkov cannot evaluate through the module parameter.
  // checkov:skip=CKV_AZURE_59:Flex Consumption without VNet integration reaches its AzureWebJobsStorage and deployment container over the public endpoint; access is Entra-only (shared keys disabled). Add VNet integration + private endpoints to close it.
  // checkov:skip=CKV_AZURE_206:Host/Durable state is operational and rebuildable (task hub can be recreated; backups live in the vaults); LRS keeps cost down; change the sku to ZRS/GRS if your policy requires it.
  name: storageAccountName
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    accessTier: 'Hot'
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false
    allowCrossTenantReplication: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
    encryption: {
      keySource: 'Microsoft.Storage'
      requireInfrastructureEncryption: true
      services: {
        blob: {
          enabled: true
        }
        file: {
          enabled: true
        }
        queue: {
          enabled: true
          keyType: 'Account'
        }
        table: {
          enabled: true
          keyType: 'Account'
        }
      }
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: 7
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: 7
    }
  }
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

output storageAccountId string = storage.id
output storageAccountName string = storage.name
output blobEndpoint string = storage.properties.primaryEndpoints.blob
output queueEndpoint string = storage.properties.primaryEndpoints.queue
output tableEndpoint string = storage.properties.primaryEndpoints.table
output deploymentContainerUrl string = '${storage.properties.primaryEndpoints.blob}${deploymentContainerName}'
