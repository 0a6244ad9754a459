"""Code shared by the step scripts."""
