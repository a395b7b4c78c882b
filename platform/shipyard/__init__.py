"""Shipyard: a GitOps engine and plugin SDK for an AI platform in one repository."""

__version__ = "0.1.0"
