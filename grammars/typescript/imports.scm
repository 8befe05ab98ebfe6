(program (import_statement) @import)

; For the workspace index.
(import_statement source: (string (string_fragment) @import.module))
(import_statement
  (import_clause (named_imports (import_specifier name: (identifier) @import.name)))
  source: (string (string_fragment) @import.module))
(export_statement source: (string (string_fragment) @import.module))
; Re-exports (`@import.export`): `export { X } from`, `export { X as Y } from`, `export * from`.
(export_statement
  (export_clause (export_specifier name: (identifier) @import.name))
  source: (string (string_fragment) @import.module)) @import.export
(export_statement
  (export_clause (export_specifier name: (identifier) @import.name alias: (_) @import.alias))
  source: (string (string_fragment) @import.module)) @import.export
(export_statement "*" @import.name source: (string (string_fragment) @import.module)) @import.export
(import_statement
  (import_clause (named_imports (import_specifier name: (identifier) @import.name alias: (identifier) @import.alias)))
  source: (string (string_fragment) @import.module))
((call_expression
   function: (identifier) @_require
   arguments: (arguments . (string (string_fragment) @import.module)))
 (#eq? @_require "require"))
