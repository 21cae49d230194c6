"""Tokens, permissions and command signatures (API.md, Security)."""
