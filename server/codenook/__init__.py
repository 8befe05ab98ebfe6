"""codenook: AI completions for any LSP editor from a model running inside the server process."""

__version__ = "0.1.0"
