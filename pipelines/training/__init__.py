"""The training pipeline: resolve baseline → prepare → (no data: fail) → train → evaluate → gate → register | fail."""
