"""Local HTTPS emulator of Azure Event Grid custom topics (publish, filter, webhook delivery)."""
