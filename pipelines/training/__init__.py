"""The training pipeline: resolve baseline → prepare → train → evaluate → gate → register | fail."""
