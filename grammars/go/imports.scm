(source_file (package_clause) @import)
(source_file (import_declaration) @import)
