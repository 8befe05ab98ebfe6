"""What the workspace adds to a prompt: the index of every source file, activity, chunks."""
