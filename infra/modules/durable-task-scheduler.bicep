// Optional Durable Task Scheduler backend (Consumption SKU) with one task hub named like
// host.json's hubName. Identity-only: the app connects with Authentication=ManagedIdentity and
// holds Durable Task Data Contributor on this task hub only (app-access.bicep).

param location string
param tags object
param schedulerName string
param taskHubName string

resource scheduler 'Microsoft.DurableTask/schedulers@2025-11-01' = {
  name: schedulerName
  location: location
  tags: tags
  properties: {
    sku: {
      name: 'Consumption'
    }
    // An empty allow-list denies all traffic; access is still Entra-only (RBAC on the task hub).
    ipAllowlist: [
      '0.0.0.0/0'
    ]
  }
}

resource taskHub 'Microsoft.DurableTask/schedulers/taskHubs@2025-11-01' = {
  parent: scheduler
  name: taskHubName
  properties: {}
}

output schedulerName string = scheduler.name
output taskHubName string = taskHub.name
output endpoint string = scheduler.properties.endpoint
