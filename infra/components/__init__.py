"""The infra program's building blocks: one ``pulumi.ComponentResource`` per part of the architecture."""
