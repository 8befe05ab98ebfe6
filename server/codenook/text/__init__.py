"""Text of open documents: positions in every LSP encoding, languages, tree-sitter trees."""
