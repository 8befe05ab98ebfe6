(source_file (use_declaration) @import)
(source_file (extern_crate_declaration) @import)

; For the workspace index.
(use_declaration argument: (identifier) @import.module)
(use_declaration argument: (scoped_identifier path: (_) @import.module name: (identifier) @import.name))
(use_declaration argument: (use_as_clause
  path: (scoped_identifier path: (_) @import.module name: (identifier) @import.name)))
(use_declaration argument: (scoped_use_list
  path: (_) @import.module
  list: (use_list [(identifier) @import.name
                   (scoped_identifier name: (identifier) @import.name)
                   (use_as_clause path: (identifier) @import.name)])))
(use_declaration argument: (use_wildcard (_) @import.module "*" @import.name))
(mod_item name: (identifier) @import.module !body)
; Aliases (`use a::b as c`) and re-exports: `pub use` (`@import.export`, any visibility).
(use_declaration argument: (use_as_clause
  path: (scoped_identifier path: (_) @import.module name: (identifier) @import.name)
  alias: (identifier) @import.alias))
(use_declaration argument: (scoped_use_list
  path: (_) @import.module
  list: (use_list (use_as_clause path: (identifier) @import.name alias: (identifier) @import.alias))))
(use_declaration (visibility_modifier) argument: (scoped_identifier
  path: (_) @import.module name: (identifier) @import.name)) @import.export
(use_declaration (visibility_modifier) argument: (use_as_clause
  path: (scoped_identifier path: (_) @import.module name: (identifier) @import.name)
  alias: (identifier) @import.alias)) @import.export
(use_declaration (visibility_modifier) argument: (scoped_use_list
  path: (_) @import.module
  list: (use_list [(identifier) @import.name
                   (use_as_clause path: (identifier) @import.name alias: (identifier) @import.alias)]))) @import.export
(use_declaration (visibility_modifier)
  argument: (use_wildcard (_) @import.module "*" @import.name)) @import.export
