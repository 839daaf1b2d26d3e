"""Neutral data types that cross stage boundaries: endpoints, transactions, telemetry.

Every package may import ``receiver.model``; it imports nothing else of the agent (see
docs/architecture.md, "Import rule").
"""
