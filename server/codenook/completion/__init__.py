"""Inline completion: context around the cursor, the prompt, the model call, post-processing."""
