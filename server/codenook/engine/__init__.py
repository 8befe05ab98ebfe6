"""The engine host side: the model protocol, the scheduler thread and the llama.cpp backend."""
