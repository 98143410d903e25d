"""The decentralised part that needs both gossip and the compute manager."""
