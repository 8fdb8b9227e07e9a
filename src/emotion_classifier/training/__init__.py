"""Training: batches (shared with inference), losses (a registry), features (feature-extract's cache), checkpoint
(run id, resume, the model cache) and loop (`fit`, read top to bottom)."""
