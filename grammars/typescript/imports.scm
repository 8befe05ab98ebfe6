(program (import_statement) @import)
