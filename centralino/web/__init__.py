"""HTTP: health, metrics, agent desktop, supervisor wallboard, webhooks."""
