"""Webhooks: signing secrets kept encrypted, the address guard, signing and delivery."""
