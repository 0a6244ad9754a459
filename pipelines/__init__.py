"""continuum control plane."""
