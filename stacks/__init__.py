"""User-level network stacks that run on a MultiStack ``Port``."""
