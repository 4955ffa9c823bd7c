"""Dialogs: verify two photos, settings, name a group, fine-tune."""
