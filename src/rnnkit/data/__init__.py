"""Data: the dataset registry, vocabularies, and batches for the training tasks."""
