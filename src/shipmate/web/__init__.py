"""The operator's view: the audit trail (events), metrics, and next the dashboard."""
