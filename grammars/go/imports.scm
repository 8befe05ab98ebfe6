(source_file (package_clause) @import)
(source_file (import_declaration) @import)

; For the workspace index.
(import_spec path: (interpreted_string_literal (interpreted_string_literal_content) @import.module))
