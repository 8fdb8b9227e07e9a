"""Training: loop (`fit`, read top to bottom), losses (a registry), features (feature-extract's cache), checkpoint
(run id, resume, the model cache), distill (a teacher's targets) and distributed (torchrun). Batching, shared with
serving, is `emotion_classifier.batching`."""
