"""The git snap command line."""
